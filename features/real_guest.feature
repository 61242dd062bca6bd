@integration @real-guest @cold
Feature: A Debian cloud image, run the way its users run it
  Everything else runs on the suite's own busybox guest. People boot
  distribution images: this one is Debian 12, made from Debian's packages by
  ./setup.sh, with systemd, cloud-init, an SSH server and the QEMU guest agent,
  and a copy without the agent, as most cloud images ship.

  vman gives each VM a cloud-init seed (its name, the SSH keys it was given),
  forwards a port on 127.0.0.1 to its SSH server, knows it is ready by the rule
  its template names, and stops it the clean way it can: through its agent,
  else the ACPI power button, then QEMU's quit. These VMs take half a minute
  to boot under software emulation, so they are few.

  # A clone of a guest that ran its first boot is a copy of its secrets too:
  # the README says what a user should do about it. The disk is made, detached
  # and attached again on the clone: one Debian boot fewer than on a VM of its
  # own, and a hot-plug into a Debian guest that was resumed, not booted. The
  # origin is stopped once the clone has been compared with it: a Debian guest
  # that waits still takes about half a core under TCG, and the disk needs only
  # the clone.
  @snapshots
  Scenario: A Debian VM has its template's size and its own name, lets its user in with the key it was given, starts a clone warm that keeps its host keys, and stops cleanly through its agent; the clone keeps a file system's data across a detach and an attach
    Given vman is running on this host
    And a template "debian" for the Debian image with 2 CPUs and 1024 MB
    And a VM "deb1" created from the debian template with the operator's SSH key
    When the VM "deb1" is started
    Then QEMU of "deb1" gives it 2 for its number of virtual CPUs and 1024 MB of memory
    And the guest of "deb1" counts 2 for its number of processors and 1024 MB of memory, less what its kernel keeps
    And an SSH session to "deb1" as its default user runs "hostname" and prints "deb1"
    When a snapshot "booted" of "deb1" is taken
    And a VM "deb1-clone" is cloned from the snapshot "booted" of "deb1"
    And the VM "deb1-clone" is started
    Then QEMU of "deb1-clone" was started from the saved state
    And the guest clock of "deb1-clone" is within 2 s of the host's
    And the guests of "deb1-clone" and "deb1" hold the same SSH host keys, as the README warns
    When the VM "deb1" is stopped
    Then the VM "deb1" was stopped through its guest agent
    And the root file system of "deb1" was cleanly unmounted
    Given a 1 GB disk "data" attached to "deb1-clone"
    When the guest of "deb1-clone" makes a file system on the disk "data", writes a note to it and unmounts it
    And the disk "data" is detached
    And the disk "data" is attached to "deb1-clone"
    Then the guest of "deb1-clone" mounts the disk "data" and finds the note on it
    And the database, QEMU, the guests and the files agree

  Scenario: A Debian image without a guest agent is running once SSH answers, and stops by the ACPI power button
    Given vman is running on this host
    And a template "bare" for the Debian image without its agent, with 2 CPUs and 1024 MB, ready when SSH answers
    And a VM "deb3" created from the bare template with the operator's SSH key
    When the VM "deb3" is started
    Then the VM "deb3" is recorded as running
    And an SSH session to "deb3" as its default user runs "hostname" and prints "deb3"
    When the VM "deb3" is stopped
    Then the VM "deb3" was stopped by the ACPI power button
    And the root file system of "deb3" was cleanly unmounted
