// Start and stop: a VM of the `small` template started through vman's API
// against the same guest started by a bare qemu-system-x86_64 with the same
// argument vector. Baseline and vman runs alternate (ABAB...) after one
// warm-up pair, so machine noise spreads over both sides.
//
// Figures (each the median of N):
// - boot.guest-ready: POST /vms/:id/start → response (vman answers once the
//   guest agent does) vs spawn → guest-ping answered.
// - boot.serial-marker: the same starts, timed to the guest's serial ready marker.
// - start.qmp-greeting: POST start → vman receives QMP's greeting vs spawn →
//   greeting: what vman adds before QEMU is controllable.
// - stop.powerdown: POST /vms/:id/stop → response vs system_powerdown → exit.
import path from 'node:path';
import { BareQemu, shortId, smallGuestSpec, waitForSerialMarker } from './lib/bare-qemu.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs } from './lib/stats.ts';
import { startBenchVman } from './lib/vman.ts';

interface VmJson { id: string; state: string; storage_dir: string; pid: number | null }

interface Samples {
  ready: number[];
  marker: number[];
  greeting: number[];
  stop: number[];
  /** Bare only: spawn → the -daemonize parent exits. */
  parentExit: number[];
  /** Bare only: agent attempts and when the answered one began. */
  attempts: Array<{ n: number; answeredStartedMs: number }>;
}

const empty = (): Samples => ({ ready: [], marker: [], greeting: [], stop: [], parentExit: [], attempts: [] });

export const bootBench: BenchModule = {
  name: 'boot',
  description: 'start to guest-ready, start to QMP greeting, stop: vman API vs bare QEMU',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const host = await ctx.host();
    const marker = host.guest.readyMarker;
    const dir = path.join(ctx.root, 'boot');
    const bare = empty();
    const api = empty();

    const greetingAt = new Map<string, number>();
    const v = await startBenchVman({
      storagePath: path.join(dir, 'v'),
      hostInfo: host,
      protocolLog: (vmId, e) => {
        if (!greetingAt.has(vmId) && e.direction === 'in' && typeof e.message === 'object' && e.message !== null && 'QMP' in e.message) {
          greetingAt.set(vmId, performance.now());
        }
      },
    });
    try {
      await v.http.expect(200, 'GET', 'health'); // opens the keep-alive connection

      const bareRun = async (i: number, keep: boolean): Promise<void> => {
        const id = shortId(`bare${i}`);
        const { vm, times } = await BareQemu.boot(smallGuestSpec(host, path.join(dir, id), id), marker);
        try {
          const stopMs = await vm.powerdown();
          if (keep) {
            bare.ready.push(times.agentMs);
            bare.marker.push(times.markerMs);
            bare.greeting.push(times.greetingMs);
            bare.parentExit.push(times.parentExitMs);
            bare.attempts.push({ n: times.agentAttempts, answeredStartedMs: Math.round(times.agentAttemptStartMs) });
            bare.stop.push(stopMs);
          }
          ctx.log(`  bare #${i}: greeting ${fmtMs(times.greetingMs)} (parent exit ${fmtMs(times.parentExitMs)}), agent ${fmtMs(times.agentMs)} (attempt ${times.agentAttempts}, begun at ${fmtMs(times.agentAttemptStartMs)}), marker ${fmtMs(times.markerMs)}, powerdown→exit ${fmtMs(stopMs)}${keep ? '' : ' (warm-up)'}`);
        } finally {
          await vm.destroy();
        }
      };

      const vmanRun = async (i: number, keep: boolean): Promise<void> => {
        const created = await v.http.expect<VmJson>(201, 'POST', 'api/v1/vms', { name: shortId(`boot${i}`), template: 'small' });
        const id = created.body.id;
        const stopMarker = new AbortController();
        try {
          const t0 = performance.now();
          const markerAt = waitForSerialMarker(path.join(created.body.storage_dir, 'serial.log'), marker, 60_000, () => undefined, stopMarker.signal);
          markerAt.catch(() => undefined);
          const started = await v.http.request<VmJson>('POST', `api/v1/vms/${id}/start`);
          if (started.status !== 200 || started.body.state !== 'running') {
            throw new Error(`start of ${id}: HTTP ${started.status} ${JSON.stringify(started.body)}\n${v.logTail()}`);
          }
          const greeting = (greetingAt.get(id) ?? Number.NaN) - t0;
          const markerMs = (await markerAt) - t0;
          const stopped = await v.http.expect<VmJson>(200, 'POST', `api/v1/vms/${id}/stop`);
          if (stopped.body.state !== 'stopped') throw new Error(`stop of ${id} left it ${stopped.body.state}`);
          if (keep) {
            api.ready.push(started.ms);
            api.marker.push(markerMs);
            api.greeting.push(greeting);
            api.stop.push(stopped.ms);
          }
          ctx.log(`  vman #${i}: greeting ${fmtMs(greeting)}, start returned ${fmtMs(started.ms)}, marker ${fmtMs(markerMs)}, stop ${fmtMs(stopped.ms)}${keep ? '' : ' (warm-up)'}`);
        } finally {
          stopMarker.abort();
          // A forced delete stops the VM first if a failure left it running.
          await v.http.request('DELETE', `api/v1/vms/${id}?force=true`).catch(() => undefined);
        }
      };

      // One warm-up pair (page cache, JIT), then ABAB.
      for (let i = 0; i <= ctx.runs; i++) {
        await bareRun(i, i > 0);
        await vmanRun(i, i > 0);
      }
    } finally {
      await v.close();
    }

    const notes = [`median of ${ctx.runs} runs after one warm-up pair, bare and vman alternating`];
    return [
      figure({
        id: 'boot.guest-ready', label: 'start → guest agent answers', target: 1.15, notes,
        vman: { label: 'POST /vms/:id/start → response (vman returns once guest-ping answers)', samples: api.ready },
        baseline: { label: 'bare qemu-system-x86_64 spawn → guest-ping answered (agent connection retried every 20 ms, 10 s per attempt)', samples: bare.ready },
        extra: { bareParentExitMs: bare.parentExit, bareAgentAttempts: bare.attempts },
      }),
      figure({
        id: 'boot.serial-marker', label: 'start → serial ready marker', notes,
        vman: { label: 'POST /vms/:id/start → ready marker in serial.log', samples: api.marker },
        baseline: { label: 'bare spawn → ready marker in serial.log', samples: bare.marker },
      }),
      figure({
        id: 'start.qmp-greeting', label: 'start → QMP greeting (controllable)', notes: [
          ...notes,
          'vman: from the start request to vman receiving the greeting on its own QMP connection (protocol log)',
        ],
        vman: { label: 'POST /vms/:id/start → vman receives the QMP greeting', samples: api.greeting },
        baseline: { label: 'bare spawn → QMP greeting (connect retried every 5 ms)', samples: bare.greeting },
      }),
      figure({
        id: 'stop.powerdown', label: 'stop (ACPI powerdown → exit)', notes,
        vman: { label: 'POST /vms/:id/stop → response', samples: api.stop },
        baseline: { label: 'bare system_powerdown → process gone (polled every 5 ms)', samples: bare.stop },
      }),
    ];
  },
};
