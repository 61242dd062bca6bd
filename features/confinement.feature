@confinement @privileged @integration
Feature: Confinement
  Under TCG, a guest that escapes QEMU holds whatever QEMU holds, and these
  machines have only TCG. So when vman runs as root (in CI, as a service),
  it confines every VM's QEMU:
  - it runs as a user of its own, from VMAN_QEMU_UID_RANGE, recorded with the
    VM, with no capabilities, no supplementary groups and no_new_privs;
  - a seccomp sandbox forbids it to run programs, change privileges, or
    change its scheduling or affinity;
  - it lives in a cgroup of its own, limited to its template's memory and
    512 MB more for QEMU itself, and to 256 processes;
  - its folder, and its disks while attached, are its user's alone. The
    database, the storage, other VMs' disks and the host's files are out of
    its reach. A clone may read its origin's snapshot image, and nothing
    else of its origin.

  The suite runs as root, so every other feature runs confined too: hot-plug,
  the console, the guest agent, the SSH forward, every rung of a stop, vman's
  restarts with adoption, and the crash outline.

  Here the suite reads the confinement for itself:
  - /proc/<pid>/status and /proc/<pid>/cgroup of each QEMU, and the cgroup's
    own files;
  - the owners, modes and ACLs of the files;
  - the kernel's audit log;
  - QEMU's answers over the VM's own second monitor, which a guest that had
    escaped would hold.

  Background:
    Given vman is running on this host

  Scenario: A VM's QEMU runs as a user of its own, without privileges, sandboxed, in a cgroup of its own
    Given a running VM "web" from the small template
    Then the QEMU of "web" runs as the uid and gid the database recorded for "web", which no user or group of this host has
    And the QEMU of "web" has no supplementary groups, no capabilities, no_new_privs set and a seccomp filter
    And the QEMU of "web" is alone in a cgroup of its own, limited to 1024 MB of memory and 256 processes
    And the folder of "web" is its QEMU user's with mode 0700, and so are its seed with mode 0400 and its console log with mode 0600

  Scenario: Two VMs run as two users, and neither's QEMU can open the other's disk, the database or the host's files
    Given a running VM "web" from the small template
    And a running VM "db" from the small template
    And a 1 GB disk "data" attached to "db"
    Then the QEMU processes of "web" and "db" run as two different users
    And the disk "data" belongs to the QEMU user of "db", with mode 0600
    And over its own monitor, the QEMU of "web" cannot open the host's "/etc/shadow": Permission denied
    And over its own monitor, the QEMU of "web" cannot open vman's database: Permission denied
    And over its own monitor, the QEMU of "web" cannot open the disk "data": Permission denied
    And over its own monitor, the QEMU of "web" cannot open the seed of "db": Permission denied
    When the disk "data" is detached
    Then the disk "data" belongs to vman's user again, with mode 0600

  Scenario: A QEMU asked to run a program is killed by its sandbox, and vman records why
    Given a running VM "web" from the small template
    When over its own monitor, the QEMU of "web" is asked to migrate to "exec:cat"
    Then the kernel's audit log shows the QEMU of "web" killed by SIGSYS, under the uid vman recorded for "web"
    And no QEMU process of "web" is left
    And the VM "web" is recorded as error with a reason mentioning "killed by SIGSYS: its seccomp sandbox refused a system call"
    When the observer checks
    Then the report says "web" has failed, naming "killed by SIGSYS"

  Scenario: A clone reads its origin's snapshot image, and nothing else of its origin
    Given a template "boot" that boots the test guest from the disk image by its own bootloader
    And a running VM "origin" from the boot template
    When a snapshot "s" of "origin" is taken
    And a VM "clone" is cloned from the snapshot "s" of "origin"
    And the VM "clone" is started
    Then the QEMU of "clone" runs its root disk over the image of the snapshot "s"
    And the image of the snapshot "s" is readable by the QEMU user of "clone" and by no other user but root
    And over its own monitor, the QEMU of "clone" cannot open the root disk of "origin": Permission denied
    When the VM "clone" is deleted with force
    Then the image of the snapshot "s" is readable by no user but root

  Scenario: After vman is killed and started again, a VM runs on as the same user, and a disk hot-plugged then is that user's
    Given vman runs as a separate process
    And a running VM "web" from the small template
    And a 1 GB disk "data"
    When vman is killed with SIGKILL and started again
    And the disk "data" is attached to "web"
    Then "web" still runs in the same QEMU process
    And the QEMU of "web" runs as the uid and gid the database recorded for "web", which no user or group of this host has
    And the disk "data" belongs to the QEMU user of "web", with mode 0600
    And the guest of "web" sees "data" as a new disk of 1 GB
