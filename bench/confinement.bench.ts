// What confinement costs a start: the same VM of the `small` template started
// by vman's operator (QemuVm.start, then the agent's readiness) confined as
// vman confines it when it runs as root (its own uid, folder and seed
// chowned, a cgroup with limits, the seccomp sandbox), against the unconfined
// start vman made before (as root, no sandbox, no cgroup). Both are spawned
// detached by vman's launcher, so what differs is what confinement adds.
// Runs alternate (ABAB...) after one warm-up pair.
//
// Figures:
// - confinement.start-ready (target ≤ 1.05): launch → guest agent answers
//   with an address, confined vs unconfined; its notes give the median of
//   the paired ratios too (boots here fall in two modes, about 3.4 s and
//   5.1 s, whatever the confinement, and which one decides the medians).
// - confinement.launch: launch → QMP connected, where confinement's own steps
//   are, without the guest's boot.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Confinement } from '../src/operator/confinement.ts';
import { QemuVm } from '../src/operator/qemu-vm.ts';
import { shortId, smallGuestSpec } from './lib/bare-qemu.ts';
import { killQemusUnder } from './lib/cleanup.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs, median } from './lib/stats.ts';

export const confinementBench: BenchModule = {
  name: 'confinement',
  description: 'start → ready of one VM, confined (own uid, cgroup, sandbox) vs unconfined, through vman\'s operator',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    if (process.getuid?.() !== 0) throw new Error('the confinement bench needs root: only vman as root confines QEMU');
    const host = await ctx.host();
    // The VMs' folders as vman lays them out (<storage>/vms/<id>), passable by a VM's own user.
    const storage = path.join(ctx.root, 'confinement');
    await mkdir(path.join(storage, 'vms'), { recursive: true, mode: 0o711 });
    const confined = await Confinement.create({});
    if (confined.refusal) throw new Error(`vman would not start a VM here: ${confined.refusal}`);
    const unconfined = Confinement.unconfined();
    const samples = { confined: [] as number[], unconfined: [] as number[] };
    // Launch → QMP connected: where confinement's own steps are (files chowned, cgroup made and joined, the sandbox installed), without the guest's boot.
    const launch = { confined: [] as number[], unconfined: [] as number[] };
    let uid = 0;

    const once = async (which: 'confined' | 'unconfined', keep: boolean): Promise<void> => {
      const id = shortId(which === 'confined' ? 'conf' : 'free');
      const dir = path.join(storage, 'vms', id);
      const spec = smallGuestSpec(host, dir, id);
      const identity = which === 'confined' ? confined.allocate(new Set([...Array(uid++).keys()].map((i) => i + 1_879_048_192))) : undefined;
      const t0 = performance.now();
      const vm = await QemuVm.start({ ...spec, ...(identity ? { identity } : {}) }, { confinement: which === 'confined' ? confined : unconfined });
      const launched = performance.now() - t0;
      try {
        await vm.waitUntilReady({ kind: 'agent' }, 60_000);
        const ms = performance.now() - t0;
        if (keep) {
          samples[which].push(ms);
          launch[which].push(launched);
        }
        ctx.log(`  ${which} #${samples[which].length}: launch ${fmtMs(launched)}, start → ready ${fmtMs(ms)}${keep ? '' : ' (warm-up)'}`);
      } finally {
        await vm.kill().catch(() => undefined);
        await killQemusUnder(dir);
        await rm(dir, { recursive: true, force: true });
      }
    };

    try {
      await once('unconfined', false);
      await once('confined', false);
      for (let i = 0; i < ctx.runs; i++) {
        await once('unconfined', true);
        await once('confined', true);
      }
    } finally {
      await rm(storage, { recursive: true, force: true });
    }
    const pairs = samples.confined.map((c, i) => c / samples.unconfined[i]!);
    const pairedMedian = median(pairs);
    return [figure({
      id: 'confinement.launch',
      label: 'launch → QMP connected, confined / unconfined',
      vman: { label: 'QemuVm.start: own uid, files chowned, cgroup, -sandbox', samples: launch.confined },
      baseline: { label: 'the same as root, no cgroup, no sandbox', samples: launch.unconfined },
      notes: ['what confinement adds before the guest runs; the guest boots the same either way'],
    }), figure({
      id: 'confinement.start-ready',
      label: 'start → ready, confined / unconfined',
      vman: { label: 'QemuVm.start + agent ready: own uid, files chowned, cgroup, -sandbox', samples: samples.confined },
      baseline: { label: 'the same as root, no cgroup, no sandbox', samples: samples.unconfined },
      target: 1.05,
      notes: [
        `confinement: ${confined.summary().user}; limits ${confined.summary().limits}`,
        `median of the ${pairs.length} paired ratios (each confined start over the unconfined one just before it): ${pairedMedian.toFixed(2)}`,
      ],
    })];
  },
};
