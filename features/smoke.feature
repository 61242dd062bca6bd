@smoke @integration @cold
Feature: The test guest boots on this host
  Every other feature starts VMs. Before any of them can mean anything, this
  host has to boot the test guest (started here by the suite itself, with a
  QEMU command line of its own), the guest has to answer through its agent and
  tell the truth about its network, and stopping it has to leave nothing
  behind. vman's account of the host is checked against the tools.

  Scenario: What this run runs on, as vman says and as the tools say
    Given vman is running on this host
    Then vman reports the QEMU and qemu-img that the tools themselves report
    And vman names the accelerator it uses and why, and a VM it starts runs on that accelerator, as QEMU says
    And vman names the host kernel and the guest image this run built

  Scenario: A VM boots from the built guest image, answers and stops cleanly
    Given a VM booted from the test guest image with the address 10.0.2.15
    Then the guest prints its ready marker on the serial console
    And the guest agent answers
    And the guest reports the address 10.0.2.15 on its network interface
    When the VM is powered off
    Then no QEMU process of the VM is left
    And the VM's sockets and pidfile are gone
