#!/usr/bin/env bash
# The cache keys of the two guest images, defined once: what apt would install
# now and the recipe files. guest/build.sh and guest/build-debian.sh source
# this file; CI runs it to restore the images by these keys before ./setup.sh
# would build them. Needs package lists (apt-get update).
#
# Usage: guest/cache-key.sh                 prints guest=<key> and debian=<key> (as $GITHUB_OUTPUT takes them)
#        guest/cache-key.sh guest|debian    prints that key
# Sourced: guest_key and debian_key set $key and the versions it is made of.

_cache_key_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# The test guest: the cloud kernel the meta package points at, qemu-guest-agent,
# and the busybox it copies from this host (installed; apt's candidate before it is).
# Sets kernel_pkg, kernel_ver, ga_ver, bb_ver and key.
guest_key() {
  kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$kernel_pkg" ] || { echo "guest: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2; return 1; }
  kernel_ver=$(_candidate "$kernel_pkg")
  ga_ver=$(_candidate qemu-guest-agent)
  bb_ver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
  [ -n "$bb_ver" ] || bb_ver=$(_candidate busybox-static)
  local recipe
  recipe=$(cat "$_cache_key_here/build.sh" "$_cache_key_here/unpack-kernel.sh" "$_cache_key_here"/rootfs/* | sha256sum | cut -c1-12)
  key=$(printf '%s\n' "$kernel_pkg=$kernel_ver" "qemu-guest-agent=$ga_ver" "busybox-static=$bb_ver" "$recipe" \
        | sha256sum | cut -c1-16)
}

# The Debian guest: the versions of the packages that matter most, and its recipe.
# Sets versions and key.
debian_key() {
  local p v
  versions=
  for p in linux-image-cloud-amd64 cloud-init openssh-server qemu-guest-agent systemd; do
    v=$(_candidate "$p")
    case $v in ''|'(none)') echo "debian guest: apt has no candidate for $p (run apt-get update)" >&2; return 1;; esac
    versions+="$p=$v"$'\n'
  done
  versions=${versions%$'\n'}
  key=$(printf '%s\n%s\n' "$versions" "$(cat "$_cache_key_here/build-debian.sh" "$_cache_key_here"/debian/*)" \
        | sha256sum | cut -c1-16)
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-both}" in
    guest) guest_key; echo "$key" ;;
    debian) debian_key; echo "$key" ;;
    both) guest_key; echo "guest=$key"; debian_key; echo "debian=$key" ;;
    *) echo "usage: $0 [guest|debian]" >&2; exit 2 ;;
  esac
fi
