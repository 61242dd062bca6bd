@cli
Feature: The vman command
  An operator manages VMs, disks and templates with the `vman` command alone:
  it talks to a running vman over its REST API, accepts names or ids, prints
  tables for people and the API's own JSON for scripts, and exits 0 when done,
  1 when refused (with the problem's detail) and 2 when the command is wrong.
  What it did is checked in the database file, QEMU and the guest, not in
  what the command printed.

  Rule: The vman command alone takes a VM through its whole life

    @integration
    Scenario: An operator creates, starts, equips, watches, stops and removes a VM with the vman command only
      Given vman is running on this host
      When the operator runs "vman vm create web --template small"
      Then the database records a VM "web" made from the small template
      When the operator runs "vman vm start web"
      Then QEMU runs the VM "web" and QMP says it is running
      And "vman vm list" shows "web" running at the address its guest agent reports
      When the operator runs "vman disk create data --size 1"
      And the operator runs "vman disk attach data web"
      Then the database records the disk "data" as attached to "web"
      And QMP lists the disk "data" on "web"
      And the guest of "web" sees "data" as a disk of 1 GB
      And "vman vm console web" shows the ready marker line of the test guest
      When the operator tries "vman vm rm web"
      Then the command exits with code 1
      And its error output says "vman vm rm --force web"
      And QEMU runs the VM "web" and QMP says it is running
      When the operator runs "vman vm stop web"
      Then the VM "web" is recorded as stopped
      And no QEMU process of "web" is left
      When the operator runs "vman disk detach data"
      And the operator runs "vman vm rm web"
      Then the database has no record of "web"
      And no QEMU process of "web" is left

  Rule: --json prints exactly what the API answers

    Scenario Outline: <command> prints the API's answer to GET <path>
      Given vman is running on this host
      And a VM "web" created from the small template
      And a 1 GB disk "data"
      When the operator runs "<command>"
      Then its JSON is what the API answers to GET <path>

      Examples:
        | command                        | path          |
        | vman vm list --json            | /vms          |
        | vman --json vm show web        | /vms/{web}    |
        | vman disk list --json          | /disks        |
        | vman template list --json      | /templates    |
        | vman --json template list      | /templates    |

  Rule: Scripts can rely on the exit code

    Scenario: A refused command exits 1 with the problem's detail and status, and changes nothing
      Given vman is running on this host
      And a VM "web" created from the small template
      And the VMs vman holds are noted
      When the operator tries "vman vm create web --template small"
      Then the command exits with code 1
      And its error output says "already exists"
      And its error output says "HTTP 409"
      And the database holds the same VMs as before the command

    Scenario: A typo in a command exits 2 naming it
      Given vman is running on this host
      When the operator tries "vman vm strat web"
      Then the command exits with code 2
      And its error output says "unknown command 'strat'"
