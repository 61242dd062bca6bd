// Whole-suite wall time: `npx cucumber-js --parallel 2` with CI=true, as the
// README runs it (warm: clones for what is not about booting) and with
// VMAN_SUITE_COLD=1 (every VM boots), alternating when run more than once.
// The baseline is one bare boot of the test guest (bare qemu-system-x86_64 →
// its agent answers), measured before and after the runs in the same sitting:
// the suite's length counted in boots, which a faster or slower day leaves
// about the same. A third run, of the @cold features alone (the scenarios
// whose VMs boot because booting, starting or stopping is what they prove,
// the two Debian guests among them), measures the floor under the warm
// suite's ratio: what it costs before any clone, crash or validation rule
// runs. `--only suite-floor` runs that one alone, with its own bare boots.
// Each run's Cucumber messages are kept beside the bench's
// report (reports/bench-suite-warm-0.ndjson, ...) and its step time by kind
// (scripts/time-breakdown.mjs) goes into the figure, so that where the time
// went is read from the same sitting as the ratio. Takes minutes; skip it
// with --skip-suite.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { assertNotAborting, onCleanup } from './lib/cleanup.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs } from './lib/stats.ts';
import { BareQemu, shortId, smallGuestSpec } from './lib/bare-qemu.ts';

interface SuiteRun { ms: number; exitCode: number | null; summary: string; tail: string; messages?: string; breakdown?: Breakdown }

/** What scripts/time-breakdown.mjs makes of one run's messages. */
interface Breakdown {
  wallMs: number;
  stepMs: number;
  scenarios: number;
  rows: { kind: string; ms: number; count: number }[];
  starts: { resumes: number; resumeMs: number; boots: number; bootMs: number };
}

const { breakdown } = (await import(new URL('../scripts/time-breakdown.mjs', import.meta.url).href)) as { breakdown(messages: unknown[]): Breakdown };

/**
 * Keeps the messages the run just wrote (the next run writes over
 * reports/cucumber.ndjson) and reads its step time by kind from them.
 */
async function keepMessages(ctx: BenchContext, run: SuiteRun, name: string): Promise<SuiteRun> {
  const from = path.join(ctx.repo, 'reports', 'cucumber.ndjson');
  const to = path.join(ctx.repo, 'reports', `bench-suite-${name}.ndjson`);
  try {
    await copyFile(from, to);
  } catch (err) {
    ctx.log(`  no messages to keep from the ${name} run: ${(err as Error).message}`);
    return run;
  }
  const messages = (await readFile(to, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
  const b = breakdown(messages);
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  ctx.log(`  ${name}: step time ${s(b.stepMs)}; ${b.rows.filter((r) => r.count > 0).map((r) => `${r.kind.replace(/ \(.*\)$/, '')} ${s(r.ms)}`).join(', ')}; `
    + `VM starts ${b.starts.boots} cold (${s(b.starts.bootMs)}), ${b.starts.resumes} clones (${s(b.starts.resumeMs)})`);
  return { ...run, messages: path.relative(ctx.repo, to), breakdown: b };
}

function runSuite(ctx: BenchContext, args: string[], logFile: string, env: Record<string, string> = {}): Promise<SuiteRun> {
  assertNotAborting();
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    let tail = '';
    const t0 = performance.now();
    // Its own process group, so a stop reaches cucumber's workers and their hooks clean up.
    const child = spawn('npx', ['cucumber-js', ...args], {
      cwd: ctx.repo,
      env: { ...process.env, CI: 'true', FORCE_COLOR: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const collect = (d: Buffer): void => {
      out.write(d);
      tail = (tail + d.toString()).slice(-4000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    const unregister = onCleanup(`cucumber-js ${args.join(' ')}`, async () => {
      if (child.exitCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGINT');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      }, 45_000);
      await exited;
      clearTimeout(timer);
    });
    child.once('error', (err) => {
      unregister();
      out.end();
      reject(err);
    });
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      unregister();
      out.end();
      const summary = [...tail.matchAll(/^\d+ (?:scenarios?|steps?) \(.*\)$/gm)].map((m) => m[0]).join('; ');
      resolve({ ms, exitCode: code, summary, tail: tail.slice(-1500) });
    });
  });
}

/** A failed run keeps the end of its output in the report (the temp folder with the full log is removed). */
function report(r: SuiteRun): Record<string, unknown> {
  return {
    ms: Math.round(r.ms), exitCode: r.exitCode, summary: r.summary,
    ...(r.messages ? { messages: r.messages } : {}), ...(r.breakdown ? { breakdown: r.breakdown } : {}),
    ...(r.exitCode === 0 ? {} : { outputTail: r.tail }),
  };
}

/** Bare boots of the test guest (spawn → its agent answers), each stopped before the next. */
async function bareBoots(ctx: BenchContext, n: number, tag: string): Promise<number[]> {
  const host = await ctx.host();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    assertNotAborting();
    const id = shortId(`${tag}${i}`);
    const { vm, times } = await BareQemu.boot(smallGuestSpec(host, path.join(ctx.root, 'suite-bare', id), id), host.guest.readyMarker);
    await vm.powerdown();
    out.push(times.agentMs);
    ctx.log(`  bare boot ${tag}#${i}: ${fmtMs(times.agentMs)}`);
  }
  return out;
}

/** The scenarios whose VMs must boot (features tagged @cold): the floor under the warm suite. */
const FLOOR_ARGS = ['--parallel', '2', '--tags', '@cold'];
const FLOOR_LABEL = 'CI=true npx cucumber-js --parallel 2 --tags @cold';

/** One run of the suite, its messages kept and its outcome logged as "<name> #<i>". */
async function namedRun(ctx: BenchContext, name: string, i: number, args: string[], env: Record<string, string> = {}): Promise<SuiteRun> {
  const r = await keepMessages(ctx, await runSuite(ctx, args, path.join(ctx.root, `suite-${name}-${i}.log`), env), `${name}-${i}`);
  ctx.log(`  ${name} #${i}: ${fmtMs(r.ms)}, exit ${r.exitCode}: ${r.summary || 'no summary'}`);
  return r;
}

/**
 * The bare boots a sitting counts in (one warm-up, 3 before the runs and 3
 * after), around `runs`; the notes say how many runs there were and which failed.
 */
async function sitting(ctx: BenchContext, what: string, runs: () => Promise<SuiteRun[]>): Promise<{ bare: { label: string; samples: number[] }; notes: string[] }> {
  await bareBoots(ctx, 1, 'warmup');
  const boots = await bareBoots(ctx, 3, 'before');
  const done = await runs();
  boots.push(...(await bareBoots(ctx, 3, 'after')));
  const failed = done.filter((r) => r.exitCode !== 0);
  const notes = [`${ctx.suiteRuns} run(s) ${what}; bare boots: 3 before the runs and 3 after (median of the 6)`];
  if (failed.length) notes.push(`${failed.length} suite run(s) did not pass (exit codes ${failed.map((r) => r.exitCode).join(', ')}); wall times still reported`);
  return { bare: { label: 'one bare boot of the test guest (qemu-system-x86_64 spawn → guest-ping answered)', samples: boots }, notes };
}

function floorFigure(floor: SuiteRun[], bare: { label: string; samples: number[] }, notes: string[]): Figure {
  return figure({
    id: 'suite.floor', label: 'the @cold features alone (boots that are proofs) in bare boots', notes,
    targetText: 'floor under ≤ 60',
    vman: { label: FLOOR_LABEL, samples: floor.map((r) => r.ms) },
    baseline: bare,
    extra: { floor: floor.map(report) },
  });
}

export const suiteBench: BenchModule = {
  name: 'suite',
  description: 'whole acceptance suite wall time (npx cucumber-js --parallel 2, CI=true), warm and cold, and the @cold features alone (its floor), in bare boots of the test guest',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const warm: SuiteRun[] = [];
    const cold: SuiteRun[] = [];
    const floor: SuiteRun[] = [];
    const { bare, notes } = await sitting(ctx, 'each, warm, cold and the @cold features in turn', async () => {
      for (let i = 0; i < ctx.suiteRuns; i++) {
        warm.push(await namedRun(ctx, 'warm', i, ['--parallel', '2']));
        cold.push(await namedRun(ctx, 'cold', i, ['--parallel', '2'], { VMAN_SUITE_COLD: '1' }));
        floor.push(await namedRun(ctx, 'floor', i, FLOOR_ARGS));
      }
      return [...warm, ...cold, ...floor];
    });
    return [
      figure({
        id: 'suite.boots', label: 'whole suite (--parallel 2, warm) in bare boots', notes, target: 60,
        vman: { label: 'CI=true npx cucumber-js --parallel 2', samples: warm.map((r) => r.ms) },
        baseline: bare,
        extra: { warm: warm.map(report) },
      }),
      figure({
        id: 'suite.cold-boots', label: 'whole suite (--parallel 2, VMAN_SUITE_COLD=1) in bare boots', notes,
        vman: { label: 'VMAN_SUITE_COLD=1 CI=true npx cucumber-js --parallel 2', samples: cold.map((r) => r.ms) },
        baseline: bare,
        extra: { cold: cold.map(report) },
      }),
      floorFigure(floor, bare, notes),
      figure({
        id: 'suite.warm-vs-cold', label: 'whole suite: warm vs cold (VMAN_SUITE_COLD=1)', notes,
        vman: { label: 'warm', samples: warm.map((r) => r.ms) },
        baseline: { label: 'cold', samples: cold.map((r) => r.ms) },
      }),
    ];
  },
};

export const suiteFloorBench: BenchModule = {
  name: 'suite-floor',
  description: 'the @cold features alone (npx cucumber-js --parallel 2 --tags @cold, CI=true), the floor under the whole suite, in bare boots of the test guest',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const floor: SuiteRun[] = [];
    const { bare, notes } = await sitting(ctx, 'of the @cold features', async () => {
      for (let i = 0; i < ctx.suiteRuns; i++) floor.push(await namedRun(ctx, 'floor', i, FLOOR_ARGS));
      return floor;
    });
    return [floorFigure(floor, bare, notes)];
  },
};
