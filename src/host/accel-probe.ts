// Decides the accelerator by booting a probe VM, not by /dev/kvm's existence:
// on these hosts /dev/kvm exists but QEMU hangs in firmware or aborts. A
// working KVM boots the guest in about a second, so a probe that has not seen
// the ready marker within a few seconds has its answer. The decision is cached
// per host (QEMU version + kernel) so it is paid once, not per run.
import { randomBytes } from 'node:crypto';
import { newDeviceModel } from '../model/device-model.ts';
import { access, constants, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Accelerator } from '../operator/qemu-command.ts';
import { QemuVm } from '../operator/qemu-vm.ts';
import { pollUntil, TerminalStateError } from '../poll.ts';
import { formatVersion, type Binary } from './binaries.ts';
import type { GuestImage } from './guest-image.ts';

export type AccelRequest = 'auto' | Accelerator;

export interface AccelDecision {
  accel: Accelerator;
  reason: string;
  key: string;
  decidedAt: string;
  fromCache: boolean;
}

export interface AccelProbeOptions {
  qemu: Binary;
  guest: GuestImage;
  requested: AccelRequest;
  cacheFile?: string;
  probeTimeoutMs?: number;
  /** Seams for unit tests of the decision; the defaults touch /dev/kvm and boot QEMU. */
  kvmAccessible?: () => Promise<boolean>;
  probe?: (opts: AccelProbeOptions) => Promise<ProbeOutcome>;
}

export type ProbeOutcome = { ok: true; ms: number } | { ok: false; detail: string };

export function defaultAccelCacheFile(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'vman', 'accel.json');
}

export async function decideAccelerator(opts: AccelProbeOptions): Promise<AccelDecision> {
  const key = `qemu ${formatVersion(opts.qemu.version)} on kernel ${os.release()}`;
  const decided = (accel: Accelerator, reason: string, fromCache = false): AccelDecision => ({
    accel, reason, key, decidedAt: new Date().toISOString(), fromCache,
  });
  if (opts.requested === 'tcg') return decided('tcg', 'TCG requested (VMAN_ACCEL=tcg)');

  const kvmUsable = await (opts.kvmAccessible ?? devKvmAccessible)();
  if (!kvmUsable) {
    if (opts.requested === 'kvm') throw new Error('KVM requested (VMAN_ACCEL=kvm) but /dev/kvm is missing or not accessible');
    return decided('tcg', '/dev/kvm is missing or not accessible: software emulation (TCG)');
  }

  const cacheFile = opts.cacheFile ?? defaultAccelCacheFile();
  const cache = await readCache(cacheFile);
  const hit = cache[key];
  if (hit && opts.requested === 'auto') return { ...hit, fromCache: true };

  const probe = await (opts.probe ?? probeKvm)(opts);
  const decision = probe.ok
    ? decided('kvm', `a KVM probe VM reached its ready marker in ${probe.ms} ms`)
    : decided('tcg', `/dev/kvm exists but a KVM probe VM did not boot (${probe.detail}): falling back to TCG`);
  if (opts.requested === 'kvm' && !probe.ok) throw new Error(`KVM requested (VMAN_ACCEL=kvm) but ${probe.detail}`);
  cache[key] = decision;
  await mkdir(path.dirname(cacheFile), { recursive: true });
  await writeFile(cacheFile, JSON.stringify(cache, null, 2));
  return decision;
}

async function readCache(file: string): Promise<Record<string, AccelDecision>> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, AccelDecision>;
  } catch {
    return {};
  }
}

function devKvmAccessible(): Promise<boolean> {
  return access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
}

async function probeKvm(opts: AccelProbeOptions): Promise<ProbeOutcome> {
  const timeoutMs = opts.probeTimeoutMs ?? 6_000;
  // Short path: unix socket paths must stay under 108 bytes.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vman-probe-'));
  const id = `probe-${randomBytes(4).toString('hex')}`;
  let vm: QemuVm | undefined;
  const started = Date.now();
  try {
    vm = await QemuVm.start(
      {
        id, dir, qemuBinary: opts.qemu.path, accel: 'kvm', cpus: 1, memoryMb: 256,
        boot: { kernel: opts.guest.kernel, initrd: opts.guest.initrd, cmdline: opts.guest.cmdline },
        disks: [], network: { mode: 'none' }, deviceModel: newDeviceModel(id, false),
      },
      { launchTimeoutMs: timeoutMs },
    );
    const running = vm;
    await pollUntil(
      `the ready marker "${opts.guest.readyMarker}" under KVM`,
      async () => {
        const log = await running.serialLog();
        if (log.includes(opts.guest.readyMarker)) return { done: true, value: undefined };
        if (!(await running.isRunning())) throw new TerminalStateError(`QEMU exited: ${log.slice(-200) || 'no console output'}`);
        return { done: false, seen: `${log.length} bytes of console output` };
      },
      { timeoutMs, intervalMs: 100 },
    );
    return { ok: true, ms: Date.now() - started };
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err) };
  } finally {
    await vm?.stop({ force: true, quitTimeoutMs: 2_000 }).catch(() => vm?.kill());
    await rm(dir, { recursive: true, force: true });
  }
}
