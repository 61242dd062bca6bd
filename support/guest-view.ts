// What the guest itself says about its disks and addresses, read through the
// suite's own agent reader, with a parser of its own: sizes from
// /proc/partitions, serials from sysfs (the test guest is busybox: no lsblk,
// no udev). A bug in vman's way of finding a disk's device cannot grade itself.
import { withGuestAgent, type GuestAgent } from './guest-agent.ts';

export interface GuestDisk {
  /** Kernel name, e.g. vdb. */
  name: string;
  /** Device node, e.g. /dev/vdb. */
  path: string;
  /** virtio-blk serial ('' when the device has none). */
  serial: string;
  sizeBytes: number;
}

const SCRIPT = 'cat /proc/partitions; echo ---; for f in /sys/block/vd*/serial; do [ -e "$f" ] && echo "$(basename "$(dirname "$f")") $(cat "$f")"; done; true';

export async function guestDisksOver(ga: GuestAgent): Promise<GuestDisk[]> {
  const r = await ga.exec('/bin/sh', ['-c', SCRIPT]);
  if (r.exitCode !== 0) throw new Error(`listing the guest's disks failed (exit ${r.exitCode}): ${r.stderr}`);
  const [partitions = '', serials = ''] = r.stdout.split('\n---\n');
  const serialOf = new Map(serials.split('\n').filter(Boolean).map((l) => {
    const [name = '', ...rest] = l.trim().split(' ');
    return [name, rest.join(' ')] as const;
  }));
  const disks: GuestDisk[] = [];
  for (const line of partitions.split('\n')) {
    // major minor #blocks (1 KiB) name; whole virtio disks only (vdb, not vdb1).
    const m = /^\s*\d+\s+\d+\s+(\d+)\s+(vd[a-z]+)\s*$/.exec(line);
    if (m) disks.push({ name: m[2]!, path: `/dev/${m[2]!}`, serial: serialOf.get(m[2]!) ?? '', sizeBytes: Number(m[1]) * 1024 });
  }
  return disks;
}

export function guestDisks(vmDir: string): Promise<GuestDisk[]> {
  return withGuestAgent(vmDir, guestDisksOver);
}

export function describeGuestDisks(disks: readonly GuestDisk[]): string {
  return disks.length ? disks.map((d) => `${d.path} (serial ${d.serial || 'none'}, ${d.sizeBytes} bytes)`).join(', ') : 'no vd* devices';
}

/** The guest's IPv4 addresses, loopback left out. */
export async function guestIpv4Now(vmDir: string): Promise<string[]> {
  const ifaces = await withGuestAgent(vmDir, (ga) => ga.networkInterfaces());
  return ifaces
    .filter((i) => i.name !== 'lo')
    .flatMap((i) => i['ip-addresses'] ?? [])
    .filter((a) => a['ip-address-type'] === 'ipv4')
    .map((a) => a['ip-address']);
}

/** What the guest counts: processors in /proc/cpuinfo, MemTotal in /proc/meminfo (kB). */
export async function guestSize(vmDir: string): Promise<{ cpus: number; memTotalKb: number }> {
  const out = await withGuestAgent(vmDir, async (ga) => {
    const r = await ga.exec('/bin/sh', ['-c', 'cat /proc/cpuinfo; echo ---; cat /proc/meminfo']);
    if (r.exitCode !== 0) throw new Error(`reading /proc/cpuinfo and /proc/meminfo failed in the guest: ${r.stderr}`);
    return r.stdout;
  });
  const [cpuinfo = '', meminfo = ''] = out.split('\n---\n');
  const memTotal = /^MemTotal:\s+(\d+) kB$/m.exec(meminfo);
  if (!memTotal) throw new Error(`the guest's /proc/meminfo has no MemTotal: ${meminfo.slice(0, 200)}`);
  return { cpus: cpuinfo.split('\n').filter((l) => /^processor\s*:/.test(l)).length, memTotalKb: Number(memTotal[1]) };
}

