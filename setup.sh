#!/usr/bin/env bash
# Installs everything a fresh Debian machine lacks to build, run and test vman:
# Debian packages, the npm dependencies and the guest images. Idempotent: a
# second run checks and does nothing slow. Run it as yourself (it calls sudo
# for the packages and debootstrap) or with sudo: either way the npm
# dependencies, the build and the guest images belong to you and land in your
# ~/.cache/vman.
#
# Usage: ./setup.sh [--unit | --packages] [--no-debian-guest]
#   --unit             only what the unit tests and linters need: no QEMU emulator, no guest images
#   --packages         only the Debian packages (CI restores the cached guest images after this)
#   --no-debian-guest  no Debian image (only @real-guest scenarios boot it; it takes minutes cold)
set -euo pipefail
cd "$(dirname "$0")"

log() { printf 'setup: %s\n' "$*"; }
usage() { sed -n '/^# Usage:/,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }

mode=all debian_guest=yes user_stage=no
for arg in "$@"; do
  case $arg in
    --unit) mode=unit ;;
    --packages) mode=packages ;;
    --no-debian-guest) debian_guest=no ;;
    --user-stage) user_stage=yes ;;  # internal: the part run as the user when started with sudo
    -h | --help) usage; exit 0 ;;
    *) log "unknown option: $arg"; usage >&2; exit 2 ;;
  esac
done

# npm dependencies, the build and the test guest: done as whoever owns them.
user_steps() {
  # npm ci only when the lockfile changed since the last install.
  local lock_sum
  lock_sum=$(sha256sum package-lock.json | cut -c1-16)
  if [ "$(cat node_modules/.vman-lock 2>/dev/null)" != "$lock_sum" ]; then
    log "npm ci (native modules build from source when no prebuilt binary fits: about four minutes on 2 cores)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_sum" > node_modules/.vman-lock
  else
    log "npm dependencies up to date"
  fi
  npm run -s build
  log "vman compiled to dist/vman.mjs"
  [ "$mode" != unit ] || return 0
  local guest  # assigned first: a failed build inside log's arguments would not stop the script
  guest=$(guest/build.sh)
  log "guest image: $guest"
}
if [ "$user_stage" = yes ]; then user_steps; exit 0; fi

# Before anything is installed: the things this script cannot install itself.
# Node.js: the one rule, also in package.json's engines and .nvmrc.
node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a===20&&b>=19||a>=22?"yes":"no")' 2>/dev/null || echo missing)
if [ "$node_ok" != yes ]; then
  found=$(node --version 2>/dev/null || echo "none on PATH")
  log "Node.js 20.19 or newer (20.x from 20.19, or 22 and later) is required; found: $found. Get it from https://nodejs.org or NodeSource (https://github.com/nodesource/distributions), or with nvm: nvm install (reads .nvmrc)"
  # sudo replaces PATH with its secure_path, where a Node.js from nvm is not.
  [ -z "${SUDO_USER:-}" ] || log "under sudo PATH is sudo's own: run ./setup.sh without sudo (it calls sudo itself), or sudo env PATH=\"\$PATH\" ./setup.sh"
  exit 1
fi
command -v apt-get >/dev/null || { log "this script supports Debian and its derivatives (apt-get); on this system install the packages it lists by hand"; exit 1; }

# Root's part (packages, debootstrap) runs as root, through sudo when needed.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "not root and no sudo: run ./setup.sh as root (for the Debian packages and debootstrap)" >&2; exit 1
  fi
}

# Whom the rest is for: under sudo the user who ran it, so that a later run
# as that user finds node_modules, dist and ~/.cache/vman their own.
owner=() owner_home=$HOME owner_ids="$(id -u):$(id -g)"
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  owner_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  [ -d "$owner_home" ] || { log "no home folder for $SUDO_USER (getent passwd $SUDO_USER)"; exit 1; }
  owner=(runuser -u "$SUDO_USER" -- env HOME="$owner_home")
  owner_ids="$(id -u "$SUDO_USER"):$(id -g "$SUDO_USER")"
fi
as_owner() { "${owner[@]}" "$@"; }

# qemu-guest-agent's libraries (libglib2.0-0, libnuma1, libudev1, liburing2) are
# copied from the host into the guest's initramfs, so they must be installed here.
# lz4, xz-utils and zstd unpack the test guest's kernel (guest/unpack-kernel.sh:
# whichever its bzImage was packed with). genisoimage makes cloud-init seeds;
# debootstrap the Debian guest; dosfstools, mtools and syslinux the test guest's
# bootable disk; openssh-client is how
# the suite logs in to guests; chromium (headless) renders the API's
# documentation page for the suite, with fonts-liberation for its text.
# python3, make and g++ build the native npm modules when no prebuilt binary fits.
# acl: vman as root lets a clone's QEMU read its origin's snapshot images with setfacl (src/operator/confinement.ts).
# The unit tests make disks with qemu-img (qemu-utils, no emulator) and seeds with genisoimage.
unit_packages=(python3 make g++ ca-certificates qemu-utils genisoimage)
packages=(
  "${unit_packages[@]}"
  qemu-system-x86 busybox-static cpio gzip lz4 xz-utils zstd dnsmasq-base iproute2 sqlite3 acl
  libglib2.0-0 libnuma1 libudev1 liburing2
  debootstrap dosfstools mtools syslinux syslinux-common openssh-client e2fsprogs
  chromium fonts-liberation
)
[ "$mode" != unit ] || packages=("${unit_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The guest build asks apt which cloud kernel is current; that needs package lists.
kernel_known=yes
if [ "$mode" != unit ]; then
  kernel_known=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null | awk '/Candidate:/ {print $2}')
fi
if [ ${#missing[@]} -gt 0 ] || [ -z "$kernel_known" ] || [ "$kernel_known" = "(none)" ]; then
  log "apt-get update"
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi
# vman as root runs each VM's QEMU as a user of its own, which opens /dev/net/tun to
# attach to its tap (bridge mode). udev's default rule makes it 0666; a host without
# udev (a container, a minimal VM like these) leaves the kernel's 0600.
if [ "$mode" != unit ] && [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  log "/dev/net/tun: 0666, as udev's default rule sets it"
  as_root chmod 0666 /dev/net/tun
fi
[ "$mode" != packages ] || exit 0

if [ ${#owner[@]} -gt 0 ]; then
  as_owner test -w . || { log "$SUDO_USER cannot write to $PWD: run ./setup.sh in a checkout of theirs"; exit 1; }
  # What an earlier run as root left here would stop npm and the suite running as the user.
  for d in node_modules dist reports; do
    [ ! -e "$d" ] || [ "$(stat -c %U "$d")" = "$SUDO_USER" ] || chown -R "$SUDO_USER:" "$d"
  done
  as_owner ./setup.sh --user-stage "$@"
else
  user_steps
fi

[ "$mode" = all ] && [ "$debian_guest" = yes ] || exit 0
# debootstrap needs root; the image goes to the owner's cache all the same, and
# becomes theirs. The folder is made by the owner so that its parents are theirs.
debian_cache="${XDG_CACHE_HOME:-$owner_home/.cache}/vman/debian"
as_owner mkdir -p "$debian_cache"
# Not root: as yourself first, since an image already built needs no root (no sudo prompt).
if [ "$(id -u)" -ne 0 ] && debian=$(VMAN_DEBIAN_CACHE="$debian_cache" guest/build-debian.sh 2>/dev/null); then
  :
else
  debian=$(as_root env VMAN_DEBIAN_CACHE="$debian_cache" guest/build-debian.sh)
  [ "$owner_ids" = 0:0 ] || as_root chown -R "$owner_ids" "$debian_cache"
fi
log "Debian guest: $debian"
