// Disk hot-plug on a running guest, through vman's API against raw QMP on a
// bare QEMU of the same argument vector. One running VM per side; N cycles
// each (after one warm-up cycle), sides alternating. A cycle: make a qcow2
// (not timed), attach until the guest sees it, detach until it is gone.
//
// Raw attach: blockdev-add (file) + blockdev-add (qcow2) + device_add, then
// ask the guest through its agent every 100 ms (vman's interval in
// guest-disks.ts) until /sys/block/vd*/serial shows the disk's serial; one
// agent connection kept open. Raw detach: device_del → DEVICE_DELETED, then
// blockdev-del of both nodes.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { GuestAgentClient } from '../src/operator/guest-agent-client.ts';
import { guestBlockDevices } from '../src/operator/guest-disks.ts';
import { diskNodeNames } from '../src/model/device-model.ts';
import { createQcow2 } from '../src/operator/qemu-img.ts';
import { pollUntil } from '../src/poll.ts';
import { BareQemu, shortId, smallGuestSpec, waitForSerialMarker } from './lib/bare-qemu.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs, median, round } from './lib/stats.ts';
import { startBenchVman } from './lib/vman.ts';

interface VmJson { id: string; state: string; storage_dir: string }
interface DiskJson { id: string; state: string; mount_point: string | null }

/** vman's waitForGuestDisk default. */
const GUEST_POLL_MS = 100;
const SERIALS = 'for d in /sys/block/vd*; do [ -e "$d/serial" ] && cat "$d/serial"; echo; done';

export const hotplugBench: BenchModule = {
  name: 'hotplug',
  description: 'hot-plug: device_add → guest sees the disk, device_del → DEVICE_DELETED: vman API vs raw QMP',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const host = await ctx.host();
    const dir = path.join(ctx.root, 'hotplug');
    const raw = { attach: [] as number[], seen: [] as number[], polls: [] as number[][], detach: [] as number[], deleted: [] as number[] };
    const api = { attach: [] as number[], detach: [] as number[], breakdown: [] as Array<Record<string, unknown>> };
    const diag = { rawExec: [] as number[], listScriptExec: [] as number[], fastExec: [] as number[], fastListScriptExec: [] as number[], connectSync: [] as number[], connectSyncAfterPause: [] as number[] };

    // Diagnostics of where vman's time goes: its QMP traffic (protocol log) and its guest-agent sessions.
    const qmpOut: Array<{ at: number; command: string }> = [];
    const v = await startBenchVman({
      storagePath: path.join(dir, 'v'),
      hostInfo: host,
      protocolLog: (_vm, e) => {
        const m = e.message as { execute?: unknown };
        if (e.direction === 'out' && typeof m?.execute === 'string') qmpOut.push({ at: performance.now(), command: m.execute });
      },
    });
    const sessions: Array<{ start: number; end: number }> = [];
    let bare: BareQemu | undefined;
    let ga: GuestAgentClient | undefined;
    try {
      // Both guests up and settled (ready marker) before the first cycle.
      const id = shortId('bare');
      const [bootedResult, vmResult] = await Promise.allSettled([
        BareQemu.boot(smallGuestSpec(host, path.join(dir, id), id), host.guest.readyMarker),
        (async () => {
          const created = await v.http.expect<VmJson>(201, 'POST', 'api/v1/vms', { name: 'hotplug', template: 'small' });
          const started = await v.http.request<VmJson>('POST', `api/v1/vms/${created.body.id}/start`);
          if (started.status !== 200) throw new Error(`start: HTTP ${started.status} ${JSON.stringify(started.body)}\n${v.logTail()}`);
          await waitForSerialMarker(path.join(created.body.storage_dir, 'serial.log'), host.guest.readyMarker, 60_000);
          return created.body;
        })(),
      ]);
      // Whichever side came up is torn down in finally, even when the other failed.
      if (bootedResult.status === 'fulfilled') bare = bootedResult.value.vm;
      if (bootedResult.status === 'rejected') throw bootedResult.reason;
      if (vmResult.status === 'rejected') throw vmResult.reason;
      if (!bare) throw new Error('the bare QEMU did not come up');
      const vm = vmResult.value;
      // Observation only: note when each of vman's guest-agent sessions (one per guest poll) starts and ends.
      const handle = v.vman.runtime.handle(vm.id) as unknown as { withGuestAgent?: <T>(fn: (ga: GuestAgentClient) => Promise<T>, timeoutMs?: number) => Promise<T> };
      const original = handle.withGuestAgent?.bind(handle);
      if (original) {
        handle.withGuestAgent = async <T>(fn: (ga: GuestAgentClient) => Promise<T>, timeoutMs?: number): Promise<T> => {
          const start = performance.now();
          try {
            return await original(fn, timeoutMs);
          } finally {
            sessions.push({ start, end: performance.now() });
          }
        };
      }
      const qmp = bare.qmp!;
      ga = await GuestAgentClient.connect(bare.paths.guestAgent, { timeoutMs: 5_000 });
      const agent = ga;

      /** guest-exec with guest-exec-status asked every 5 ms instead of GuestAgentClient's 50 ms. */
      const execFast = async (file: string, args: string[]): Promise<void> => {
        const { pid } = await agent.execute<{ pid: number }>('guest-exec', { path: file, arg: args, 'capture-output': true });
        await pollUntil('guest-exec to finish', async () => {
          const st = await agent.execute<{ exited: boolean }>('guest-exec-status', { pid });
          return st.exited ? { done: true, value: undefined } : { done: false, seen: 'running' };
        }, { timeoutMs: 5_000, intervalMs: 5 });
      };
      // vman's listing command, as guest-disks.ts sends it.
      let listCommand: [string, string[]] = ['/bin/true', []];
      await guestBlockDevices({ exec: async (file, args) => { listCommand = [file, args]; return { exitCode: 0, stdout: '', stderr: '' }; } });

      /** Diagnostics, not figures: what one guest poll costs, with one hot-plugged disk in the guest. */
      const diagnosePolls = async (): Promise<void> => {
        for (let k = 0; k < 5; k++) {
          const t0 = performance.now();
          await agent.exec('/bin/sh', ['-c', SERIALS], { timeoutMs: 5_000 });
          const t1 = performance.now();
          await guestBlockDevices(agent, { timeoutMs: 5_000 });
          const t2 = performance.now();
          await execFast('/bin/sh', ['-c', SERIALS]);
          const t3 = performance.now();
          await execFast(...listCommand);
          const t4 = performance.now();
          diag.rawExec.push(t1 - t0);
          diag.listScriptExec.push(t2 - t1);
          diag.fastExec.push(t3 - t2);
          diag.fastListScriptExec.push(t4 - t3);
        }
      };

      const rawCycle = async (i: number, keep: boolean): Promise<void> => {
        const diskId = shortId(`rd${i}`);
        const { node, fileNode, device } = diskNodeNames(diskId);
        const file = path.join(bare!.spec.dir, `${diskId}.qcow2`);
        await createQcow2(file, 1, { qemuImg: host.qemuImg.path });
        try {
          const t0 = performance.now();
          await qmp.execute('blockdev-add', { driver: 'file', 'node-name': fileNode, filename: file });
          await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, file: fileNode });
          await qmp.execute('device_add', { driver: 'virtio-blk-pci', id: device, drive: node, serial: diskId });
          const tAdded = performance.now();
          const pollMs: number[] = [];
          await pollUntil(`the guest to see disk ${diskId}`, async () => {
            const p0 = performance.now();
            const r = await agent.exec('/bin/sh', ['-c', SERIALS], { timeoutMs: 5_000 });
            pollMs.push(performance.now() - p0);
            return r.stdout.split('\n').includes(diskId) ? { done: true, value: undefined } : { done: false, seen: r.stdout.trim() };
          }, { timeoutMs: 15_000, intervalMs: GUEST_POLL_MS });
          const tSeen = performance.now();
          if (i === ctx.runs) await diagnosePolls();

          const deleted = qmp.eventWait('DEVICE_DELETED', { timeoutMs: 15_000, match: (ev) => ev.data?.['device'] === device });
          const t1 = performance.now();
          await qmp.execute('device_del', { id: device });
          await deleted;
          const tDeleted = performance.now();
          await qmp.execute('blockdev-del', { 'node-name': node });
          await qmp.execute('blockdev-del', { 'node-name': fileNode });
          const tDone = performance.now();
          if (keep) {
            raw.attach.push(tSeen - t0);
            raw.seen.push(tSeen - tAdded);
            raw.polls.push(pollMs.map((x) => round(x)));
            raw.detach.push(tDone - t1);
            raw.deleted.push(tDeleted - t1);
          }
          ctx.log(`  raw  #${i}: attach→seen ${fmtMs(tSeen - t0)} (${pollMs.length} polls of ${pollMs.map((x) => x.toFixed(0)).join('+')} ms), detach ${fmtMs(tDone - t1)} (DEVICE_DELETED ${fmtMs(tDeleted - t1)})${keep ? '' : ' (warm-up)'}`);
        } finally {
          await rm(file, { force: true });
        }
      };

      const apiCycle = async (i: number, keep: boolean): Promise<void> => {
        const disk = await v.http.expect<DiskJson>(201, 'POST', 'api/v1/disks', { name: shortId(`hp${i}`), size_gb: 1 });
        try {
          qmpOut.length = 0;
          sessions.length = 0;
          const t0 = performance.now();
          const attached = await v.http.expect<DiskJson>(200, 'POST', `api/v1/disks/${disk.body.id}/attach`, { vm_id: vm.id });
          const tEnd = performance.now();
          const first = qmpOut[0]?.at ?? Number.NaN;
          const deviceAdd = qmpOut.find((q) => q.command === 'device_add')?.at ?? Number.NaN;
          const lastPoll = sessions.at(-1)?.end ?? Number.NaN;
          const breakdown = {
            requestToFirstQmpMs: round(first - t0),
            deviceAddToSeenMs: round(lastPoll - deviceAdd),
            guestPolls: sessions.length,
            pollMs: sessions.map((p) => round(p.end - p.start)),
            seenToResponseMs: round(tEnd - lastPoll),
          };
          if (attached.body.state !== 'attached' || !attached.body.mount_point) throw new Error(`attach left ${JSON.stringify(attached.body)}`);
          const detached = await v.http.expect<DiskJson>(200, 'POST', `api/v1/disks/${disk.body.id}/detach`);
          if (detached.body.state !== 'available') throw new Error(`detach left ${JSON.stringify(detached.body)}`);
          if (keep) {
            api.attach.push(attached.ms);
            api.detach.push(detached.ms);
            api.breakdown.push(breakdown);
          }
          ctx.log(`  vman #${i}: attach ${fmtMs(attached.ms)} (${attached.body.mount_point}; ${breakdown.guestPolls} polls of ${breakdown.pollMs.map((x) => x.toFixed(0)).join('+')} ms, request→QMP ${fmtMs(breakdown.requestToFirstQmpMs)}, seen→response ${fmtMs(breakdown.seenToResponseMs)}), detach ${fmtMs(detached.ms)}${keep ? '' : ' (warm-up)'}`);
        } finally {
          await v.http.request('DELETE', `api/v1/disks/${disk.body.id}`).catch(() => undefined);
        }
      };

      for (let i = 0; i <= ctx.runs; i++) {
        await rawCycle(i, i > 0);
        await apiCycle(i, i > 0);
      }

      // And what a fresh agent connection (vman opens one per poll) costs on an idle guest:
      // back to back, and the way vman polls (close, 100 ms, connect). qemu-ga on virtio-serial
      // sleeps 100 ms at a time while no host is connected, so the second kind waits for it.
      await agent.close();
      ga = undefined;
      const gaPath = bare.paths.guestAgent;
      for (let k = 0; k < 5; k++) {
        const t0 = performance.now();
        const fresh = await GuestAgentClient.connect(gaPath, { timeoutMs: 5_000 });
        diag.connectSync.push(performance.now() - t0);
        await fresh.close();
      }
      await pollUntil('six agent sessions opened the way vman polls', async () => {
        const t0 = performance.now();
        const fresh = await GuestAgentClient.connect(gaPath, { timeoutMs: 5_000 });
        diag.connectSyncAfterPause.push(performance.now() - t0);
        await fresh.close();
        return diag.connectSyncAfterPause.length >= 6 ? { done: true, value: undefined } : { done: false, seen: `${diag.connectSyncAfterPause.length} sessions` };
      }, { timeoutMs: 30_000, intervalMs: GUEST_POLL_MS });
      diag.connectSyncAfterPause.shift(); // the first came straight after the previous close
      ctx.log(`  one guest poll (medians of 5, one disk in the guest): raw script ${fmtMs(median(diag.rawExec))}, vman's list script ${fmtMs(median(diag.listScriptExec))}; `
        + `with guest-exec-status every 5 ms: ${fmtMs(median(diag.fastExec))} and ${fmtMs(median(diag.fastListScriptExec))}; fresh agent connection + guest-sync ${fmtMs(median(diag.connectSync))} back to back, `
        + `${fmtMs(median(diag.connectSyncAfterPause))} ${GUEST_POLL_MS} ms after a close (${diag.connectSyncAfterPause.map((x) => x.toFixed(0)).join(', ')} ms)`);
    } finally {
      await ga?.close().catch(() => undefined);
      await bare?.destroy();
      await v.close();
    }

    const notes = [`median of ${ctx.runs} cycles after one warm-up cycle per side, raw and vman alternating; guest polled every ${GUEST_POLL_MS} ms on both sides`];
    return [
      figure({
        id: 'hotplug.attach', label: 'hot-plug attach → guest sees disk', target: 1.2, notes,
        vman: { label: 'POST /disks/:id/attach → response (vman returns once the guest lists the disk)', samples: api.attach },
        baseline: { label: 'raw QMP blockdev-add ×2 + device_add → guest lists the serial (agent exec every 100 ms)', samples: raw.attach },
        extra: {
          vmanBreakdown: api.breakdown,
          rawDeviceAddToSeenMs: raw.seen.map((x) => round(x)),
          rawGuestPollMs: raw.polls,
          // One guest poll, measured on the bare guest after the cycles.
          pollRawExecMs: diag.rawExec.map((x) => round(x)),
          pollVmanListScriptMs: diag.listScriptExec.map((x) => round(x)),
          pollExecStatusEvery5msMs: diag.fastExec.map((x) => round(x)),
          pollVmanListScriptExecStatusEvery5msMs: diag.fastListScriptExec.map((x) => round(x)),
          pollFreshAgentConnectSyncMs: diag.connectSync.map((x) => round(x)),
          pollFreshAgentConnectSyncAfterPauseMs: diag.connectSyncAfterPause.map((x) => round(x)),
        },
      }),
      figure({
        id: 'hotplug.detach', label: 'hot-unplug detach → DEVICE_DELETED', target: 1.2, notes,
        vman: { label: 'POST /disks/:id/detach → response', samples: api.detach },
        baseline: { label: 'raw QMP device_del → DEVICE_DELETED + blockdev-del ×2', samples: raw.detach },
        extra: { rawDeviceDeletedMs: raw.deleted.map((x) => round(x)) },
      }),
    ];
  },
};
