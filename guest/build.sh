#!/usr/bin/env bash
# Builds the test guest: the Debian cloud kernel and a busybox initramfs with
# the virtio modules and qemu-ga, both uncompressed for direct kernel boot
# (guest/unpack-kernel.sh: QEMU starts the kernel at its PVH entry, and the
# guest decompresses nothing under TCG). The result lands in a cache folder
# keyed by the package versions (guest/cache-key.sh), so a second run with the
# same packages does nothing.
#
# Usage: guest/build.sh            prints the image folder on stdout
# Env:   VMAN_GUEST_CACHE          cache root (default ~/.cache/vman/guest)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VMAN_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman/guest}
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         failover net_failover virtio_net virtio_blk virtio_console button evdev)

log() { echo "guest: $*" >&2; }

# The key (guest/cache-key.sh): the package versions and this recipe. Sets
# kernel_pkg (e.g. linux-image-6.1.0-56-cloud-amd64), kernel_ver, ga_ver, bb_ver.
# shellcheck source=cache-key.sh source-path=SCRIPTDIR
. "$here/cache-key.sh"
guest_key
out="$cache/$key"

if [ -f "$out/manifest.json" ]; then
  ln -sfn "$key" "$cache/current"
  echo "$out"
  exit 0
fi

log "building $out ($kernel_pkg $kernel_ver, qemu-guest-agent $ga_ver, busybox $bb_ver)"
work=$(mktemp -d "${TMPDIR:-/tmp}/vman-guest-build.XXXXXX")
chmod 711 "$work"   # apt downloads as _apt and must reach dl/
trap 'rm -rf "$work"' EXIT
mkdir "$work/dl"; chown _apt "$work/dl" 2>/dev/null || true  # apt downloads as _apt

(cd "$work/dl" && apt-get download -q "$kernel_pkg=$kernel_ver" "qemu-guest-agent=$ga_ver" >&2)
dpkg-deb -x "$work"/dl/linux-image-*.deb "$work/kernel"
dpkg-deb -x "$work"/dl/qemu-guest-agent_*.deb "$work/ga"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,mnt,etc/acpi/PWRF,lib/modules,var/log}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ln -s ../bin/busybox "$root/sbin/init"
ln -s bin/busybox "$root/init"
ln -s ../run "$root/var/run"

# Modules in dependency order (the extracted package has no modules.dep).
moddir=$(echo "$work"/kernel/lib/modules/*)
for m in "${modules[@]}"; do
  f=$(find "$moddir" -name "$m.ko*" | head -n 1)
  [ -n "$f" ] || { log "module $m not found in $kernel_pkg"; exit 1; }
  cp "$f" "$root/lib/modules/"
done
printf '%s\n' "${modules[@]}" > "$root/lib/modules/order"

# qemu-ga and the shared libraries it links, at the same paths.
install -D -m 755 "$work/ga/usr/sbin/qemu-ga" "$root/sbin/qemu-ga"
ldd "$work/ga/usr/sbin/qemu-ga" | awk '/=> \// {print $3} /^\t\/.*ld-linux/ {print $1}' | while read -r lib; do
  [ -f "$lib" ] || { log "missing library $lib for qemu-ga"; exit 1; }
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
if ldd "$work/ga/usr/sbin/qemu-ga" | grep -q 'not found'; then
  log "qemu-ga needs libraries this host lacks:"; ldd "$work/ga/usr/sbin/qemu-ga" | grep 'not found' >&2; exit 1
fi

install -m 755 "$here/rootfs/rcS" "$root/etc/rcS"
install -m 755 "$here/rootfs/rc.ready" "$root/etc/rc.ready"
install -m 644 "$here/rootfs/inittab" "$root/etc/inittab"
install -m 755 "$here/rootfs/udhcpc.script" "$root/etc/udhcpc.script"
install -m 755 "$here/rootfs/qemu-ga.sh" "$root/sbin/qemu-ga.sh"
install -m 755 "$here/rootfs/power-button" "$root/etc/acpi/PWRF/00000080"
install -m 755 "$here/rootfs/shutdown" "$root/sbin/shutdown"
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"

mkdir -p "$work/out"
cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"
"$here/unpack-kernel.sh" "$work/vmlinuz" "$work/out/vmlinux"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$work/out/initrd.img"

# The same guest on a disk that boots by its own bootloader (SYSLINUX on a FAT
# file system, no partition table): what a template with only a base image
# boots, as distribution cloud images do, with the bzImage and a gzipped
# initramfs as they ship. mtools and syslinux write into the image file itself:
# no loop device, no mount.
boot_img="$work/out/boot.img"
truncate -s 48M "$boot_img"
mkfs.vfat -n VMANBOOT "$boot_img" >/dev/null
gzip -1 < "$work/out/initrd.img" > "$work/initrd.img"
printf 'DEFAULT vman\nLABEL vman\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND console=ttyS0 panic=-1 quiet\n' > "$work/syslinux.cfg"
mcopy -i "$boot_img" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
syslinux --install "$boot_img"
cat > "$work/out/manifest.json" <<JSON
{
  "key": "$key",
  "kernel_package": "$kernel_pkg",
  "kernel_version": "$kernel_ver",
  "qemu_guest_agent_version": "$ga_ver",
  "busybox_version": "$bb_ver",
  "kernel": "vmlinux",
  "initrd": "initrd.img",
  "boot_image": "boot.img",
  "cmdline": "console=ttyS0 panic=-1 quiet",
  "ready_marker": "VMAN-GUEST-READY"
}
JSON
mkdir -p "$cache"
rm -rf "$out.tmp"; mv "$work/out" "$out.tmp"; mv "$out.tmp" "$out"
ln -sfn "$key" "$cache/current"
log "built $out"
echo "$out"
