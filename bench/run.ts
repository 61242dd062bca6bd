// `npm run bench`: runs the benchmark modules, prints one table (vman against
// a baseline measured in the same run, as a ratio) and writes
// reports/bench.json with the machine, QEMU, accelerator and every sample.
//
//   npm run bench -- [--runs N] [--only NAME[,NAME]] [--skip-suite] [--suite-runs N] [--strict]
//
// --runs N        measured runs per QEMU figure, after one warm-up (default 5)
// --only NAME     boot, confinement, hotplug, observer, api, debian, snapshot, suite, suite-floor (repeatable or comma-separated)
// --skip-suite    leave out the whole-suite timings (they take minutes)
// --suite-runs N  runs of each suite timing (default 1)
// --strict        exit 1 when a figure misses its target (default: report only)
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatVersion } from '../src/host/binaries.ts';
import { defaultGuestDir, describeGuest } from '../src/host/guest-image.ts';
import { realpathSync } from 'node:fs';
import { probeHost, type HostInfo } from '../src/host/probe.ts';
import { isQemuSystem, listProcesses } from '../src/operator/proc.ts';
import { apiBench } from './api.bench.ts';
import { bootBench } from './boot.bench.ts';
import { confinementBench } from './confinement.bench.ts';
import { debianBench } from './debian.bench.ts';
import { hotplugBench } from './hotplug.bench.ts';
import { cleanupAll, installSignalHandlers, isAborting, makeBenchRoot } from './lib/cleanup.ts';
import { withinReach } from '../support/within-reach.ts';
import type { BenchContext, BenchModule, Figure } from './lib/figures.ts';
import { fmtMs, fmtRatio } from './lib/stats.ts';
import { observerBench } from './observer.bench.ts';
import { snapshotBench } from './snapshot.bench.ts';
import { suiteBench, suiteFloorBench } from './suite.bench.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODULES: BenchModule[] = [observerBench, apiBench, bootBench, confinementBench, hotplugBench, debianBench, snapshotBench, suiteBench, suiteFloorBench];

function usage(): string {
  return `usage: npm run bench -- [--runs N] [--only ${MODULES.map((m) => m.name).join('|')}] [--skip-suite] [--suite-runs N] [--strict]`;
}

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number ≥ 1, not ${JSON.stringify(text)}`);
  return n;
}

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

function table(figures: Figure[]): string {
  const head = ['figure', 'vman', 'baseline', 'ratio', 'target', 'verdict'];
  const rows = figures.map((f) => [
    `${f.label}${f.stat === 'median' ? '' : ` (${f.stat})`}`,
    fmtMs(f.vman.value),
    fmtMs(f.baseline.value),
    fmtRatio(f.ratio),
    f.targetText ?? (f.target === undefined ? '—' : `≤ ${f.target}`),
    f.verdict === 'info' ? '—' : f.verdict === 'ok' ? 'ok' : 'OVER',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

async function otherQemuCount(): Promise<number> {
  return (await listProcesses().catch(() => [])).filter((p) => isQemuSystem(p.argv)).length;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      only: { type: 'string', multiple: true },
      'skip-suite': { type: 'boolean', default: false },
      'suite-runs': { type: 'string' },
      strict: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const runs = positiveInt('runs', values.runs, 5);
  const suiteRuns = positiveInt('suite-runs', values['suite-runs'], 1);
  const only = (values.only ?? []).flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean);
  for (const name of only) if (!MODULES.some((m) => m.name === name)) throw new Error(`unknown benchmark ${JSON.stringify(name)}; ${usage()}`);
  // By default the whole-suite module runs the floor too: suite-floor alone is for --only.
  const selected = MODULES.filter((m) => (only.length ? only.includes(m.name) : m.name !== 'suite-floor' && !(m.name === 'suite' && values['skip-suite'])));

  installSignalHandlers(log);
  const started = new Date();
  const root = makeBenchRoot();
  let hostPromise: Promise<HostInfo> | undefined;
  const ctx: BenchContext = {
    runs,
    suiteRuns,
    root,
    repo: REPO,
    log,
    // The guest where a VM's own user can read it (vman as root confines each QEMU).
    host: () => (hostPromise ??= withinReach(realpathSync(defaultGuestDir()), root).then((guestDir) => probeHost({
      storagePath: root,
      requestedAccel: (process.env.VMAN_ACCEL as 'auto' | 'kvm' | 'tcg' | undefined) ?? 'auto',
      guestDir,
    }))),
  };

  const figures: Figure[] = [];
  const errors: Array<{ module: string; error: string }> = [];
  const moduleTimes: Record<string, number> = {};
  const loadBefore = os.loadavg();
  const qemuBefore = await otherQemuCount();
  let host: HostInfo | undefined;
  try {
    if (selected.some((m) => m.needsQemu)) {
      host = await ctx.host();
      log(`QEMU ${formatVersion(host.qemu.version)}, accelerator ${host.accel.accel}: ${host.accel.reason}`);
    }
    if (qemuBefore > 0) log(`note: ${qemuBefore} QEMU process(es) of others are running on this host; figures will be noisier`);
    for (const m of selected) {
      if (isAborting()) break;
      log(`== ${m.name}: ${m.description}`);
      const t0 = performance.now();
      try {
        const got = await m.run(ctx);
        figures.push(...got);
        for (const f of got) log(`  ${f.label}: vman ${fmtMs(f.vman.value)}, baseline ${fmtMs(f.baseline.value)}, ratio ${fmtRatio(f.ratio)}`);
      } catch (err) {
        if (isAborting()) break;
        const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
        errors.push({ module: m.name, error: text });
        log(`  ${m.name} FAILED: ${text}`);
      }
      moduleTimes[m.name] = Math.round(performance.now() - t0);
    }
  } finally {
    // Stopped by a signal: its handler cleans up and exits; no table, and no half report over a good one.
    if (isAborting()) await new Promise<never>(() => undefined);
    await cleanupAll(log);
  }

  console.log(table(figures));
  for (const e of errors) console.log(`benchmark ${e.module} failed: ${e.error.split('\n')[0]}`);
  const over = figures.filter((f) => f.verdict === 'over');
  if (over.length) console.log(`over target: ${over.map((f) => `${f.label} ${fmtRatio(f.ratio)} > ${f.target}`).join('; ')}`);

  const cpus = os.cpus();
  const report = {
    date: started.toISOString(),
    durationMs: Math.round(Date.now() - started.getTime()),
    options: { runs, suiteRuns, only, skipSuite: values['skip-suite'], modules: selected.map((m) => m.name) },
    machine: {
      hostname: os.hostname(),
      platform: `${os.platform()} ${os.release()}`,
      cpu: cpus[0]?.model ?? 'unknown',
      cpus: cpus.length,
      memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
      node: process.version,
      loadavgBefore: loadBefore,
      loadavgAfter: os.loadavg(),
      otherQemuProcessesAtStart: qemuBefore,
    },
    qemu: host ? { version: formatVersion(host.qemu.version), path: host.qemu.path, qemuImg: host.qemuImg.path } : null,
    accelerator: host ? { accel: host.accel.accel, reason: host.accel.reason } : null,
    guest: host ? describeGuest(host.guest) : null,
    moduleTimesMs: moduleTimes,
    figures,
    errors,
  };
  const out = path.join(REPO, 'reports', 'bench.json');
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${path.relative(process.cwd(), out) || out}`);
  if (errors.length) return 1;
  return values.strict && over.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(err instanceof Error ? err.message : String(err));
    await cleanupAll(log);
    process.exit(2);
  },
);
