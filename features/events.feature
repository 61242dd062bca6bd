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

  # A client that loses its connection sends back the id of the last event it
  # saw (Last-Event-ID, as a browser's EventSource does) and is told what it
  # missed: no VM needs to run for that, disks change state too.
  Scenario: A client that reconnects with the last event id it saw gets every change it missed once, in order, then what happens next
    Given the suite listens to vman's event stream
    And a 1 GB disk "a"
    When the suite's connection to the event stream is cut once it has delivered "a" as available
    And a 1 GB disk "b"
    And the disk "a" is deleted
    And the suite listens again, sending back the id of the last event it saw
    And a 1 GB disk "c"
    Then the event stream delivered these disk states, each once and in this order:
      | disk | state     |
      | b    | available |
      | a    | deleted   |
      | c    | available |

  Scenario: A client that reconnects after vman restarted is told to list again, and then follows what happens
    Given vman runs as a separate process
    And the suite listens to vman's event stream
    And a 1 GB disk "a"
    When the suite's connection to the event stream is cut once it has delivered "a" as available
    And vman is shut down and started again
    And the suite listens again, sending back the id of the last event it saw
    And a 1 GB disk "b"
    Then the event stream began with one reset event, for the reason "restarted"
    And the event stream delivered these disk states, each once and in this order:
      | disk | state     |
      | b    | available |

  Scenario: A client too far behind for the events vman keeps is told to list again
    Given vman keeps the latest 2 events for clients that reconnect
    And the suite listens to vman's event stream
    And a 1 GB disk "a"
    When the suite's connection to the event stream is cut once it has delivered "a" as available
    And a 1 GB disk "b"
    And a 1 GB disk "c"
    And a 1 GB disk "d"
    And the suite listens again, sending back the id of the last event it saw
    And the disk "b" is deleted
    Then the event stream began with one reset event, for the reason "too-far-behind"
    And the event stream delivered these disk states, each once and in this order:
      | disk | state   |
      | b    | deleted |
