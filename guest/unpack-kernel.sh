#!/usr/bin/env bash
# The kernel inside a bzImage, uncompressed, for direct kernel boot: an ELF that
# QEMU starts at its PVH entry, so the guest does not decompress itself (under
# TCG that stub and the initramfs's gunzip were about a seventh of the test
# guest's boot; guest/build.sh writes the initramfs uncompressed itself).
# Fails unless the result is exactly as long as the bzImage says and has that
# entry (XEN_ELFNOTE_PHYS32_ENTRY; QEMU refuses an ELF kernel without it).
#
#   guest/unpack-kernel.sh BZIMAGE VMLINUX
#
# Needs python3 and the decompressor of the payload (gzip, xz, zstd, lz4, bzip2).
set -euo pipefail

[ "$#" -eq 2 ] || { echo "usage: $0 BZIMAGE VMLINUX" >&2; exit 2; }

exec python3 - "$@" <<'PY'
import shutil, struct, subprocess, sys

# Magic bytes of the compressed streams Linux's build can produce, and a tool that reads each from stdin.
TOOLS = [
    (b'\x1f\x8b\x08', ['gzip', '-dc']),
    (b'\xfd7zXZ\x00', ['xz', '-dc']),
    (b'\x28\xb5\x2f\xfd', ['zstd', '-dcq']),
    (b'\x02\x21\x4c\x18', ['lz4', '-dcq']),
    (b'BZh', ['bzip2', '-dc']),
    (b'\x5d\x00\x00', ['xz', '--format=lzma', '-dc']),
]

def fail(msg):
    print(f'unpack-kernel: {msg}', file=sys.stderr)
    sys.exit(1)

def tool_for(data, what):
    for magic, argv in TOOLS:
        if data.startswith(magic):
            if shutil.which(argv[0]) is None:
                fail(f'{what} is compressed with {argv[0]}, which is not installed')
            return argv
    fail(f'the payload of {what} is compressed in a way this script does not know ({data[:6].hex()})')

def decompress(argv, data):
    # The bzImage appends the size after the stream: a tool may complain of trailing bytes, so its
    # status says little. What it wrote is judged below instead.
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout

def has_pvh_entry(elf):
    if elf[:4] != b'\x7fELF' or elf[4] != 2:
        return False
    phoff, = struct.unpack_from('<Q', elf, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from('<IIQQQQ', elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        at, end = p_offset, p_offset + p_filesz
        while at + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from('<III', elf, at)
            name = elf[at + 12:at + 12 + namesz].rstrip(b'\0')
            if name == b'Xen' and ntype == 18:  # XEN_ELFNOTE_PHYS32_ENTRY
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False

src, dst = sys.argv[1:3]
data = open(src, 'rb').read()
if data[0x202:0x206] != b'HdrS':
    fail(f'{src} is not a bzImage (no HdrS header)')
version, = struct.unpack_from('<H', data, 0x206)
if version < 0x208:
    fail(f'{src} uses boot protocol {version:#x}; its payload is only located from 2.08 on')
setup_sects = data[0x1f1] or 4
payload_offset, payload_length = struct.unpack_from('<II', data, 0x248)
start = (setup_sects + 1) * 512 + payload_offset
payload = data[start:start + payload_length]
argv = tool_for(payload, src)
vmlinux = decompress(argv, payload)
expected, = struct.unpack_from('<I', payload, len(payload) - 4)
if len(vmlinux) != expected:
    fail(f'{argv[0]} gave {len(vmlinux)} bytes of {src}, its header says {expected}')
if not has_pvh_entry(vmlinux):
    fail(f'the kernel in {src} has no PVH entry note, which QEMU needs to start it uncompressed')
open(dst, 'wb').write(vmlinux)
PY
