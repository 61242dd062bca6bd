// The host capability probe: binaries and versions, the accelerator that
// really works, the guest image and free space. Memoised per process, so a
// run pays for it once.
import { statfs, mkdir } from 'node:fs/promises';
import os from 'node:os';
import { decideAccelerator, type AccelDecision, type AccelRequest } from './accel-probe.ts';
import { findQemuImg, findQemuSystem, formatVersion, MissingPrerequisiteError, type Binary } from './binaries.ts';
import { describeGuest, loadGuestImage, type GuestImage } from './guest-image.ts';

/** The plan asks for at least 1 GB free in storage. */
export const MIN_FREE_BYTES = 1024 ** 3;

export interface HostInfo {
  qemu: Binary;
  qemuImg: Binary;
  accel: AccelDecision;
  hostKernel: string;
  guest: GuestImage;
  storage: { path: string; freeBytes: number };
}

export interface ProbeOptions {
  storagePath: string;
  requestedAccel?: AccelRequest;
  guestDir?: string;
}

let memo: Promise<HostInfo> | undefined;
let memoKey = '';

export function probeHost(opts: ProbeOptions): Promise<HostInfo> {
  const key = JSON.stringify(opts);
  if (!memo || memoKey !== key) {
    memoKey = key;
    memo = runProbe(opts);
    memo.catch(() => { memo = undefined; });
  }
  return memo;
}

async function runProbe(opts: ProbeOptions): Promise<HostInfo> {
  const [qemu, qemuImg, guest] = await Promise.all([findQemuSystem(), findQemuImg(), loadGuestImage(opts.guestDir)]);
  await mkdir(opts.storagePath, { recursive: true, mode: 0o700 });
  const fs = await statfs(opts.storagePath);
  const freeBytes = fs.bavail * fs.bsize;
  if (freeBytes < MIN_FREE_BYTES) {
    throw new MissingPrerequisiteError(
      `only ${(freeBytes / 1024 ** 2).toFixed(0)} MB free in ${opts.storagePath}; vman needs at least 1 GB there`,
    );
  }
  const accel = await decideAccelerator({ qemu, guest, requested: opts.requestedAccel ?? 'auto' });
  return { qemu, qemuImg, accel, hostKernel: os.release(), guest, storage: { path: opts.storagePath, freeBytes } };
}

export function describeHost(h: HostInfo): string {
  return [
    `QEMU ${formatVersion(h.qemu.version)} (${h.qemu.path})`,
    `accelerator ${h.accel.accel.toUpperCase()}: ${h.accel.reason}${h.accel.fromCache ? ' [cached decision]' : ''}`,
    `host kernel ${h.hostKernel}`,
    `guest ${describeGuest(h.guest)}`,
  ].join('\n');
}
