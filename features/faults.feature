@integration @faults
Feature: Faults end in a clear state, and recovery works
  Hosts misbehave: QEMU gets killed half-way through plugging in a disk, a
  filesystem fills up, a guest never starts its agent, QEMU stops answering.
  In each case vman must end in a state that says plainly what happened, the
  observer must agree with it, no disk may be left half-attached, and the
  operator must be able to carry on.

  Rule: A hot-plug interrupted by QEMU's death leaves the disk free

    Scenario: QEMU killed between the steps of a hot-plug
      Given vman is running on this host
      And a running VM "app" from the small template
      And a 1 GB disk "data"
      When the disk "data" is being attached to "app" and QEMU is killed once QEMU holds the disk
      Then the request is refused with status 502
      And the problem says "QEMU process ended meanwhile"
      And the disk "data" is still recorded as available, attached to nothing
      And the VM "app" is recorded as error with a reason mentioning "died"
      And the observer agrees that "app" has failed and finds nothing else
      When the VM "app" is started
      And the disk "data" is attached to "app"
      Then the guest of "app" sees "data" as a new disk of 1 GB

  Rule: A QEMU that stops answering is not trusted with a disk

    Scenario: QEMU stops answering QMP during a hot-plug
      Given vman is running with a QMP timeout of 2 seconds
      And a running VM "app" from the small template
      And a 1 GB disk "data"
      When the QEMU process of "app" stops responding
      And the operator tries to attach the disk "data" to "app"
      Then the request is refused with status 503
      And the problem says "stopped answering"
      And the disk "data" is still recorded as available, attached to nothing
      And the VM "app" is recorded as error with a reason mentioning "did not answer"
      And no QEMU process of "app" is left
      And the observer agrees that "app" has failed and finds nothing else
      When the VM "app" is started
      And the disk "data" is attached to "app"
      Then the guest of "app" sees "data" as a new disk of 1 GB

  Rule: A guest that never becomes ready is not left running

    Scenario: A guest whose agent never answers
      Given vman is running with a boot timeout of 5 seconds
      And a template "mute" for the test guest without its guest agent
      And a VM "quiet" created from the mute template
      When the VM "quiet" is started
      Then the request is refused with status 504
      And the problem says "did not become ready within the boot timeout of 5000 ms"
      And the problem says "readiness agent: the guest agent answers and reports an IPv4 address"
      And the VM "quiet" is recorded as error with a reason mentioning "never became ready"
      And no QEMU process of "quiet" is left
      And "quiet" holds no address
      And the observer agrees that "quiet" has failed and finds nothing else
      And the VM "quiet" can be deleted

  @privileged
  Rule: A full disk folder refuses new disks cleanly

    Scenario: qemu-img fails because the filesystem is full
      Given vman is running with its disk folder on a filesystem with only 64 KB free
      When the operator tries to create a disk "big" of 1 GB
      Then the request is refused with status 507
      And the database, the storage folder and the QEMU processes are as they were before, but for the counter of the journal
      And the observer finds nothing wrong
      When the disk folder gets room again
      And a 1 GB disk "big" is created
      Then the file of the disk "big" is a qcow2 image of 1 GB
