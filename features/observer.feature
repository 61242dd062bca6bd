@integration @observer
Feature: The observer finds where records and reality disagree
  vman keeps a database of VMs, disks and addresses, but processes die, files
  get deleted and people start QEMU by hand. The observer compares the
  database with the QEMU processes and the disk files, on demand and
  periodically, and reports every disagreement with what the database says
  and what was really seen. It repairs the database only when asked, and it
  never kills a process or deletes a file by itself: orphans are for a person
  to decide about.

  Rule: Every kind of disagreement is reported

    @unjudged:disagreement-on-purpose
    Scenario: A VM recorded as running without a QEMU process
      Given vman is running on this host
      And a VM "ghost" recorded as running although its QEMU was never started
      When the observer checks
      Then the report says "ghost" is recorded running but has no QEMU process

    @unjudged:disagreement-on-purpose
    Scenario: A QEMU started by hand under vman's storage is an orphan
      Given vman is running on this host
      And a QEMU process started by hand under vman's storage
      When the observer checks
      Then the report names the hand-started QEMU as an orphan, with its pid

    @unjudged:disagreement-on-purpose
    Scenario: A disk whose file was deleted by hand
      Given vman is running on this host
      And a 1 GB disk "data"
      When the file of disk "data" is deleted by hand
      And the observer checks
      Then the report says disk "data" has no file

    @unjudged:disagreement-on-purpose
    Scenario: A disk file that no disk record owns
      Given vman is running on this host
      And a disk file made by hand with qemu-img in vman's disk folder
      When the observer checks
      Then the report names the hand-made file as an orphan disk file

    Scenario: A VM whose QEMU was killed while vman was down
      Given vman runs as a separate process
      And a running VM "web" from the small template
      When vman is killed with SIGKILL
      And the QEMU process of "web" is killed
      And vman is started again
      Then the start-up report says "web" was recorded running but had no QEMU process
      And the VM "web" is recorded as error with a reason mentioning "gone"
      And "web" holds no address

    @unjudged:disagreement-on-purpose
    Scenario: A VM recorded at rest while its QEMU runs, and a check that changes nothing
      Given vman is running on this host
      And a running VM "web" from the small template
      And a VM "web" recorded as stopped although its QEMU still runs
      And what vman holds is noted
      When the observer checks
      Then the report says "web" is recorded at rest while its QEMU runs
      And the database, the storage folder and the QEMU processes are as they were before

    @unjudged:disagreement-on-purpose
    Scenario: An address recorded for a VM that never started
      Given vman is running on this host
      And a VM "idle" created from the small template
      And an address recorded for the VM "idle", which was never started
      When the observer checks
      Then the report says the address of "idle" is held by a VM that does not run

    @unjudged:disagreement-on-purpose
    Scenario: A disk recorded attached whose device was taken out of QEMU behind vman's back
      Given vman is running on this host
      And a running VM "db" from the small template
      And a 1 GB disk "data" attached to "db"
      And the device of the disk "data" taken out of the QEMU of "db" behind vman's back
      When the observer checks
      Then the report says disk "data" is recorded attached to "db" but its QEMU has no such device

    @unjudged:disagreement-on-purpose
    Scenario: A VM folder that no VM record owns
      Given vman is running on this host
      And a VM folder made by hand in vman's storage
      When the observer checks
      Then the report names the hand-made VM folder as an orphan

    @unjudged:disagreement-on-purpose
    Scenario: A snapshot folder that no snapshot record names
      Given vman is running on this host
      And a VM "idle" created from the small template
      And a snapshot "before" of "idle" taken through vman's API
      When the record of snapshot "before" of "idle" is deleted behind vman's back
      And the observer checks
      Then the report names the folder of snapshot "before" of "idle" as orphan snapshot files

    @unjudged:disagreement-on-purpose
    Scenario: A snapshot whose folder was deleted by hand
      Given vman is running on this host
      And a VM "idle" created from the small template
      And a snapshot "before" of "idle" taken through vman's API
      When the folder of snapshot "before" of "idle" is deleted by hand
      And the observer checks
      Then the report says snapshot "before" of "idle" has no folder

  Rule: A healthy system reports nothing

    Scenario: A coherent system
      Given vman is running on this host
      And a running VM "web" from the small template
      And a 1 GB disk "data" attached to "web"
      And a 1 GB disk "spare"
      When the observer checks
      Then the report has no findings
      And the database, QEMU, the guests and the files agree

  Rule: Checks also run on their own

    @unjudged:disagreement-on-purpose
    Scenario: A disagreement made after start-up shows up without asking
      Given vman is running with the observer checking every second
      And a 1 GB disk "data"
      When the file of disk "data" is deleted by hand
      Then within 10 seconds the latest periodic report says disk "data" has no file

  Rule: Repairs happen only when asked, and never kill or delete

    @unjudged:disagreement-on-purpose
    Scenario: Repair marks a dead VM as failed and leaves orphans alone
      Given vman is running on this host
      And a VM "ghost" recorded as running although its QEMU was never started
      And a QEMU process started by hand under vman's storage
      And a disk file made by hand with qemu-img in vman's disk folder
      When a repair is asked for
      Then the VM "ghost" is recorded as error with a reason mentioning "observer"
      And the hand-started QEMU is still running
      And the hand-made disk file is still there
