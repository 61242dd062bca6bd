@smoke @integration
Feature: The test guest boots on this host
  Every other feature starts VMs. Before any of them can mean anything, this
  host has to boot the test guest with the accelerator that really works here,
  the guest has to answer through its agent and tell the truth about its
  network, and stopping it has to leave nothing behind.

  Scenario: What this run runs on
    Given the host has been probed
    Then the probe names the QEMU version that qemu-system-x86_64 itself reports
    And it names the accelerator in use and why it was chosen
    And it names the host kernel and the guest image

  Scenario: A VM boots from the built guest image, answers and stops cleanly
    Given a VM booted from the test guest image with the address 10.0.2.15
    Then the guest prints its ready marker on the serial console
    And the guest agent answers
    And the guest reports the address 10.0.2.15 on its network interface
    When the VM is powered off
    Then no QEMU process of the VM is left
    And the VM's sockets and pidfile are gone
