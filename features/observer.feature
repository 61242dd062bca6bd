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

    Scenario: A VM recorded as running without a QEMU process
      Given vman is running on this host
      And a VM "ghost" recorded as running although its QEMU was never started
      When the observer checks
      Then the report says "ghost" is recorded running but has no QEMU process

    Scenario: A QEMU started by hand under vman's storage is an orphan
      Given vman is running on this host
      And a QEMU process started by hand under vman's storage
      When the observer checks
      Then the report names the hand-started QEMU as an orphan, with its pid

    Scenario: A disk whose file was deleted by hand
      Given vman is running on this host
      And a 1 GB disk "data"
      When the file of disk "data" is deleted by hand
      And the observer checks
      Then the report says disk "data" has no file

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

    Scenario: A disagreement made after start-up shows up without asking
      Given vman is running with the observer checking every second
      And a 1 GB disk "data"
      When the file of disk "data" is deleted by hand
      Then within 10 seconds the latest periodic report says disk "data" has no file

  Rule: Repairs happen only when asked, and never kill or delete

    Scenario: Repair marks a dead VM as failed and leaves orphans alone
      Given vman is running on this host
      And a VM "ghost" recorded as running although its QEMU was never started
      And a QEMU process started by hand under vman's storage
      And a disk file made by hand with qemu-img in vman's disk folder
      When a repair is asked for
      Then the VM "ghost" is recorded as error with a reason mentioning "observer"
      And the hand-started QEMU is still running
      And the hand-made disk file is still there
