// Facts about disks from sources independent of vman's word: its database file
// (read through sqlite3), the disk files and qemu-img, QMP on the VM's second
// monitor, and the guest itself through its agent.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { GuestAgent } from './guest-agent.ts';
import { describeGuestDisks, guestDisks, guestDisksOver, type GuestDisk as GuestBlockDevice } from './guest-view.ts';
import { blockNamesOf } from './block-names.ts';
import { pollUntil } from './poll.ts';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import type { Row } from './db-reader.ts';
import { qemuRunState } from './qmp-reader.ts';
import { withGuestAgent } from './vm-facts.ts';
import { sha256File } from './file-digest.ts';

export const GIB = 1024 ** 3;

export interface RecordedDisk {
  id: string;
  name: string;
  sizeGb: number;
  format: string;
  path: string;
  state: string;
  vmId: string | null;
  mountPoint: string | null;
}

function toDisk(row: Row): RecordedDisk {
  return {
    id: String(row.id), name: String(row.name), sizeGb: Number(row.size_gb), format: String(row.format), path: String(row.path),
    state: String(row.state), vmId: (row.vm_id as string | null) ?? null, mountPoint: (row.mount_point as string | null) ?? null,
  };
}

export async function recordedDiskOrNone(world: VmanWorld, name: string): Promise<RecordedDisk | undefined> {
  const row = await world.db().one('SELECT * FROM disks WHERE name = ?', [name]);
  return row && toDisk(row);
}

export async function recordedDisk(world: VmanWorld, name: string): Promise<RecordedDisk> {
  const disk = await recordedDiskOrNone(world, name);
  if (!disk) throw new Error(`the database has no disk named ${name}`);
  return disk;
}

/** Where vman keeps disk files: <storage>/disks. */
export function diskFolder(world: VmanWorld): string {
  return path.join(world.api().storagePath, 'disks');
}

/** Where the disk with this id must live: <storage>/disks/<id>.qcow2. */
export function expectedDiskFile(world: VmanWorld, id: string): string {
  return path.join(diskFolder(world), `${id}.qcow2`);
}

export interface StoredFile { name: string; bytes: number; sha256: string }

/** Every entry of the disk folder (dot files too: a half-made image would be one), with its size and content hash. */
export async function diskFiles(world: VmanWorld): Promise<StoredFile[]> {
  const folder = diskFolder(world);
  const names = (await readdir(folder).catch(() => [] as string[])).sort();
  const files: StoredFile[] = [];
  for (const name of names) {
    const file = path.join(folder, name);
    const st = await stat(file);
    const sha256 = st.isFile() ? await sha256File(file) : '(not a file)';
    files.push({ name, bytes: st.size, sha256 });
  }
  return files;
}

// --- the guest -------------------------------------------------------------

/** The guest's vd* device whose serial is the disk id; throws naming what the guest does see. */
export async function requireGuestDisk(ga: GuestAgent, diskId: string): Promise<GuestBlockDevice> {
  const devices = await guestDisksOver(ga);
  const found = devices.find((d) => d.serial === diskId);
  if (!found) throw new Error(`the guest has no block device with serial ${diskId}; it sees ${describeGuestDisks(devices)}`);
  return found;
}

export { describeGuestDisks, guestDisks, type GuestBlockDevice };

// --- QMP ---------------------------------------------------------------------

/** vman's names for a disk in QEMU, by role. */
export function diskNodeNames(diskId: string): { node: string; fileNode: string; device: string } {
  const { device, nodes } = blockNamesOf(diskId);
  return { node: nodes[0]!, fileNode: nodes[1]!, device };
}

// --- watching a running VM while disks come and go --------------------------

/** One look at the VM: the agent's ping, the guest's uptime through the agent, QMP's run state. */
export interface VmSample {
  startedAt: number;
  endedAt: number;
  uptimeSeconds?: number;
  status?: string;
  /** Why the sample got no answer, if it did not. */
  error?: string;
}

export interface VmWatch {
  readonly samples: readonly VmSample[];
  /** True when the watch ended itself at its time limit instead of being stopped. */
  readonly expired: boolean;
  /** Stops sampling and waits for the sample in flight; safe to call twice. */
  stop(): Promise<VmSample[]>;
}

async function takeSample(dir: string): Promise<VmSample> {
  const startedAt = Date.now();
  const [agent, qmp] = await Promise.allSettled([
    withGuestAgent(dir, async (ga) => {
      await ga.ping(3_000);
      const r = await ga.exec('/bin/cat', ['/proc/uptime'], { timeoutMs: 5_000 });
      const uptime = Number(r.stdout.trim().split(/\s+/)[0]);
      if (r.exitCode !== 0 || !Number.isFinite(uptime)) throw new Error(`cat /proc/uptime gave exit ${r.exitCode}: ${JSON.stringify(r.stdout)}`);
      return uptime;
    }),
    qemuRunState(dir),
  ]);
  const sample: VmSample = { startedAt, endedAt: Date.now() };
  const errors: string[] = [];
  if (agent.status === 'fulfilled') sample.uptimeSeconds = agent.value;
  else errors.push(`guest agent: ${reason(agent.reason)}`);
  if (qmp.status === 'fulfilled') sample.status = qmp.value;
  else errors.push(`QMP: ${reason(qmp.reason)}`);
  if (errors.length) sample.error = errors.join('; ');
  return sample;
}

/**
 * Samples the VM one look after another, `intervalMs` apart, until stopped or
 * until `maxMs` has passed (so a failed scenario cannot leave it running). Its
 * timers are unref'd: it never keeps the process alive.
 */
export function watchVm(dir: string, opts: { intervalMs?: number; maxMs?: number } = {}): VmWatch {
  const intervalMs = opts.intervalMs ?? 200;
  const until = Date.now() + (opts.maxMs ?? 60_000);
  const samples: VmSample[] = [];
  let stopped = false;
  let expired = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      if (Date.now() >= until) {
        expired = true;
        break;
      }
      samples.push(await takeSample(dir));
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, intervalMs);
        t.unref();
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
    }
  })();
  return {
    samples,
    get expired() {
      return expired;
    },
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      return samples;
    },
  };
}

/** Waits until `count` samples started after `time` have been taken, so the watch covers what happened up to then. */
export async function waitForSamplesAfter(watch: VmWatch, time: number, count: number, timeoutMs = 15_000): Promise<void> {
  await pollUntil(
    `${count} samples of the VM started after ${new Date(time).toISOString()}`,
    () => {
      if (watch.samples.filter((s) => s.startedAt > time).length >= count) return { done: true, value: undefined };
      const last = watch.samples.at(-1);
      return { done: false, seen: `${watch.samples.length} samples${last ? `, the last started at ${new Date(last.startedAt).toISOString()}` : ''}${watch.expired ? ' (the watch expired)' : ''}` };
    },
    { timeoutMs, intervalMs: 50 },
  );
}

export interface Window { from: number; to: number }

/**
 * What was wrong while the VM was watched across an attach and a detach: a
 * sample without an answer, a QMP state other than running, a guest uptime that
 * did not grow, a long silence, or too few samples before, between and after.
 */
export function interruptions(samples: readonly VmSample[], attach: Window, detach: Window, minSamples = 5): string[] {
  const problems: string[] = [];
  const at = (t: number): string => `${((t - attach.from) / 1000).toFixed(2)} s after the attach was sent`;
  for (const s of samples) {
    if (s.error) problems.push(`no answer at ${at(s.startedAt)}: ${s.error}`);
    else if (s.status !== 'running') problems.push(`QMP said ${s.status} at ${at(s.startedAt)}`);
  }
  const answered = samples.filter((s) => s.uptimeSeconds !== undefined);
  for (let i = 1; i < answered.length; i++) {
    const prev = answered[i - 1]!;
    const cur = answered[i]!;
    if (!(cur.uptimeSeconds! > prev.uptimeSeconds!)) {
      problems.push(`guest uptime went from ${prev.uptimeSeconds} s to ${cur.uptimeSeconds} s at ${at(cur.startedAt)}`);
    }
    if (cur.endedAt - prev.endedAt > 3_000) problems.push(`no answer for ${cur.endedAt - prev.endedAt} ms before ${at(cur.endedAt)}`);
  }
  if (samples.length < minSamples) problems.push(`only ${samples.length} samples, fewer than ${minSamples}`);
  if (!samples.some((s) => s.endedAt < attach.from)) problems.push('no sample answered before the attach was sent');
  if (!samples.some((s) => s.startedAt >= attach.from && s.startedAt < detach.to)) problems.push('no sample was taken between the attach being sent and the detach being answered');
  if (!samples.some((s) => s.startedAt > detach.to)) problems.push('no sample was taken after the detach was answered');
  const first = answered[0];
  const last = answered.at(-1);
  if (first && last && last !== first) {
    // A guest that was paused meanwhile has an uptime that lags the wall clock.
    const grew = last.uptimeSeconds! - first.uptimeSeconds!;
    const wall = (last.startedAt - first.endedAt) / 1000;
    if (grew < wall / 2) problems.push(`the guest's uptime grew by ${grew.toFixed(2)} s while at least ${wall.toFixed(2)} s passed`);
  }
  return problems;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Polls the guest (through its agent) until it has a block device whose serial is the disk id. */
export async function waitForGuestDisk(dir: string, diskId: string, timeoutMs = 15_000): Promise<GuestBlockDevice> {
  return pollUntil(
    `the guest to see a disk with serial ${diskId}`,
    async () => {
      const devices = await guestDisks(dir);
      const found = devices.find((d) => d.serial === diskId);
      return found ? { done: true, value: found } : { done: false, seen: describeGuestDisks(devices) };
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** What qemu-img itself says of an image file (-U: a running QEMU may hold it). */
export async function imageFacts(file: string): Promise<{ format: string; virtualSizeBytes: number; actualSizeBytes: number }> {
  const { stdout } = await execa('qemu-img', ['info', '--output=json', '-U', file]);
  const info = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'actual-size': number };
  return { format: info.format, virtualSizeBytes: info['virtual-size'], actualSizeBytes: info['actual-size'] };
}
