@api @integration
Feature: Metrics
  An operator's Prometheus reads GET /metrics: VMs and disks by state, each
  running VM's CPU, memory and disk I/O, how long operations took and how many
  failed. `vman vm top` shows the same figures for people. The suite checks
  every figure against what it reads itself: the kernel's /proc, the database
  file, the QEMU processes under vman's storage, and the bytes a guest wrote.

  Background:
    Given vman is running on this host

  Scenario: With two running VMs and a busy disk, /metrics agrees with /proc, the database file and what the guest wrote; a stopped VM leaves its figures
    Given a running VM "web" from the small template
    And a running VM "db" from the small template
    And a 1 GB disk "data" attached to "db"
    And the suite read /metrics
    When the guest of "db" writes 8 MiB to the disk "data" with dd, past its page cache
    Then /metrics counts as written to the disk "data" of "db" exactly the bytes dd wrote since the suite last read it
    And /metrics gives each running VM the CPU seconds /proc counted for its QEMU just before and just after
    And /metrics gives each running VM the resident memory /proc gives its QEMU, within 1 MiB
    And /metrics timed one attach of a disk, in no more time than the suite's request for it took
    When the VM "db" is stopped
    Then /metrics counts the VMs in each state as the database file records them, with as many running as QEMU processes run
    And /metrics gives no CPU, memory or disk figures for "db"
    And "vman vm top" lists "web" alone, with the CPU seconds /proc counted for its QEMU
