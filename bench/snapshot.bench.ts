// Snapshots with memory, reverts and clones, each against a cold start of the
// same guest through vman's API in the same run (POST start → 200 of a fresh
// VM of the same template).
//
// For each guest (the test guest of the `small` template; the Debian guest
// when its image is built, see debian.bench.ts): one origin VM is started and
// snapshotted (`warm`, the snapshot every clone comes from), then stopped with
// force, so that each clone runs alone as each cold VM does. Cold starts and
// clone starts alternate (a cold VM, a clone, a second clone; again), one
// extra VM at a time, each stopped and deleted after its sample.
//
// Figures:
// - clone.ready (target ≤ 0.1; Debian ≤ 0.05): POST start of a clone → 200
//   (vman answers once the guest is ready) vs the cold start.
// - clone.ready.launch / .load / .run-on / .rest: where a clone start goes,
//   from vman's "resumed snapshot" log line (resume_launch_ms, resume_load_ms,
//   resume_ready_ms) and the rest of the start → 200 (API, network, files).
// - clone.ready.after-clone: a second clone started right after the first,
//   no cold boot in between (on the host this was written on, QEMU loads the
//   state several times faster then than right after a cold VM ran).
// - snapshot.create, snapshot.pause (vman's pause_ms), snapshot.pause-qmp
//   (STOP → RESUME as QEMU timestamps them on the VM's second monitor,
//   qmp-aux.sock), snapshot.revert (restore?force=true of a running VM): they
//   only inform, against the same cold start. The state file's size against
//   the guest's memory is in snapshot.create's label and extra.
import { readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { vmPaths } from '../src/operator/qemu-command.ts';
import { QmpClient, type QmpEvent } from '../src/operator/qmp-client.ts';
import { shortId } from './lib/bare-qemu.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs, median, round } from './lib/stats.ts';
import { startBenchVman, type BenchVman } from './lib/vman.ts';
import { withinReach } from '../support/within-reach.ts';

interface VmJson { id: string; state: string; storage_dir: string }
interface SnapshotJson { name: string; with_memory: boolean; pause_ms: number | null; state_bytes: number | null; memory_mb: number }

/** The fields of vman's "vm … resumed snapshot …" log line. */
interface ResumeLine { launchMs: number; loadMs: number; readyMs: number }

interface GuestPlan {
  /** Figure id prefix: '' for the test guest, 'debian.' for Debian. */
  prefix: string;
  /** Label prefix for the table. */
  words: string;
  template: string;
  /** Measured cold/clone pairs. */
  runs: number;
  /** One unmeasured cold/clone pair first, and the `warm` snapshot not counted. */
  warmUp: boolean;
  /** Snapshots taken (each reverted to, then deleted) after `warm`, measured. */
  snapshotRuns: number;
  /** Revert the origin to `warm` once, measured (when snapshotRuns gives no revert). */
  revertWarm: boolean;
  target: number;
}

interface GuestSamples {
  cold: number[];
  clone: number[];
  cloneCreate: number[];
  launch: number[];
  load: number[];
  ready: number[];
  rest: number[];
  /** A second clone started right after the first was deleted (no cold boot in between), and its state load. */
  cloneAfterClone: number[];
  loadAfterClone: number[];
  create: number[];
  pause: number[];
  pauseQmp: number[];
  /** state_bytes / (memory_mb · 2^20), per snapshot measured. */
  stateShare: number[];
  stateBytes: number[];
  memoryMb: number;
  revert: number[];
  revertResume: ResumeLine[];
  originBootMs: number;
  /** The QMP events seen on qmp-aux.sock during each measured snapshot. */
  qmpEvents: string[][];
}

const MIB = 2 ** 20;

function debianDir(): string | undefined {
  // As debian.bench.ts finds it.
  try {
    return realpathSync(path.join(process.env.VMAN_DEBIAN_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'vman', 'debian'), 'current'));
  } catch {
    return undefined;
  }
}

function eventMs(ev: QmpEvent): number {
  return ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;
}

/**
 * The VM's second monitor (qmp-aux.sock, which the operator does not use):
 * QEMU's own timestamps of the guest's STOP and RESUME events, independent of
 * how vman measures its pause.
 */
async function watchPause(storageDir: string): Promise<{ pauseMs(waitMs: number): Promise<number | undefined>; events(): string[]; close(): Promise<void> }> {
  const qmp = await QmpClient.connect(vmPaths(storageDir).qmpAux, { timeoutMs: 5_000 });
  const seen: QmpEvent[] = [];
  qmp.onEvent((ev) => seen.push(ev));
  const pair = (): number | undefined => {
    const stop = seen.findIndex((e) => e.event === 'STOP');
    const resume = stop < 0 ? undefined : seen.slice(stop + 1).find((e) => e.event === 'RESUME');
    return resume ? eventMs(resume) - eventMs(seen[stop]!) : undefined;
  };
  return {
    async pauseMs(waitMs: number) {
      // The RESUME event may still be on its way when the API has answered.
      const deadline = performance.now() + waitMs;
      while (pair() === undefined && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return pair();
    },
    events: () => seen.map((e) => e.event),
    close: () => qmp.close().catch(() => undefined),
  };
}

async function measureGuest(ctx: BenchContext, v: BenchVman, resumes: Map<string, ResumeLine[]>, plan: GuestPlan): Promise<GuestSamples> {
  const s: GuestSamples = {
    cold: [], clone: [], cloneCreate: [], launch: [], load: [], ready: [], rest: [], cloneAfterClone: [], loadAfterClone: [], create: [], pause: [], pauseQmp: [],
    stateShare: [], stateBytes: [], memoryMb: Number.NaN, revert: [], revertResume: [], originBootMs: Number.NaN, qmpEvents: [],
  };
  const tag = plan.prefix === '' ? '' : `${plan.prefix.replace(/\.$/, '')} `;

  const start = async (id: string): Promise<number> => {
    const r = await v.http.request<VmJson>('POST', `api/v1/vms/${id}/start`);
    if (r.status !== 200 || r.body.state !== 'running') throw new Error(`start of ${id}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 500)}\n${v.logTail()}`);
    return r.ms;
  };
  const remove = (id: string): Promise<unknown> => v.http.request('DELETE', `api/v1/vms/${id}?force=true`).catch(() => undefined);

  const origin = (await v.http.expect<VmJson>(201, 'POST', 'api/v1/vms', { name: shortId('origin'), template: plan.template })).body;
  try {
    s.originBootMs = await start(origin.id);
    ctx.log(`  ${tag}origin ${origin.id}: cold start ${fmtMs(s.originBootMs)}`);

    const snapshot = async (name: string, keep: boolean): Promise<void> => {
      const watch = await watchPause(origin.storage_dir).catch((err: unknown) => {
        ctx.log(`  ${tag}qmp-aux.sock of ${origin.id} not reachable: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      });
      try {
        const r = await v.http.expect<SnapshotJson>(201, 'POST', `api/v1/vms/${origin.id}/snapshots`, { name });
        if (!r.body.with_memory || r.body.pause_ms === null || r.body.state_bytes === null) throw new Error(`snapshot ${name} of a running VM came without memory: ${JSON.stringify(r.body)}`);
        const qmpMs = await watch?.pauseMs(2_000);
        const share = r.body.state_bytes / (r.body.memory_mb * MIB);
        s.memoryMb = r.body.memory_mb;
        if (keep) {
          s.create.push(r.ms);
          s.pause.push(r.body.pause_ms);
          if (qmpMs !== undefined) s.pauseQmp.push(qmpMs);
          s.stateShare.push(share);
          s.stateBytes.push(r.body.state_bytes);
          s.qmpEvents.push(watch?.events() ?? []);
        }
        ctx.log(`  ${tag}snapshot ${name}: POST → 201 ${fmtMs(r.ms)}, pause_ms ${r.body.pause_ms}, QMP STOP→RESUME ${qmpMs === undefined ? 'n/a' : fmtMs(qmpMs)} (events ${watch?.events().join(',') ?? 'none'}), state ${(r.body.state_bytes / MIB).toFixed(1)} MiB = ${share.toFixed(3)} of ${r.body.memory_mb} MiB${keep ? '' : ' (warm-up)'}`);
      } finally {
        await watch?.close();
      }
    };

    const revert = async (name: string): Promise<void> => {
      const before = resumes.get(origin.id)?.length ?? 0;
      const r = await v.http.request<VmJson>('POST', `api/v1/vms/${origin.id}/snapshots/${name}/restore?force=true`);
      if (r.status !== 200 || r.body.state !== 'running') throw new Error(`revert of ${origin.id} to ${name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 500)}\n${v.logTail()}`);
      const line = resumes.get(origin.id)?.[before];
      s.revert.push(r.ms);
      if (line) s.revertResume.push(line);
      ctx.log(`  ${tag}revert to ${name}: restore?force=true → 200 ${fmtMs(r.ms)}${line ? ` (QEMU up ${line.launchMs} ms, state loaded ${line.loadMs} ms, ready ${line.readyMs} ms after it ran on)` : ''}`);
    };

    await snapshot('warm', !plan.warmUp);
    for (let i = 1; i <= plan.snapshotRuns; i++) {
      await snapshot(`s${i}`, true);
      await revert(`s${i}`);
      await v.http.expect(204, 'DELETE', `api/v1/vms/${origin.id}/snapshots/s${i}`);
    }
    if (plan.revertWarm) await revert('warm');
    // The clones run alone, as each cold VM does: the origin stops (force: QMP quit, its memory is in `warm`).
    await v.http.expect(200, 'POST', `api/v1/vms/${origin.id}/stop?force=true`);

    const coldRun = async (i: number, keep: boolean): Promise<void> => {
      const vm = (await v.http.expect<VmJson>(201, 'POST', 'api/v1/vms', { name: shortId(`cold${i}`), template: plan.template })).body;
      try {
        const ms = await start(vm.id);
        if (keep) s.cold.push(ms);
        ctx.log(`  ${tag}cold #${i}: start → 200 ${fmtMs(ms)}${keep ? '' : ' (warm-up)'}`);
      } finally {
        await remove(vm.id);
      }
    };
    const cloneRun = async (i: number, keep: boolean, afterClone: boolean): Promise<void> => {
      const created = await v.http.expect<VmJson>(201, 'POST', 'api/v1/vms', { name: shortId(`clone${i}`), from_snapshot: { vm: origin.id, name: 'warm' } });
      const id = created.body.id;
      try {
        const ms = await start(id);
        const line = resumes.get(id)?.[0];
        if (!line) throw new Error(`clone ${id} started without a "resumed snapshot" log line: did it boot instead of resume?\n${v.logTail()}`);
        const rest = ms - line.launchMs - line.loadMs - line.readyMs;
        if (keep && afterClone) {
          s.cloneAfterClone.push(ms);
          s.loadAfterClone.push(line.loadMs);
        } else if (keep) {
          s.clone.push(ms);
          s.cloneCreate.push(created.ms);
          s.launch.push(line.launchMs);
          s.load.push(line.loadMs);
          s.ready.push(line.readyMs);
          s.rest.push(rest);
        }
        ctx.log(`  ${tag}clone #${i}${afterClone ? ' (right after a clone)' : ''}: POST vms → 201 ${fmtMs(created.ms)}, start → 200 ${fmtMs(ms)} = QEMU up ${line.launchMs} ms + state loaded ${line.loadMs} ms + ran on → ready ${line.readyMs} ms + rest ${fmtMs(rest)}${keep ? '' : ' (warm-up)'}`);
      } finally {
        await remove(id);
      }
    };

    for (let i = plan.warmUp ? 0 : 1; i <= plan.runs; i++) {
      await coldRun(i, i > 0);
      await cloneRun(i, i > 0, false);
      await cloneRun(i, i > 0, true);
    }
  } finally {
    await remove(origin.id);
  }
  return s;
}

function guestFigures(plan: GuestPlan, s: GuestSamples, runNotes: string[]): Figure[] {
  const p = plan.prefix;
  const w = plan.words;
  const baseline = { label: `POST /vms/:id/start → 200 of a fresh VM of the ${plan.template} template (cold boot), same run`, samples: s.cold };
  const share = median(s.stateShare);
  const snapNotes = [
    plan.warmUp
      ? `${s.create.length} snapshot(s) of one running origin VM, each then reverted to and deleted, after one unmeasured snapshot (warm, the one the clones come from)`
      : `${s.create.length} snapshot (warm, the one the clones come from) of one running origin VM; no warm-up`,
    'baseline: the cold starts of the clone figure',
  ];
  const breakdown = {
    resumeLaunchMs: s.launch, resumeLoadMs: s.load, resumeReadyMs: s.ready, restMs: s.rest.map((x) => round(x)),
    medians: { resumeLaunchMs: median(s.launch), resumeLoadMs: median(s.load), resumeReadyMs: median(s.ready), restMs: round(median(s.rest)) },
  };
  const part = (id: string, label: string, what: string, samples: number[]): Figure => figure({
    id: `${p}clone.ready.${id}`, label: `${w}clone start: ${label}`, notes: runNotes,
    vman: { label: what, samples }, baseline,
  });
  return [
    figure({
      id: `${p}clone.ready`, label: `${w}clone start → ready`, target: plan.target, notes: [
        ...runNotes,
        `breakdown (medians): QEMU up ${median(s.launch)} ms, state loaded ${median(s.load)} ms, ran on → ready ${median(s.ready)} ms, rest (API, network, files) ${fmtMs(median(s.rest))}`,
      ],
      vman: { label: 'POST /vms/:id/start of a clone (from_snapshot warm) → 200 (guest ready)', samples: s.clone },
      baseline,
      extra: { ...breakdown, cloneCreateMs: s.cloneCreate.map((x) => round(x)), originColdStartMs: round(s.originBootMs) },
    }),
    part('launch', 'QEMU up (resume_launch_ms)', 'vman log resume_launch_ms: state file opened, QEMU launched with -incoming defer, QMP connected', s.launch),
    part('load', 'state loaded (resume_load_ms)', 'vman log resume_load_ms: migrate-incoming fd → completed', s.load),
    part('run-on', 'ran on → ready (resume_ready_ms)', 'vman log resume_ready_ms: cont, guest clock set through the agent, readiness rule held, recorded running', s.ready),
    part('rest', 'rest (API, network, files)', 'start → 200 minus the three above: HTTP, lock, intent, address, network, seed, serial log copy, DB writes', s.rest),
    figure({
      id: `${p}clone.ready.after-clone`, label: `${w}clone start right after a clone (state loaded ${fmtMs(median(s.loadAfterClone))})`,
      notes: [...runNotes, 'a second clone of warm started as soon as the first was deleted, with no cold boot in between: on this host the state load is then faster than after a cold VM ran (clone.ready\'s condition)'],
      vman: { label: 'POST /vms/:id/start of a clone → 200, the previous VM a clone', samples: s.cloneAfterClone },
      baseline,
      extra: { resumeLoadMs: s.loadAfterClone },
    }),
    figure({
      id: `${p}snapshot.create`, label: `${w}snapshot create (state ${fmtMiB(median(s.stateBytes))} = ${share.toFixed(2)} of ${s.memoryMb} MiB)`,
      notes: [...snapNotes, `state file / guest memory: ${s.stateShare.map((x) => x.toFixed(3)).join(', ')} (state_bytes / (memory_mb·2^20))`],
      vman: { label: 'POST /vms/:id/snapshots on a running VM → 201', samples: s.create },
      baseline,
      extra: { stateBytes: s.stateBytes, memoryMb: s.memoryMb, stateShare: s.stateShare.map((x) => round(x)) },
    }),
    figure({
      id: `${p}snapshot.pause`, label: `${w}snapshot pause (vman's pause_ms)`,
      notes: [...snapNotes, 'pause_ms: vman\'s clock from before QMP stop to after cont (state saved, disks and serial log copied meanwhile)'],
      vman: { label: 'pause_ms vman reports for the snapshot', samples: s.pause },
      baseline,
    }),
    ...(s.pauseQmp.length ? [figure({
      id: `${p}snapshot.pause-qmp`, label: `${w}snapshot pause (QMP STOP→RESUME)`,
      notes: [...snapNotes, 'QEMU\'s own timestamps of the STOP and RESUME events, read on the VM\'s second monitor (qmp-aux.sock)'],
      vman: { label: 'STOP → RESUME event timestamps on qmp-aux.sock', samples: s.pauseQmp },
      baseline,
      extra: { eventsSeen: s.qmpEvents },
    })] : []),
    figure({
      id: `${p}snapshot.revert`, label: `${w}revert a running VM`,
      notes: [...snapNotes, 'the origin reverted while it runs (its QEMU killed, the snapshot\'s disks put back, its memory resumed)'],
      vman: { label: 'POST /vms/:id/snapshots/:name/restore?force=true → 200 (guest ready)', samples: s.revert },
      baseline,
      extra: { resume: s.revertResume },
    }),
  ];
}

function fmtMiB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MIB).toFixed(0)} MiB` : 'n/a';
}

export const snapshotBench: BenchModule = {
  name: 'snapshot',
  description: 'clone start vs cold start (test guest, Debian), snapshot create, pause and revert',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const host = await ctx.host();
    const root = path.join(ctx.root, 'snapshot');
    const resumes = new Map<string, ResumeLine[]>();
    const onLog = (line: string): void => {
      if (!line.includes('"resume_launch_ms"')) return;
      try {
        const f = JSON.parse(line) as { vm_id: string; resume_launch_ms: number; resume_load_ms: number; resume_ready_ms: number };
        const list = resumes.get(f.vm_id) ?? [];
        list.push({ launchMs: f.resume_launch_ms, loadMs: f.resume_load_ms, readyMs: f.resume_ready_ms });
        resumes.set(f.vm_id, list);
      } catch {
        // Not a JSON line: not ours.
      }
    };
    const originNote = 'the origin VM is stopped with force after its snapshots: each clone and each cold VM runs alone (one QEMU at a time)';
    const figures: Figure[] = [];

    const small: GuestPlan = { prefix: '', words: '', template: 'small', runs: ctx.runs, warmUp: true, snapshotRuns: ctx.runs, revertWarm: false, target: 0.1 };
    const v = await startBenchVman({ storagePath: path.join(root, 'v'), hostInfo: host, onLog });
    try {
      await v.http.expect(200, 'GET', 'health');
      const s = await measureGuest(ctx, v, resumes, small);
      figures.push(...guestFigures(small, s, [`test guest, small template (${s.memoryMb} MiB); median of ${ctx.runs} runs after one warm-up round, cold and clone alternating (each round: a cold VM, a clone, a second clone)`, originNote]));
    } finally {
      await v.close();
    }

    const cached = debianDir();
    if (!cached) {
      ctx.log('  the Debian guest is not built (guest/build-debian.sh): its clone figures are left out');
      return figures;
    }
    // Where a VM's own user can read it (vman as root confines each QEMU).
    const dir = await withinReach(cached, ctx.root);
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, string>;
    const runs = Math.min(ctx.runs, 2);
    const debian: GuestPlan = { prefix: 'debian.', words: 'Debian: ', template: 'debian', runs, warmUp: false, snapshotRuns: 0, revertWarm: true, target: 0.05 };
    const d = await startBenchVman({ storagePath: path.join(root, 'd'), hostInfo: host, onLog, env: { VMAN_IMAGE_DIRS: dir, VMAN_BOOT_TIMEOUT: '300' } });
    try {
      await d.http.expect(201, 'POST', 'api/v1/templates', {
        name: 'debian', cpus: 2, memory_mb: 1024, kernel_path: path.join(dir, m.kernel!), initrd_path: path.join(dir, m.initrd!),
        cmdline: m.cmdline, base_image_path: path.join(dir, m.image!), base_image_format: 'qcow2', readiness: 'agent',
      });
      const s = await measureGuest(ctx, d, resumes, debian);
      figures.push(...guestFigures(debian, s, [
        `Debian guest, 2 CPUs, ${s.memoryMb} MiB, readiness agent; median of ${runs} run(s) (ctx runs capped at 2), cold and clone alternating (each round: a cold VM, a clone, a second clone), no warm-up (each cold boot takes half a minute or more)`,
        originNote,
      ]));
    } finally {
      await d.close();
    }
    return figures;
  },
};
