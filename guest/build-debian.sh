#!/usr/bin/env bash
# Builds the real guest: a Debian 12 (bookworm) image from Debian's packages,
# with systemd, cloud-init, openssh-server and qemu-guest-agent, and a second
# image without the agent (as most cloud images ship). No loop devices, no
# mounts: debootstrap into a folder, `mkfs.ext4 -d` makes the file system,
# `qemu-img convert` the qcow2. Direct kernel boot (kernel and initrd beside the
# images). Cached in ~/.cache/vman/debian/<key>/, keyed by the package versions
# and this recipe; `current` points at the latest. Prints the folder. Needs root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { printf 'debian guest: %s\n' "$*" >&2; }

cache_root="${VMAN_DEBIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman/debian}"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
# python3-cffi-backend: debootstrap does not resolve the virtual package python3-cryptography needs.
# dbus: without it systemd-logind does not run, and neither `shutdown +0` (what the agent runs) nor the ACPI power button powers the guest off.
packages=(systemd-sysv udev dbus linux-image-cloud-amd64 ifupdown isc-dhcp-client qemu-guest-agent cloud-init openssh-server sudo python3-cffi-backend)

# The key (guest/cache-key.sh): what apt would install now, and this recipe. Sets versions.
# shellcheck source=cache-key.sh source-path=SCRIPTDIR
. "$here/cache-key.sh"
debian_key
out="$cache_root/$key"
if [ -f "$out/manifest.json" ]; then
  ln -sfn "$out" "$cache_root/current"
  echo "$out"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "needs root (debootstrap); run ./setup.sh with sudo"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vman-debian-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"

log "debootstrap bookworm from $mirror (a few minutes)"
debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2; grep -B2 -A8 'error processing' "$root/debootstrap/debootstrap.log" >&2 || true; exit 1; }

log "configuring"
install -m 644 "$here/debian/interfaces" "$root/etc/network/interfaces"
install -m 644 "$here/debian/fstab" "$root/etc/fstab"
install -m 644 "$here/debian/99-vman.cfg" "$root/etc/cloud/cloud.cfg.d/99-vman.cfg"
echo debian > "$root/etc/hostname"
# Each VM gets its own: systemd makes a machine-id at first boot, cloud-init new SSH host keys.
: > "$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

mkdir -p "$work/out"
cp "$(ls "$root"/boot/vmlinuz-* | head -1)" "$work/out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | head -1)" "$work/out/initrd.img"
kernel_version=$(basename "$(ls "$root"/boot/vmlinuz-* | head -1)" | sed 's/^vmlinuz-//')

image() { # <rootdir> <name>
  mkfs.ext4 -q -F -L debian-root -d "$1" "$work/$2.raw" 3G >&2  # it says "Creating regular file" on stdout
  qemu-img convert -q -f raw -O qcow2 "$work/$2.raw" "$work/out/$2.qcow2"
  rm -f "$work/$2.raw"
}
log "making debian.qcow2"
image "$root" debian
log "making debian-noagent.qcow2 (the same, without qemu-guest-agent)"
rm -f "$root/usr/sbin/qemu-ga" "$root/lib/systemd/system/qemu-guest-agent.service" "$root/etc/systemd/system/multi-user.target.wants/qemu-guest-agent.service"
image "$root" debian-noagent

cat > "$work/out/manifest.json" <<EOF
{
  "key": "$key",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "image": "debian.qcow2",
  "image_without_agent": "debian-noagent.qcow2",
  "cmdline": "root=LABEL=debian-root rw net.ifnames=0 console=ttyS0",
  "user": "debian",
  "kernel_version": "$kernel_version",
  "versions": "$(printf '%s' "$versions" | tr '\n' ' ')"
}
EOF
mkdir -p "$cache_root"
rm -rf "$out"
mv "$work/out" "$out"
ln -sfn "$out" "$cache_root/current"
log "built $out"
echo "$out"
