@integration @network @cold
Feature: Network addresses and bridge mode
  Every VM that starts takes one address from the configured range: the
  lowest one free. vman records it in its database together with the VM's
  state, gives it back when the VM stops, and never hands one address to two
  VMs. The guest must really take that address, which the suite asks the
  guest itself through its agent.

  By default QEMU's own user-mode network hands the guest its address and lets
  it reach nothing outside; that needs no privileges. In bridge mode, which
  needs root, each VM gets a tap device on a bridge and a DHCP reservation in
  a dnsmasq that vman runs on that bridge; those scenarios build their own
  network namespace with a bridge and remove it afterwards.

  Every VM here boots cold (@cold): a clone of a warm snapshot keeps the
  address its guest was saved with, so it could not show which address a
  start hands out.

  Rule: A starting VM takes the lowest free address, and the guest has exactly that address

    Scenario: The guest, the API and the database agree on the address a started VM got
      Given vman is running with the address range 10.0.2.15-10.0.2.20
      And a running VM "web" from the small template
      Then the database records the address 10.0.2.15 for "web"
      And the API shows "web" with the address 10.0.2.15
      And the guest of "web" reports the address 10.0.2.15 through its agent

    Scenario: Two VMs started at the same moment get different addresses
      Given vman is running with the address range 10.0.2.15-10.0.2.16
      And a VM "web" created from the small template
      And a VM "db" created from the small template
      When the VMs "web" and "db" are started at the same moment
      Then "web" and "db" hold different addresses of the range, in the database and in their guests

  Rule: A stopped VM gives its address back for the next VM that starts

    Scenario: The address of a stopped VM goes to the next VM
      Given vman is running with the address range 10.0.2.15-10.0.2.16
      And a running VM "web" from the small template
      When the VM "web" is stopped
      Then 10.0.2.15 is allocated to no VM, in the API and in the database
      When a VM "db" from the small template is started
      Then the guest of "db" reports the address 10.0.2.15 through its agent
      And the database records the address 10.0.2.15 for "db"

  Rule: A full range refuses the start and leaves the VM as it was

    Scenario: Starting a VM when every address is taken
      Given vman is running with the address range 10.0.2.15-10.0.2.15
      And a running VM "web" from the small template
      And a VM "db" created from the small template
      When the VM "db" is started while every address is taken
      Then the start is refused with status 409 because the address range is exhausted
      And the VM "db" is unchanged in the database, holds no address and has no QEMU process

  Rule: vman shows its network configuration and who holds which address

    Scenario: User mode shows its settings and the allocations
      Given vman is running with these network settings:
        | mode    | user                  |
        | subnet  | 10.0.2.0/24           |
        | gateway | 10.0.2.2              |
        | range   | 10.0.2.100-10.0.2.109 |
      And a running VM "web" from the small template
      Then vman reports this network configuration:
        | mode      | user                  |
        | bridge    | none                  |
        | vlan      | none                  |
        | subnet    | 10.0.2.0/24           |
        | gateway   | 10.0.2.2              |
        | range     | 10.0.2.100-10.0.2.109 |
        | addresses | 10                    |
      And the allocations are "web" at 10.0.2.100, in the API and in the database
      And the guest of "web" reports the address 10.0.2.100 through its agent
      And the guest of "web" says on its console that it got the lease of 10.0.2.100 from 10.0.2.2

    @privileged
    Scenario: Bridge mode shows its bridge and VLAN, with dnsmasq serving the bridge
      Given vman runs in bridge mode with VLAN 42 in a network namespace of its own
      Then vman reports this network configuration:
        | mode      | bridge                      |
        | bridge    | vbr0                        |
        | vlan      | 42                          |
        | subnet    | 192.168.77.0/24             |
        | gateway   | 192.168.77.1                |
        | range     | 192.168.77.10-192.168.77.20 |
        | addresses | 11                          |
      And no address is allocated, in the API and in the database
      And a dnsmasq started by vman serves DHCP on the bridge inside the namespace

  @privileged
  Rule: In bridge mode each VM has a tap device on the bridge and a DHCP reservation in dnsmasq

    Scenario: The guest gets its reserved address from dnsmasq and answers from it across the bridge
      Given vman runs in bridge mode in a network namespace of its own
      And a running VM "web" from the small template
      Then the QEMU process of "web" holds a tap device of its own on the bridge
      And the guest of "web" has the address vman recorded for it
      And dnsmasq has reserved and leased that address to the MAC of "web"
      And "web" answers a ping across the bridge from that address and its MAC

    Scenario: A stopped VM leaves no tap device or reservation, and its address serves the next VM
      Given vman runs in bridge mode in a network namespace of its own
      And a running VM "web" from the small template
      When the VM "web" is stopped
      Then the bridge has no tap device and dnsmasq no reservation for "web"
      When a VM "db" from the small template is started
      Then the guest of "db" reports the address 192.168.77.10 through its agent
      And dnsmasq has reserved and leased that address to the MAC of "db"

    @unjudged:disagreement-on-purpose
    Scenario: A tap device and a DHCP reservation that no VM holds are reported
      Given vman runs in bridge mode in a network namespace of its own
      When a tap device named like a VM's is put on the bridge by hand
      And a DHCP reservation is written into dnsmasq's hosts file by hand
      And the observer checks
      Then the report names the hand-made tap device as an orphan of no VM
      And the report names the hand-written reservation as an orphan

    Scenario: A vman killed in bridge mode leaves the VM its address, and the next vman serves it
      Given vman runs in bridge mode in a network namespace of its own
      And a running VM "web" from the small template
      When vman in the namespace is killed with SIGKILL and started again
      Then a new dnsmasq, and only that one, serves the reservation of "web"
      And "web" answers a ping across the bridge from that address and its MAC

  @privileged
  Rule: A VLAN is tagged on the tap when the kernel can, and refused with the kernel's reason when it cannot

    Scenario: The tap device carries the configured VLAN
      Given this kernel can filter VLANs on a bridge
      And vman runs in bridge mode with VLAN 42 in a network namespace of its own
      And a running VM "web" from the small template
      Then the tap device of "web" is an untagged member of VLAN 42 only
      And the guest of "web" has the address vman recorded for it

    Scenario: Starting a VM with a VLAN on a kernel that cannot tag is refused with a clear error
      Given this kernel cannot filter VLANs on a bridge
      And vman runs in bridge mode with VLAN 42 in a network namespace of its own
      And a VM "web" created from the small template
      When the VM "web" is started
      Then the start is refused with status 409 saying "this kernel cannot tag VLAN 42 on vbr0"
      And the bridge has no tap device and dnsmasq no reservation for "web"
      And the VM "web" is unchanged in the database, holds no address and has no QEMU process
