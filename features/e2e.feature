@integration @e2e
Feature: End to end
  What an operator does in a day, all the way through: a template, a VM, a
  disk, data written by the guest, and everything taken down again. After
  every step the database, QEMU (over QMP), the guests and the files on disk
  must tell the same story. Several VMs at once must not get in each other's
  way, a crashed VM must come back with its disks, and vman itself may die
  at any moment without losing or half-making anything.

  Rule: The whole workflow leaves everything coherent at every step

    Scenario: Template, VM, disk and data, then everything taken down, agree with the host after every step
      Given vman is running on this host
      When a template "e2e" is created for the test guest with 1 CPU and 512 MB
      Then the database, QEMU, the guests and the files agree
      When a VM "app" is created from the e2e template
      Then the database, QEMU, the guests and the files agree
      When the VM "app" is started
      Then the guest of "app" has the address vman recorded for it
      And the database, QEMU, the guests and the files agree
      When a 1 GB disk "data" is created
      Then the database, QEMU, the guests and the files agree
      When the disk "data" is attached to "app"
      Then the guest of "app" sees "data" as a new disk of 1 GB
      And the database, QEMU, the guests and the files agree
      When the guest of "app" writes a marker to the disk "data"
      Then the guest of "app" reads the marker back from the disk "data"
      And the database, QEMU, the guests and the files agree
      When the disk "data" is detached
      Then the guest of "app" no longer sees the disk "data"
      And the file of the disk "data" holds the marker its guest wrote
      And the database, QEMU, the guests and the files agree
      When the VM "app" is stopped
      Then no QEMU process of "app" is left
      And the database, QEMU, the guests and the files agree
      When the VM "app" is deleted
      Then the database has no record of "app"
      And the database, QEMU, the guests and the files agree
      When the disk "data" is deleted
      Then the file of the disk "data" is gone
      And the database, QEMU, the guests and the files agree
      When the template "e2e" is deleted
      Then vman holds nothing but its built-in templates
      And the database, QEMU, the guests and the files agree

  Rule: Many VMs at once

    Scenario: Four VMs started and stopped together
      Given vman is running on this host
      And VMs "w1, w2, w3 and w4" created from the small template
      When they are all started at once
      Then all of them are recorded as running with distinct addresses
      And each guest has the address vman recorded for it
      And the database, QEMU, the guests and the files agree
      When they are all stopped at once
      Then none of them has a QEMU process or an address left

  Rule: A crashed VM comes back with its disks

    Scenario: A VM whose QEMU was killed is restarted with its disk
      Given vman is running on this host
      And a running VM "app" from the small template
      And a 1 GB disk "data" attached to "app"
      And the guest of "app" writes a marker to the disk "data"
      When the QEMU process of "app" is killed
      Then the VM "app" is recorded as error with a reason mentioning "died"
      And the observer reports "app" as failed
      When the VM "app" is started
      Then the guest of "app" sees "data" as a disk of 1 GB
      And the guest of "app" reads the marker back from the disk "data"
      And the database, QEMU, the guests and the files agree

  Rule: vman may die at any moment without losing anything

    Scenario: vman killed during normal operation adopts everything when it comes back
      Given vman runs as a separate process
      And a running VM "app" from the small template
      And a 1 GB disk "data" attached to "app"
      And a VM "idle" created from the small template
      And what vman has recorded is noted
      When vman is killed with SIGKILL and started again
      Then every record is still there, unchanged
      And "app" still runs in the same QEMU process
      And "app" kept its address
      And the database, QEMU, the guests and the files agree
      And the VM "app" can be stopped through the API

    Scenario: Requests in flight when vman dies leave nothing half-made
      Given vman runs as a separate process
      When 6 disks and 6 VMs are being created when vman is killed with SIGKILL
      And vman is started again
      Then at least one create was cut off without an answer
      And every create answered 201 before vman died is there, complete
      And every disk and VM vman has recorded is complete, and nothing half-made is left
      And the database, QEMU, the guests and the files agree
