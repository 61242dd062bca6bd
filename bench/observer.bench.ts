// How the observer's check scales with the number of rows: a real SQLite file
// with N VMs and 10×N disks, no processes, every disk file present. A linear
// check shows ratios near the size ratio; a nested scan would show its square.
// Run: node --import tsx bench/observer.bench.ts
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/db/database.ts';
import { Observer } from '../src/observer/observer.ts';
import { defaultSources } from '../src/observer/snapshot.ts';
import type { SnapshotSources } from '../src/observer/snapshot.ts';

const SIZES = [10, 100, 1000, 10_000];
const RUNS = 5;
const LIMIT_VMS = 1000;
const LIMIT_MS = 1000;

interface Row { vms: number; disks: number; setupMs: number; medianMs: number; findings: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function measure(n: number, root: string): Promise<Row> {
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
      ...defaultSources(db, storage),
      listProcesses: async () => [],
      listDiskFiles: async () => diskPaths,
    };
    const observer = new Observer({ sources, storagePath: storage });
    const times: number[] = [];
    let findings = 0;
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      const report = await observer.check();
      times.push(performance.now() - t0);
      findings = report.findings.length;
    }
    return { vms: n, disks: 10 * n, setupMs, medianMs: median(times), findings };
  } finally {
    db.close();
  }
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-observer-bench-'));
const rows: Row[] = [];
try {
  for (const n of SIZES) rows.push(await measure(n, root));
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}

const base = rows[0]?.medianMs ?? Number.NaN;
console.log('| VMs | disks | setup ms | check median ms (5 runs) | ratio vs 10 VMs | findings |');
console.log('|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.vms} | ${r.disks} | ${r.setupMs.toFixed(0)} | ${r.medianMs.toFixed(2)} | ${(r.medianMs / base).toFixed(1)}x | ${r.findings} |`);
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
