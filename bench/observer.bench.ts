// How the observer's check scales with the number of rows: a real SQLite file
// with N VMs and 10×N disks, no processes, every disk file present (dry run:
// processes and files come from memory, so this measures vman, not /proc).
// A linear check shows ratios near the size ratio; a nested scan would show
// its square. Used by bench/run.ts; also runnable on its own:
//   node --import tsx bench/observer.bench.ts
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { openDatabase } from '../src/db/database.ts';
import { Observer } from '../src/observer/observer.ts';
import { defaultSources } from '../src/observer/snapshot.ts';
import type { SnapshotSources } from '../src/observer/snapshot.ts';
import { cleanupAll, installSignalHandlers, makeBenchRoot } from './lib/cleanup.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { median } from './lib/stats.ts';

export const SIZES = [10, 100, 1000, 10_000];
export const RUNS = 5;
const LIMIT_VMS = 1000;
const LIMIT_MS = 1000;

export interface ObserverRow { vms: number; disks: number; setupMs: number; samples: number[]; medianMs: number; findings: number }

export async function measureObserver(n: number, root: string, runs = RUNS): Promise<ObserverRow> {
  const started = performance.now();
  const storage = path.join(root, `s${n}`);
  fs.mkdirSync(storage, { recursive: true });
  const db = openDatabase(path.join(storage, 'vman.db'));
  try {
    const diskPaths: string[] = [];
    db.transaction(() => {
      db.templates.insert({
        id: 't1', name: 'tiny', cpus: 1, memoryMb: 256, kernelPath: '/k/vmlinuz', initrdPath: null, cmdline: null,
        baseImagePath: null, baseImageFormat: null, builtin: false,
      });
      for (let i = 0; i < n; i++) {
        const id = `vm-${i}`;
        const mac = `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
        db.vms.insert({ id, name: id, templateId: 't1', state: 'stopped', stateReason: null, pid: null, mac, storageDir: path.join(storage, 'vms', id) });
        for (let j = 0; j < 10; j++) {
          const diskId = `d-${i}-${j}`;
          const p = path.join(storage, 'disks', `${diskId}.qcow2`);
          diskPaths.push(p);
          db.disks.insert({ id: diskId, name: diskId, sizeGb: 1, format: 'qcow2', path: p, state: 'available', vmId: null, mountPoint: null });
        }
      }
    });
    const setupMs = performance.now() - started;
    // Real rows from SQLite; processes and files from memory, so the bench measures vman, not /proc.
    const sources: SnapshotSources = {
      ...defaultSources(db, storage, { owner: 'bench' }),
      listProcesses: async () => [],
      listDiskFiles: async () => diskPaths,
    };
    const observer = new Observer({ sources, storagePath: storage });
    const samples: number[] = [];
    let findings = 0;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const report = await observer.check();
      samples.push(performance.now() - t0);
      findings = report.findings.length;
    }
    return { vms: n, disks: 10 * n, setupMs, samples, medianMs: median(samples), findings };
  } finally {
    db.close();
    fs.rmSync(storage, { recursive: true, force: true });
  }
}

export const observerBench: BenchModule = {
  name: 'observer',
  description: 'observer check time at 10, 100, 1,000 and 10,000 VMs (10 disks each, dry run)',
  needsQemu: false,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const root = path.join(ctx.root, 'observer');
    const runs = Math.max(ctx.runs, RUNS);
    const rows: ObserverRow[] = [];
    for (const n of SIZES) {
      const row = await measureObserver(n, root, runs);
      if (row.findings !== 0) throw new Error(`a coherent store of ${n} VMs produced ${row.findings} finding(s)`);
      rows.push(row);
      ctx.log(`  ${n} VMs / ${10 * n} disks: median ${row.medianMs.toFixed(2)} ms (${((row.medianMs * 1000) / n).toFixed(1)} µs per VM), setup ${row.setupMs.toFixed(0)} ms`);
    }
    const base = rows[0]!;
    return rows.map((r) => {
      const linear = r.vms / base.vms;
      return figure({
        id: `observer.check.${r.vms}`,
        label: `observer check, ${r.vms.toLocaleString('en-US')} VMs (${((r.medianMs * 1000) / r.vms).toFixed(1)} µs/VM)`,
        // Linear growth is the target: at most the size ratio (fixed costs make small sizes cheaper still).
        target: linear,
        targetText: r.vms === base.vms ? 'baseline' : `≤ ${linear}x (linear)`,
        vman: { label: `check with ${r.vms} VMs and ${r.disks} disks`, samples: r.samples },
        baseline: { label: `check with ${base.vms} VMs and ${base.disks} disks`, samples: base.samples },
        notes: [`median of ${runs} checks`],
        extra: { vms: r.vms, disks: r.disks, perVmUs: Math.round((r.medianMs * 1000 / r.vms) * 10) / 10, setupMs: Math.round(r.setupMs) },
      });
    });
  },
};

async function standalone(): Promise<void> {
  installSignalHandlers((m) => console.error(m));
  const root = makeBenchRoot();
  const rows: ObserverRow[] = [];
  try {
    for (const n of SIZES) rows.push(await measureObserver(n, root));
  } finally {
    await cleanupAll();
  }

  const base = rows[0]?.medianMs ?? Number.NaN;
  console.log('| VMs | disks | setup ms | check median ms (5 runs) | ratio vs 10 VMs | µs per VM | findings |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.vms} | ${r.disks} | ${r.setupMs.toFixed(0)} | ${r.medianMs.toFixed(2)} | ${(r.medianMs / base).toFixed(1)}x | ${((r.medianMs * 1000) / r.vms).toFixed(1)} | ${r.findings} |`);
  }

  const limitRow = rows.find((r) => r.vms === LIMIT_VMS);
  if (!limitRow || rows.some((r) => r.findings !== 0)) {
    console.error('FAIL: a coherent store must produce no findings');
    process.exitCode = 1;
  } else if (limitRow.medianMs >= LIMIT_MS) {
    console.error(`FAIL: ${LIMIT_VMS} VMs / ${10 * LIMIT_VMS} disks took ${limitRow.medianMs.toFixed(0)} ms (limit ${LIMIT_MS} ms)`);
    process.exitCode = 1;
  } else {
    console.log(`OK: ${LIMIT_VMS} VMs / ${10 * LIMIT_VMS} disks in ${limitRow.medianMs.toFixed(0)} ms (limit ${LIMIT_MS} ms)`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await standalone();
