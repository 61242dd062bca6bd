// The real guest (the Debian image guest/build-debian.sh makes): start to
// ready (its agent answers and it has an address) through vman's API against
// the same guest on a bare QEMU command line (the argument vector vman would
// build, with the same seed and an overlay of the same image); and stop
// through the agent (vman) against the ACPI power button (bare) and against
// the 20 s a guest that ignored both used to take before vman gave up.
import { execFileSync } from 'node:child_process';
import { newDeviceModel } from '../src/model/device-model.ts';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { realpathSync, readFileSync } from 'node:fs';
import { writeSeed } from '../src/operator/cloud-init-seed.ts';
import { BareQemu, randomMac, shortId } from './lib/bare-qemu.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs } from './lib/stats.ts';
import { startBenchVman } from './lib/vman.ts';
import { withinReach } from '../support/within-reach.ts';

interface VmJson { id: string; state: string; stop_method: string | null }

/** The 20 s deadline vman waited out for a guest that ignored the ACPI button, before it quit QEMU. */
const OLD_STOP_MS = 20_000;

function debianDir(): string | undefined {
  try {
    return realpathSync(path.join(process.env.VMAN_DEBIAN_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'vman', 'debian'), 'current'));
  } catch {
    return undefined;
  }
}

export const debianBench: BenchModule = {
  name: 'debian',
  description: 'the Debian guest: start to ready and stop, vman API vs bare QEMU',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const cached = debianDir();
    if (!cached) throw new Error('the Debian guest is not built: run guest/build-debian.sh (./setup.sh does)');
    const dir = await withinReach(cached, ctx.root);
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, string>;
    const host = await ctx.host();
    const root = path.join(ctx.root, 'debian');
    const runs = Math.min(ctx.runs, 3);
    const bare = { ready: [] as number[], stop: [] as number[] };
    const api = { ready: [] as number[], stop: [] as number[], methods: [] as string[] };

    const v = await startBenchVman({ storagePath: path.join(root, 'v'), hostInfo: host, env: { VMAN_IMAGE_DIRS: dir, VMAN_BOOT_TIMEOUT: '300' } });
    try {
      await v.http.expect(201, 'POST', 'api/v1/templates', {
        name: 'debian', cpus: 2, memory_mb: 1024, kernel_path: path.join(dir, m.kernel!), initrd_path: path.join(dir, m.initrd!),
        cmdline: m.cmdline, base_image_path: path.join(dir, m.image!), base_image_format: 'qcow2',
      });
      for (let i = 0; i < runs; i++) {
        // Bare: an overlay of the image and a seed, as vman makes them, and vman's argument vector.
        const id = shortId(`deb${i}`);
        const vmDir = path.join(root, id);
        await mkdir(vmDir, { recursive: true });
        execFileSync(host.qemuImg.path, ['create', '-q', '-f', 'qcow2', '-b', path.join(dir, m.image!), '-F', 'qcow2', path.join(vmDir, 'root.qcow2')]);
        const seed = await writeSeed(vmDir, { instanceId: id, hostname: id, sshKeys: [], userData: null });
        const { vm, times } = await BareQemu.boot({
          id, dir: vmDir, qemuBinary: host.qemu.path, accel: host.accel.accel, cpus: 2, memoryMb: 1024,
          boot: { kernel: path.join(dir, m.kernel!), initrd: path.join(dir, m.initrd!), cmdline: m.cmdline! },
          rootDisk: { id: `root-${id}`, path: path.join(vmDir, 'root.qcow2'), format: 'qcow2' },
          disks: [], seed: { id: `seed-${id}`, path: seed, format: 'raw' },
          network: { mode: 'user', subnet: '10.0.2.0/24', gateway: '10.0.2.2', address: '10.0.2.15', mac: randomMac() },
          deviceModel: newDeviceModel(id, true),
        }, 'login:', 300_000, { agentWithAddress: true });
        try {
          bare.ready.push(times.agentMs);
          bare.stop.push(await vm.powerdown(60_000));
          ctx.log(`  bare #${i}: agent with an address ${fmtMs(times.agentMs)}, login prompt ${fmtMs(times.markerMs)}, ACPI power button → exit ${fmtMs(bare.stop.at(-1)!)}`);
        } finally {
          await vm.destroy();
        }

        const created = await v.http.expect<VmJson>(201, 'POST', 'api/v1/vms', { name: shortId(`deb${i}`), template: 'debian' });
        try {
          const started = await v.http.expect<VmJson>(200, 'POST', `api/v1/vms/${created.body.id}/start`);
          const stopped = await v.http.expect<VmJson>(200, 'POST', `api/v1/vms/${created.body.id}/stop`);
          api.ready.push(started.ms);
          api.stop.push(stopped.ms);
          api.methods.push(stopped.body.stop_method ?? 'none');
          ctx.log(`  vman #${i}: start → running ${fmtMs(started.ms)}, stop ${fmtMs(stopped.ms)} (${stopped.body.stop_method})`);
        } finally {
          await v.http.request('DELETE', `api/v1/vms/${created.body.id}?force=true`).catch(() => undefined);
        }
      }
    } finally {
      await v.close();
    }
    const notes = [`median of ${runs} runs, bare and vman alternating, no warm-up (each boot takes half a minute)`];
    return [
      figure({
        id: 'debian.ready', label: 'Debian: start → agent answers with an address', notes,
        vman: { label: 'POST /vms/:id/start → running (agent readiness: agent answers, guest reports an IPv4 address)', samples: api.ready },
        baseline: { label: 'bare QEMU, same argument vector, seed and overlay: spawn → agent answers with an IPv4 address', samples: bare.ready },
      }),
      figure({
        id: 'debian.stop', label: 'Debian: stop (vman: agent; bare: ACPI power button)', notes: [...notes, `vman stopped by: ${api.methods.join(', ')}`],
        vman: { label: 'POST /vms/:id/stop → stopped (guest-shutdown through the agent)', samples: api.stop },
        baseline: { label: 'bare system_powerdown → process gone', samples: bare.stop },
      }),
      figure({
        id: 'debian.stop-vs-old', label: 'Debian: stop, against the 20 s deadline it took before', notes: ['before: the guest ignored the ACPI button, vman waited its 20 s deadline and quit QEMU'],
        vman: { label: 'POST /vms/:id/stop → stopped', samples: api.stop },
        baseline: { label: 'the old 20 s ACPI deadline (then quit)', samples: api.stop.map(() => OLD_STOP_MS) },
      }),
    ];
  },
};
