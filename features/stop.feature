@integration @vm-lifecycle @stop @cold
Feature: Every way down
  A stop asks the gentlest way first and goes down the ladder only when a way
  does not work: the guest agent, then the ACPI power button, then QEMU's quit
  command, then SIGKILL. Each rung waits its deadline for QEMU to exit, but a
  rung that cannot work (the agent answers with an error, QEMU does not
  answer) hands over at once. However a VM went down, vman records how, gives
  its address back and leaves no socket or pidfile behind. How it went down is
  read from QEMU's own events on the suite's monitor (a POWERDOWN when the
  button was pressed, the SHUTDOWN and its reason, nothing at all when QEMU was
  killed) and from /proc; vman's log must tell the same story rung by rung.

  Background:
    Given vman is running on this host, giving a guest 2 seconds after the ACPI power button

  Scenario: A guest whose shutdown fails and which ignores the power button is stopped by QEMU's quit command
    Given a template "stubborn" for the test guest whose shutdown command fails and which ignores the ACPI power button
    And a running VM "mule" from the stubborn template
    When the VM "mule" is stopped
    Then the VM "mule" was stopped by QEMU's quit command
    And QEMU of "mule" saw its power button pressed 1 time before it went down
    And no QEMU process of "mule" is left
    And the sockets and pidfile of "mule" are gone
    And "mule" holds no address
    And vman's log tells how the stop of "mule" went, rung by rung:
      | rung  | QEMU exited | saw                              |
      | agent | no          | the agent refused guest-shutdown |
      | acpi  | no          | QEMU still ran after 2000 ms     |
      | quit  | yes         | QEMU took quit; QEMU exited      |

  Scenario: A QEMU that stops answering is stopped by SIGKILL
    Given a running VM "web" from the small template
    And the suite listens on the second monitor of "web"
    And the QEMU process of "web" stops responding
    When the VM "web" is stopped
    Then the VM "web" was stopped by SIGKILL
    And no QEMU process of "web" is left
    And the sockets and pidfile of "web" are gone
    And "web" holds no address
    And vman's log tells how the stop of "web" went, rung by rung:
      | rung  | QEMU exited | saw                       |
      | agent | no          | no guest agent answered   |
      | acpi  | no          | system_powerdown failed   |
      | quit  | no          | quit got no answer        |
      | kill  | yes         | SIGKILL sent; QEMU exited |

  Scenario: A forced stop goes straight to QEMU's quit command, without asking the guest
    Given a running VM "web" from the small template
    When the VM "web" is stopped with force
    Then the VM "web" was stopped by QEMU's quit command
    And QEMU of "web" saw its power button pressed 0 times before it went down
    And no QEMU process of "web" is left
    And the sockets and pidfile of "web" are gone
    And "web" holds no address
    And vman's log tells how the stop of "web" went, rung by rung:
      | rung | QEMU exited | saw                         |
      | quit | yes         | QEMU took quit; QEMU exited |
