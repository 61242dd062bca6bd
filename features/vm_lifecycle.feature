@integration @vm-lifecycle @cold
Feature: VM lifecycle
  An operator creates VMs from templates and starts, stops, restarts and
  deletes them through vman's API. What vman records must match what is really
  there: the QEMU process, what QEMU says over QMP, and what the guest itself
  reports through its agent. A VM that cannot start must say why and leave
  nothing behind, and VMs must outlive vman itself.

  Background:
    Given vman is running on this host

  Rule: A VM has the CPUs and memory of its template, as QEMU and the guest see them

    Scenario Outline: A VM from the <template> template has <cpus> CPU(s) and <memory> MB
      Given <made>
      And a running VM "sized" from the <template> template
      Then QEMU of "sized" gives it <cpus> for its number of virtual CPUs and <memory> MB of memory
      And the guest of "sized" counts <cpus> for its number of processors and <memory> MB of memory, less what its kernel keeps

      Examples: The built-in templates
        | template | cpus | memory | made                                |
        | small    | 1    | 512    | the built-in templates are there    |
        | medium   | 2    | 1024   | the built-in templates are there    |
        | large    | 4    | 2048   | the built-in templates are there    |

      Examples: A template of the operator's own, sized unlike any built-in one
        | template | cpus | memory | made                                                                  |
        | odd      | 3    | 768    | a template "odd" is created for the test guest with 3 CPUs and 768 MB |

  Rule: A started VM really runs, and the guest agrees with vman

    Scenario: Create and start a VM
      Given a VM "web" created from the small template
      When the VM "web" is started
      Then the VM "web" is recorded as running
      And QEMU runs the VM "web" and QMP says it is running
      And the guest agent of "web" answers
      And the guest of "web" has the address vman recorded for it

    Scenario: Stop a running VM
      Given a running VM "web" from the small template
      When the VM "web" is stopped
      Then no QEMU process of "web" is left
      And the VM "web" is recorded as stopped
      And the sockets and pidfile of "web" are gone
      And "web" holds no address
      And the VM "web" was stopped through its guest agent

    Scenario: Restart a running VM
      Given a running VM "web" from the small template
      And the suite listens to vman's event stream
      When the VM "web" is restarted
      Then "web" runs in a new QEMU process
      And exactly one QEMU process runs "web"
      And the VM "web" is recorded as running
      And the event stream delivered the VM states "stopping, stopped, starting, running" for "web", and nothing else
      And the guest of "web" has the address vman recorded for it
      And the database, QEMU, the guests and the files agree

    Scenario: A running VM is not deleted without force, and nothing changes
      Given a running VM "web" from the small template
      When the operator tries to delete the VM "web" without force
      Then the request is refused with status 409
      And the answer is a problem whose detail says "?force=true"
      And the database, the storage folder and the QEMU processes are as they were before
      And "web" still runs in the same QEMU process

    Scenario: Delete a running VM with force: it is stopped, and its disk stays with what was written to it
      Given a running VM "web" from the small template
      And a 1 GB disk "data" attached to "web"
      And the guest of "web" writes a marker to the disk "data"
      When the VM "web" is deleted with force
      Then no QEMU process of "web" is left
      And the database has no record of "web"
      And the storage folder of "web" is gone
      And the disk "data" is recorded as available, attached to nothing
      And the file of the disk "data" holds the marker its guest wrote

  Rule: A guest is ready by the rule its template names, and boots the way its image does

    Scenario: A guest without an agent is running once its console says it is ready
      Given a template "quiet" for the test guest without its agent, ready when its console says "VMAN-GUEST-READY"
      And a VM "console" created from the quiet template
      When the VM "console" is started
      Then the VM "console" is recorded as running
      And the console of "console" shows "VMAN-GUEST-READY", and a second read from where the first ended shows only what came since

    Scenario: A template ready as soon as QEMU runs answers the start before the guest has booted
      Given a template "eager" for the test guest that is ready as soon as QEMU runs
      And a VM "fast" created from the eager template
      When the VM "fast" is started
      Then the VM "fast" is recorded as running
      And the API shows no address for "fast" until its guest reports one

    Scenario: A template with only a disk image boots it by the image's own bootloader
      Given a template "disk-boot" that boots the test guest from the disk image by its own bootloader
      And a VM "bios" created from the disk-boot template
      When the VM "bios" is started
      Then the VM "bios" is recorded as running
      And QEMU of "bios" was given no kernel, only its disk
      And the guest of "bios" has the address vman recorded for it

  Rule: The recorded state follows the real process

    Scenario: A guest that powers itself off is recorded as stopped
      Given a running VM "web" from the small template
      When the guest of "web" powers itself off
      Then the VM "web" is recorded as stopped
      And no QEMU process of "web" is left
      And "web" holds no address

    Scenario: A VM whose QEMU is killed is recorded as failed
      Given a running VM "web" from the small template
      When the QEMU process of "web" is killed
      Then the VM "web" is recorded as error with a reason mentioning "died"
      And "web" holds no address

  Rule: A VM that cannot start says why and leaves nothing behind

    Scenario: A template whose kernel file went missing
      Given a template "broken" whose kernel file has since been removed
      And a VM "doomed" created from the broken template
      When the VM "doomed" is started
      Then the request is refused with status 502
      And the problem says "QEMU failed to launch"
      And the VM "doomed" is recorded as error with a reason mentioning "kernel"
      And no QEMU process of "doomed" is left
      And the storage folder of "doomed" holds no sockets or pidfile
      And "doomed" holds no address
      And the VM "doomed" can be deleted

  Rule: VMs outlive vman

    Scenario: vman shut down and started again keeps its VMs running
      Given a running VM "web" from the small template
      When vman is shut down and started again
      Then the VM "web" is recorded as running
      And "web" still runs in the same QEMU process
      And the VM "web" can be stopped through the API

    Scenario: vman killed while a VM runs adopts it when it comes back
      Given vman runs as a separate process
      And a running VM "web" from the small template
      When vman is killed with SIGKILL and started again
      Then the VM "web" is recorded as running
      And "web" still runs in the same QEMU process
      And the guest agent of "web" answers
      And the VM "web" can be stopped through the API
