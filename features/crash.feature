@integration @crash
Feature: vman killed in the middle of an operation comes back telling the truth
  An operation such as a hot-plug takes several steps, in QEMU, in files, on
  the network and in the database. vman may die between any two of them. When
  it starts again it finds what it was doing (it wrote that down first) and
  settles it from what QEMU, the files and the network really show: what an
  operation had begun to add (a VM start, a new disk, an attach) is taken back,
  so it can be asked for again; what it had begun to take away (a stop, a
  delete, a detach) is finished. A restart is a stop and then a start, so cut
  short it ends stopped.

  Each example makes vman die at one named crash point (VMAN_CRASH_AT), not at
  a moment guessed by timing. Then the database, QEMU (over its second
  monitor), the guest and the files are read by the suite itself: first at
  that moment, before vman is started again, to see that it died where the
  words say (the column "seen"), and then after it settled what it found.

  Rule: What an operation had begun to add is taken back, and it can be asked for again

    Scenario Outline: <operation>, cut short <moment>
      Given everything is ready to <operation>, with vman set to die at "<point>"
      When the operator asks to <operation>
      Then vman dies at "<point>" without answering
      And what it left at that moment shows <seen>
      When vman is started again
      Then the observer's start-up report named the operation vman did not finish
      And the database, QEMU, the guests and the files agree
      And the observer finds nothing wrong
      And everything is as it was before the operator asked
      And the data written to the disks before is intact
      When the operator asks to <operation> again
      Then the request to <operation> succeeded
      And the database, QEMU, the guests and the files agree

      Examples: Making a VM
        | operation   | point                   | moment                                                | seen                            |
        | create a VM | vm.create.before-record | after its folder was made, before the VM was recorded | a VM folder that no row records |

      Examples: Starting a VM
        | operation    | point                  | moment                                                                           | seen                                                                    |
        | start the VM | vm.start.after-address | after it was marked starting and given an address, before its network was set up | the VM recorded starting with an address, and no QEMU                   |
        | start the VM | vm.start.after-network | after its network was set up, before QEMU was launched                           | the VM recorded starting with an address, and no QEMU                   |
        | start the VM | vm.start.after-launch  | after QEMU was launched, before vman connected to it                             | QEMU running the VM, and no pid recorded                                |
        | start the VM | vm.start.after-connect | after vman connected to QEMU, before the guest was ready                         | QEMU running the VM under the pid recorded, its guest not answering yet |
        | start the VM | vm.start.before-record | after the guest was ready, before the VM was recorded running                    | the VM recorded starting, its guest answering                           |

      Examples: Starting a clone: it is made again to resume its snapshot
        | operation       | point                  | moment                                                   | seen                                                                       |
        | start the clone | vm.start.after-connect | after vman connected to QEMU, before the guest was ready | the VM recorded restoring, its QEMU paused with the saved state loaded     |

      Examples: Making a disk
        | operation     | point                    | moment                                                                               | seen                                                     |
        | create a disk | disk.create.after-image  | after qemu-img made the image under a temporary name, before it was moved into place | the image under its temporary name only, and no disk row |
        | create a disk | disk.create.after-rename | after the image was moved into place, before the disk was recorded                   | the image in place, and no disk row                      |

      Examples: Attaching a disk
        | operation                         | point                         | moment                                                       | seen                                                                          |
        | attach the disk to the running VM | disk.attach.after-file-node   | after QEMU opened the disk file, before it read the format   | QEMU holding the disk file only, the disk recorded available                  |
        | attach the disk to the running VM | disk.attach.after-format-node | after QEMU read the format, before the device was added      | QEMU holding the disk file and format, no device, the disk recorded available |
        | attach the disk to the running VM | disk.attach.after-device-add  | after QEMU took the disk, before the guest saw it            | QEMU holding the disk as a device, the disk recorded available                |
        | attach the disk to the running VM | disk.attach.before-record     | after the disk was in place, before it was recorded attached | QEMU holding the disk as a device, the disk recorded available                |
        | attach the disk to the stopped VM | disk.attach.before-record     | after the disk was in place, before it was recorded attached | no QEMU, the disk recorded available                                          |

      Examples: Taking a snapshot of a running VM: the guest runs on, and nothing of the snapshot stays
        | operation               | point                     | moment                                                                    | seen                                                                                     |
        | snapshot the running VM | vm.snapshot.after-pause   | after the guest was paused, before its memory was saved                   | the VM recorded saving, its QEMU paused, a snapshot folder with no state and no row     |
        | snapshot the running VM | vm.snapshot.after-copy    | after its memory was saved and its disks copied, before the guest ran on  | the VM recorded saving, its QEMU done saving, the saved state in a folder no row records |
        | snapshot the running VM | vm.snapshot.before-record | after the guest ran on, before the snapshot was recorded                  | the VM recorded saving, its QEMU running, the saved state in a folder no row records    |

      @privileged
      Examples: Starting a VM on a bridge
        | operation                  | point                   | moment                                                      | seen                                                 |
        | start the VM on the bridge | network.setup.after-tap | after the tap device was made, before DHCP knew the address | the tap device on the bridge, and no reservation yet |

  Rule: What an operation had begun to take away is finished

    Scenario Outline: <operation>, cut short <moment>
      Given everything is ready to <operation>, with vman set to die at "<point>"
      When the operator asks to <operation>
      Then vman dies at "<point>" without answering
      And what it left at that moment shows <seen>
      When vman is started again
      Then the observer's start-up report named the operation vman did not finish
      And <outcome>
      And the database, QEMU, the guests and the files agree
      And the observer finds nothing wrong
      And the data written to the disks before is intact
      When the operator asks to <next>
      Then the request to <next> succeeded
      And the database, QEMU, the guests and the files agree

      Examples: Stopping a VM
        | operation   | point                  | moment                                                             | seen                                                   | outcome           | next         |
        | stop the VM | vm.stop.after-stopping | after it was marked stopping, before QEMU was asked to stop        | the VM recorded stopping, its QEMU still running       | the VM is stopped | start the VM |
        | stop the VM | vm.stop.after-exit     | after QEMU exited, before the network was released                 | the VM recorded stopping with its address, and no QEMU | the VM is stopped | start the VM |
        | stop the VM | vm.stop.before-record  | after the network was released, before the VM was recorded stopped | the VM recorded stopping with its address, and no QEMU | the VM is stopped | start the VM |

      Examples: Restarting a VM: the stop is finished, the start taken back
        | operation      | point                  | moment                                                   | seen                                                                    | outcome           | next         |
        | restart the VM | vm.start.after-connect | after vman connected to QEMU, before the guest was ready | QEMU running the VM under the pid recorded, its guest not answering yet | the VM is stopped | start the VM |

      Examples: Reverting a running VM: its disks are the snapshot's, and it ends stopped
        | operation             | point                 | moment                                                        | seen                                                                           | outcome           | next         |
        | revert the running VM | vm.revert.after-stop  | after its QEMU was ended, before its disks were put back      | the VM recorded restoring with its address, its snapshot recorded, and no QEMU | the VM is stopped | start the VM |
        | revert the running VM | vm.revert.after-disks | after its disks were put back, before its memory was resumed  | the VM recorded restoring with its address, its snapshot recorded, and no QEMU | the VM is stopped | start the VM |

      Examples: Deleting a VM
        | operation     | point                   | moment                                                      | seen                                  | outcome        | next        |
        | delete the VM | vm.delete.before-record | after its QEMU was gone, before its record was removed      | no QEMU, and the VM still recorded    | the VM is gone | create a VM |
        | delete the VM | vm.delete.after-record  | after its record was removed, before its folder was removed | no VM row, and its folder still there | the VM is gone | create a VM |

      Examples: Detaching a disk
        | operation                           | point                             | moment                                                         | seen                                                                            | outcome              | next                              |
        | detach the disk from the running VM | disk.detach.after-device-del      | after the guest was asked to let go of the disk, before it did | QEMU holding the disk file and format, the disk recorded attached               | the disk is detached | attach the disk to the running VM |
        | detach the disk from the running VM | disk.detach.after-device-deleted  | after the guest let go of the disk, before QEMU closed it      | QEMU holding the disk file and format but no device, the disk recorded attached | the disk is detached | attach the disk to the running VM |
        | detach the disk from the running VM | disk.detach.after-format-node-del | after QEMU dropped the format, before it closed the file       | QEMU holding the disk file only, the disk recorded attached                     | the disk is detached | attach the disk to the running VM |
        | detach the disk from the running VM | disk.detach.before-record         | after QEMU closed the disk, before it was recorded available   | QEMU holding nothing of the disk, the disk recorded attached                    | the disk is detached | attach the disk to the running VM |

      Examples: Deleting a disk
        | operation       | point                    | moment                                                        | seen                                           | outcome          | next          |
        | delete the disk | disk.delete.after-move   | after the file was moved aside, before the record was removed | the image moved aside, the disk still recorded | the disk is gone | create a disk |
        | delete the disk | disk.delete.after-record | after the record was removed, before the file was removed     | the image moved aside, and no disk row         | the disk is gone | create a disk |

      @privileged
      Examples: Stopping a VM on a bridge
        | operation                 | point                     | moment                                                           | seen                                           | outcome           | next                       |
        | stop the VM on the bridge | network.release.after-tap | after the tap device was removed, before DHCP forgot the address | no tap device, and the reservation still there | the VM is stopped | start the VM on the bridge |

  Rule: The observer looks from QEMU back to the database, and a repair takes out what no record accounts for

    Scenario: A disk QEMU holds that the database does not know is found, and a repair takes it out of QEMU alone
      Given vman is running on this host
      And a running VM "app" from the small template
      And a 1 GB disk "data"
      When the QEMU of "app" is given the disk "data" behind vman's back
      And the observer checks
      Then the report says the QEMU of "app" holds the disk "data", which is recorded available
      When a repair is asked for
      Then the repair says it took the device and both nodes of "data" out of the QEMU of "app"
      And the QEMU of "app" holds nothing of the disk "data"
      And the guest of "app" no longer sees the disk "data"
      And the file of the disk "data" is unchanged
      And the database, QEMU, the guests and the files agree
      When the disk "data" is attached to "app"
      Then the guest of "app" sees "data" as a disk of 1 GB

  Rule: One vman per storage folder

    Scenario: A second vman on the same storage is refused, and the first one's VMs stay running and recorded running
      Given vman runs as a separate process
      And a running VM "app" from the small template
      And what vman has recorded is noted
      When a second vman is started on the same storage
      Then it refuses to start with status 1, naming the running vman
      And every record is still there, unchanged
      And "app" still runs in the same QEMU process
      And the VM "app" is recorded as running
      And "app" kept its address
      And the database, QEMU, the guests and the files agree
