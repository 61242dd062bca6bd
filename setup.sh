#!/usr/bin/env bash
# Installs everything a fresh Debian machine lacks to build, run and test vman:
# Debian packages, the npm dependencies and the test guest image. Idempotent:
# a second run checks and does nothing slow.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf 'setup: %s\n' "$*"; }

# Before anything is installed: the things this script cannot install itself.
# Node.js: the one rule, also in package.json's engines and .nvmrc.
node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a===20&&b>=17||a>=22?"yes":"no")' 2>/dev/null || echo missing)
if [ "$node_ok" != yes ]; then
  found=$(node --version 2>/dev/null || echo "none on PATH")
  log "Node.js 20.17 or newer (20.x from 20.17, or 22 and later) is required; found: $found. Get it from https://nodejs.org or NodeSource (https://github.com/nodesource/distributions), or with nvm: nvm install (reads .nvmrc)"
  exit 1
fi
command -v apt-get >/dev/null || { log "this script supports Debian and its derivatives (apt-get); on this system install the packages it lists by hand"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "not root and no sudo: install the Debian packages below as root"; exit 1; }
  SUDO=(sudo)
fi

# qemu-guest-agent's libraries (libglib2.0-0, libnuma1, libudev1, liburing2) are
# copied from the host into the guest's initramfs, so they must be installed here.
# genisoimage makes cloud-init seeds; debootstrap the Debian guest; dosfstools,
# mtools and syslinux the test guest's bootable disk; openssh-client is how
# the suite logs in to guests; chromium (headless) renders the API's
# documentation page for the suite, with fonts-liberation for its text.
packages=(
  qemu-system-x86 qemu-utils busybox-static cpio gzip dnsmasq-base iproute2 sqlite3
  libglib2.0-0 libnuma1 libudev1 liburing2
  genisoimage debootstrap dosfstools mtools syslinux syslinux-common openssh-client e2fsprogs
  chromium fonts-liberation
  python3 make g++ ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The guest build asks apt which cloud kernel is current; that needs package lists.
kernel_known=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ ${#missing[@]} -gt 0 ] || [ -z "$kernel_known" ] || [ "$kernel_known" = "(none)" ]; then
  log "apt-get update"
  "${SUDO[@]}" apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi


# npm ci only when the lockfile changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.vman-lock 2>/dev/null)" != "$lock_sum" ]; then
  log "npm ci (native modules build from source: about two minutes)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.vman-lock
else
  log "npm dependencies up to date"
fi

npm run -s build
log "vman compiled to dist/vman.mjs"

log "guest image: $(guest/build.sh)"
# debootstrap needs root; the image goes to the user's cache all the same.
debian_cache="${XDG_CACHE_HOME:-$HOME/.cache}/vman/debian"
log "Debian guest: $("${SUDO[@]}" env VMAN_DEBIAN_CACHE="$debian_cache" guest/build-debian.sh)"
[ ${#SUDO[@]} -eq 0 ] || "${SUDO[@]}" chown -R "$(id -u):$(id -g)" "$debian_cache"
