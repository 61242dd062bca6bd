@integration @snapshots @cold
Feature: Snapshots with memory, reverts, and clones that start warm
  A snapshot keeps a VM at one moment: its disks and, when it runs, its memory
  and devices. Reverting brings the VM back to that moment, and a guest kept
  with its memory runs on from there. A clone is a new VM made from a
  snapshot: its disks are its own overlays over the snapshot's images, and its
  first start resumes the saved memory instead of booting, in a fraction of a
  boot. A clone must behave like a VM that booted: its own disks, its own SSH
  port and console, a clock that is right, a generation id of its own.

  Every claim is read by the suite itself: the guest through its agent, QEMU
  over the suite's own monitor and its command line in /proc, the database
  file and the snapshot's files.

  Every VM here boots cold (@cold): these scenarios make their own snapshots
  and clones, and count every snapshot vman records.

  Background:
    Given vman is running on this host

  Rule: A snapshot of a running VM keeps its memory, and a revert brings it back

    Scenario: A marker kept only in the guest's memory is back after a revert, which throws the guest away only when forced
      Given a running VM "web" from the small template
      And the guest of "web" keeps a marker in its memory only
      And the clock of the guest of "web" is an hour behind
      When a snapshot "warm" of "web" is taken
      Then the snapshot "warm" of "web" holds the guest's memory, its state file no larger than the guest's memory
      When the guest of "web" keeps another marker in its memory only
      And the operator asks to revert "web" to "warm" without force
      Then the request is refused with status 409 and the problem "revert-loses-data"
      And the database, the storage folder and the QEMU processes are as they were before
      When "web" is reverted to "warm" with force
      Then QEMU of "web" was started from the saved state
      And the guest of "web" holds the first marker in its memory
      And the guest clock of "web" is within 2 s of the host's

    Scenario: A data disk written after a snapshot is as it was before, once reverted
      Given a running VM "db" from the small template
      And a 1 GB disk "data" attached to "db"
      And the guest of "db" writes a marker to the disk "data"
      And the guest of "db" notes the checksum of the disk "data"
      When a snapshot "before" of "db" is taken
      And the guest of "db" writes a marker to the disk "data"
      And "db" is reverted to "before" with force
      Then the guest of "db" reads the first marker back from the disk "data"
      And the checksum of the disk "data", as the guest of "db" reads it, is the one it noted

  Rule: A clone resumes its origin's memory, then lives a life of its own

    # A Debian clone, made after cloud-init ran, keeps its origin's SSH host
    # keys: features/real_guest.feature proves it beside the Debian VM's boot.

    Scenario: A clone starts from the snapshot's memory, runs beside its origin on its own, boots from its own disks next time, and the snapshot stays while it stands on it
      Given a running VM "web" from the small template
      And the guest of "web" keeps a marker in its memory only
      And the clock of the guest of "web" is an hour behind
      And a snapshot "warm" of "web" is taken
      When a VM "web-2" is cloned from the snapshot "warm" of "web"
      And the VM "web-2" is started
      Then QEMU of "web-2" was started from the saved state
      And the guest of "web-2" holds the first marker in its memory
      And the guest clock of "web-2" is within 2 s of the host's
      And the guests of "web-2" and "web" read different generation ids in their memory, each the one its QEMU gives
      And "web-2" and "web" each have an SSH port and a console of their own
      And the guest of "web-2" keeps another marker in its memory only, and the guest of "web" still holds the first
      When the VM "web-2" is stopped
      And the VM "web-2" is started
      Then QEMU of "web-2" booted the guest rather than start from the saved state
      When the operator asks to delete the snapshot "warm" of "web"
      Then the request is refused with status 409 and the problem "snapshot-has-clones"
      When the VM "web-2" is deleted with force
      And the VM "web" is deleted with force
      Then the database has no record of "web"
      And the storage folder of "web" is gone
      And the database records no snapshot

    Scenario: A clone and its origin each write to a root disk of their own
      Given a template "disk-boot" that boots the test guest from the disk image by its own bootloader
      And a running VM "bios" from the disk-boot template
      And a snapshot "warm" of "bios" is taken
      And a VM "bios-2" is cloned from the snapshot "warm" of "bios"
      And the VM "bios-2" is started
      When the guests of "bios" and "bios-2" each write a marker of their own at the end of their root disk
      Then each of "bios" and "bios-2" reads back its own marker from the end of its root disk
      And the root disk of "bios-2" is an overlay in its own folder over the image of the snapshot "warm", and its QEMU writes that overlay

  Rule: Bad requests are refused with a clear problem, and change nothing

    Scenario Outline: <request> is refused: <why>
      Given a VM "web" created from the small template
      And a snapshot "cold" of "web" is taken
      And a 1 GB disk "data"
      When the operator asks vman for <request>
      Then the request is refused with status <status> and the problem "<problem>"
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | request                                         | status | problem                | why                                           |
        | a snapshot of a VM that does not exist          | 404    | vm-not-found           | there is no such VM                           |
        | a snapshot whose name holds a path separator    | 400    | validation-error       | a name never reaches a path as it is given    |
        | a snapshot whose name is already taken          | 409    | snapshot-name-taken    | one name, one snapshot                        |
        | a clone from a snapshot that does not exist     | 404    | snapshot-not-found     | there is nothing to clone                     |
        | a clone from a deleted snapshot                 | 404    | snapshot-not-found     | a deleted snapshot is gone for good           |

    Scenario: A revert is refused while a disk is attached that the snapshot does not hold, naming it
      Given a running VM "web" from the small template
      And a snapshot "warm" of "web" is taken
      And a 1 GB disk "data" attached to "web"
      When the operator asks to revert "web" to "warm" with force, naming no disk it should detach first
      Then the request is refused with status 409 and the problem "snapshot-disks-differ"
      And the problem's detail names the disk "data"
      And the database, the storage folder and the QEMU processes are as they were before

  Rule: Snapshots through the command line

    Scenario: vman vm snapshot makes, lists and removes a snapshot
      Given a running VM "web" from the small template
      When the operator runs "vman vm snapshot create web warm"
      Then "vman vm snapshot list web" shows the snapshot "warm" with memory
      When the operator runs "vman vm create web-2 --from web@warm"
      And the operator runs "vman vm start web-2"
      Then QEMU of "web-2" was started from the saved state
      When the operator runs "vman vm rm web-2 --force"
      And the operator runs "vman vm snapshot rm web warm"
      Then the database records no snapshot
