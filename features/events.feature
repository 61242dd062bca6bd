@api @integration
Feature: Event stream
  vman tells whoever listens at /api/v1/events (server-sent events) every
  change of a VM's or a disk's state, in order. A client can ask for a start
  without waiting for the guest and follow it on the stream. The suite reads
  the stream with its own reader and checks each claim against the database
  file, QEMU (over QMP) and the guest agent.

  Background:
    Given vman is running on this host

  Scenario: A start with ?wait=false answers 202 at once; the VM is starting, then running; the event stream delivered both changes in order
    Given a VM "web" created from the small template
    And the suite listens to vman's event stream
    When the VM "web" is started without waiting
    Then vman answered 202 with a Location to the VM "web"
    And the database file recorded "web" as starting when the answer came
    And the event stream delivered the VM states starting then running for "web", in that order
    And the VM "web" is recorded as running
    And QEMU runs the VM "web" and QMP says it is running
    And the guest agent of "web" answers

  Scenario: Attaching a disk delivers its attached state; stopping the VM delivers stopping then stopped
    Given a running VM "web" from the small template
    And a 1 GB disk "data"
    And the suite listens to vman's event stream
    When the disk "data" is attached to "web"
    And the VM "web" is stopped
    Then the event stream delivered the disk state attached for "data" on "web"
    And the event stream delivered the VM states stopping then stopped for "web", in that order
