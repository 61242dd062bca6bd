@integration @disks
Feature: Disks
  An operator creates data disks and attaches them to VMs, detaches them and
  moves them between VMs, through vman's API. A disk holds someone's data, so
  vman must get it right: attaching a disk to a running VM must not interrupt
  the VM, the device vman reports must be the one the guest really sees, data
  must survive a move to another VM, and a deleted disk must leave nothing
  behind. Every claim is checked against QEMU (over QMP), the guest itself
  (through its agent), the database file and the disk files, not against
  vman's own word. A request vman refuses must change nothing.

  Background:
    Given vman is running on this host

  Rule: A disk attached to a running VM is plugged in at once, and the guest agrees with vman

    Scenario: Attach a new disk to a running VM
      Given a running VM "db" from the small template
      And a 1 GB disk "data"
      When the disk "data" is attached to "db"
      Then QMP lists the disk "data" on "db"
      And the guest of "db" sees "data" as a new disk of 1 GB
      And the disk "data" is recorded as attached to "db" at the device its guest reports

    Scenario: Detach a disk from a running VM
      Given a running VM "db" from the small template
      And a 1 GB disk "data" attached to "db"
      When the disk "data" is detached
      Then the guest of "db" no longer sees the disk "data"
      And QMP no longer lists the disk "data" on "db"
      And the disk "data" is recorded as available with no mount point

    Scenario: Plugging a disk in and out does not interrupt the VM
      Given a running VM "db" from the small template
      And a 1 GB disk "data"
      And the VM "db" is being watched through its guest agent and QMP
      When the disk "data" is attached to "db"
      And the disk "data" is detached
      Then throughout, the guest agent of "db" answered, its uptime kept growing and QMP reported it running

    Scenario: A disk attached to a stopped VM is there at its next start
      Given a running VM "db" from the small template
      And a 1 GB disk "data"
      When the VM "db" is stopped
      And the disk "data" is attached to "db"
      And the VM "db" is started
      Then QMP lists the disk "data" on "db"
      And the guest of "db" sees "data" as a disk of 1 GB
      And the disk "data" is recorded as attached to "db" at the device its guest now reports

  Rule: A disk keeps its data when it moves to another VM

    Scenario: Data written by one VM is read by another after the disk moves
      Given a running VM "db" from the small template
      And a running VM "replica" from the small template
      And a 1 GB disk "data" attached to "db"
      When the guest of "db" writes a marker to the disk "data"
      And the disk "data" is detached
      And the disk "data" is attached to "replica"
      Then the guest of "replica" reads the marker back from the disk "data"

  Rule: Deleting a disk removes its file and its record

    Scenario: A disk attached to a stopped VM is not deleted; once detached, it is
      Given a running VM "db" from the small template
      And a 1 GB disk "data" attached to "db"
      When the VM "db" is stopped
      And the operator tries to delete the disk "data"
      Then the request is refused with status 409
      And the answer is a problem whose detail says "attached"
      And the database, the storage folder and the QEMU processes are as they were before
      When the disk "data" is detached
      And the disk "data" is deleted
      Then the file of the disk "data" is gone
      And the database has no record of the disk "data"

  Rule: Disks come in whole gigabytes as sparse qcow2 files

    Scenario Outline: A <size> GB disk
      When a <size> GB disk "data" is created
      Then the file of the disk "data" is a qcow2 image of <size> GB
      And the file of the disk "data" is sparse
      And the disk "data" is recorded as an available qcow2 disk of <size> GB at its file

      Examples: The standard sizes
        | size |
        | 1    |
        | 5    |
        | 10   |

      Examples: The largest size allowed by default
        | size |
        | 1024 |

  Rule: A malformed request is refused and changes nothing

    Scenario Outline: A disk of <size> GB is refused: <why>
      When the operator tries to create a disk "data" of <size> GB
      Then the request is refused with status 400
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | size  | why                                                |
        | 0     | a disk holds at least 1 GB                         |
        | -1    | a size cannot be negative                          |
        | 1.5   | sizes are whole gigabytes                          |
        | "ten" | a size is a number                                 |
        | 1025  | one more than the largest size allowed (1024 GB)   |

    Scenario Outline: A disk named <name> is refused: <why>
      When the operator tries to create a disk <name> of 1 GB
      Then the request is refused with status 400
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | name              | why                                         |
        | "data/main"       | a slash would reach into another folder     |
        | "data..old"       | two dots could climb out of the disk folder |
        | "my data"         | names have no spaces                        |
        | "data,format=raw" | a comma would smuggle options into QEMU     |

    Scenario Outline: A request naming a disk or VM that does not exist is answered with 404: <request>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      And a disk "gone" that has since been deleted
      And a VM "departed" that has since been deleted
      When the operator tries to <request>
      Then the request is refused with status 404
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | request                              |
        | look up the disk "gone"              |
        | delete the disk "gone"               |
        | detach the disk "gone"               |
        | attach the disk "gone" to "db"       |
        | attach the disk "data" to "departed" |

  Rule: What the state of a disk or VM forbids is refused and changes nothing

    Scenario: A second disk with a name already in use is refused
      Given a 1 GB disk "data"
      When the operator tries to create a disk "data" of 1 GB
      Then the request is refused with status 409
      And the database, the storage folder and the QEMU processes are as they were before

    Scenario Outline: An attached disk cannot be <refused>
      Given a running VM "db" from the small template
      And a 1 GB disk "data" attached to "db"
      When the operator tries to <request>
      Then the request is refused with status 409
      And the database, the storage folder and the QEMU processes are as they were before
      And QMP lists the disk "data" on "db"

      Examples:
        | refused          | request                        |
        | deleted          | delete the disk "data"         |
        | attached again   | attach the disk "data" to "db" |

    Scenario Outline: A disk that is not attached cannot be <refused>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator tries to <request>
      Then the request is refused with status 409
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | refused                                 | request                        |
        | detached                                | detach the disk "data"         |
        | attached to a VM that was never started | attach the disk "data" to "db" |
