// What the guest itself sees as block devices, asked through its agent. The
// test guest is a busybox initramfs without udev, so there is no
// /dev/disk/by-id: sysfs gives each virtio disk's serial (the disk id) and size.
import type { GuestExecResult } from './guest-agent-client.ts';
import { pollUntil } from '../poll.ts';

export interface GuestBlockDevice {
  /** Kernel name, e.g. vdb. */
  name: string;
  /** Device node, e.g. /dev/vdb. */
  path: string;
  /** virtio-blk serial; vman sets it to the disk id. Empty when the device has none. */
  serial: string;
  sizeBytes: number;
}

/** The part of GuestAgentClient this module uses, so tests can hand in a fake. */
export interface GuestExecLike {
  exec(path: string, args: string[], opts?: { timeoutMs?: number }): Promise<GuestExecResult>;
}

/**
 * Runs `fn` with a guest-agent connection and closes it after: the agent socket
 * takes one client at a time. Pass `(fn) => vm.withGuestAgent(fn)`.
 */
export type WithGuestAgent = <T>(fn: (ga: GuestExecLike) => Promise<T>) => Promise<T>;

export class GuestDiskError extends Error {
  readonly result: GuestExecResult | undefined;
  constructor(message: string, options: { result?: GuestExecResult; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GuestDiskError';
    this.result = options.result;
  }
}

// One line per disk: name TAB size-in-512-byte-sectors TAB serial. The serial is
// last so that whatever it holds cannot shift the other fields.
const LIST_SCRIPT = [
  'for d in /sys/block/vd*; do',
  '  [ -e "$d" ] || continue',
  '  printf "%s\\t%s\\t%s\\n" "${d##*/}" "$(cat "$d/size" 2>/dev/null)" "$(cat "$d/serial" 2>/dev/null)"',
  'done',
].join('\n');

const SECTOR_BYTES = 512;
const NAME_PATTERN = /^vd[a-z]+$/;

export async function guestBlockDevices(ga: GuestExecLike, opts: { timeoutMs?: number } = {}): Promise<GuestBlockDevice[]> {
  const result = await ga.exec('/bin/sh', ['-c', LIST_SCRIPT], { timeoutMs: opts.timeoutMs ?? 10_000 });
  if (result.exitCode !== 0) {
    throw new GuestDiskError(`listing the guest's block devices failed (exit code ${result.exitCode}): ${result.stderr.trim()}`, { result });
  }
  return parseBlockDeviceList(result.stdout);
}

/** Lines that do not parse (a disk vanishing mid-listing, stray output) are skipped. */
export function parseBlockDeviceList(stdout: string): GuestBlockDevice[] {
  const devices: GuestBlockDevice[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const [name, size, ...rest] = line.split('\t');
    if (name === undefined || size === undefined || !NAME_PATTERN.test(name) || !/^\d+$/.test(size.trim())) continue;
    const sizeBytes = Number(size.trim()) * SECTOR_BYTES;
    if (!Number.isSafeInteger(sizeBytes)) continue;
    devices.push({ name, path: `/dev/${name}`, serial: rest.join('\t').trim(), sizeBytes });
  }
  return devices;
}

/**
 * Polls the guest until the disk with this serial is there (`present: true`,
 * resolves to it) or gone (`present: false`, resolves to undefined). Each poll
 * uses its own short-lived agent connection.
 */
export async function waitForGuestDisk(
  withAgent: WithGuestAgent,
  serial: string,
  opts: { timeoutMs: number; present: boolean; intervalMs?: number },
): Promise<GuestBlockDevice | undefined> {
  const deadline = Date.now() + opts.timeoutMs;
  const want = opts.present ? 'appear' : 'disappear';
  return pollUntil<GuestBlockDevice | undefined>(
    `the guest's disk with serial ${JSON.stringify(serial)} to ${want}`,
    async () => {
      // Keep one slow exec from overrunning the caller's deadline by much.
      const timeoutMs = Math.min(5_000, Math.max(1_000, deadline - Date.now()));
      const devices = await withAgent((ga) => guestBlockDevices(ga, { timeoutMs }));
      const found = devices.find((d) => d.serial === serial);
      if (opts.present && found) return { done: true, value: found };
      if (!opts.present && !found) return { done: true, value: undefined };
      const seen = devices.map((d) => `${d.name}(${d.serial || 'no serial'}, ${d.sizeBytes} B)`).join(', ');
      return { done: false, seen: seen || 'no vd* devices' };
    },
    { timeoutMs: opts.timeoutMs, intervalMs: opts.intervalMs ?? 100 },
  );
}
