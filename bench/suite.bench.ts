// Whole-suite wall time: `npx cucumber-js` with CI=true, serial and with
// --parallel 2, alternating when run more than once. The figure is the
// speed-up ratio parallel/serial (below 1 is faster). Takes minutes; skip it
// with --skip-suite.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { assertNotAborting, onCleanup } from './lib/cleanup.ts';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs } from './lib/stats.ts';

interface SuiteRun { ms: number; exitCode: number | null; summary: string; tail: string }

function runSuite(ctx: BenchContext, args: string[], logFile: string): Promise<SuiteRun> {
  assertNotAborting();
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    let tail = '';
    const t0 = performance.now();
    // Its own process group, so a stop reaches cucumber's workers and their hooks clean up.
    const child = spawn('npx', ['cucumber-js', ...args], {
      cwd: ctx.repo,
      env: { ...process.env, CI: 'true', FORCE_COLOR: '0' },
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
  return { ms: Math.round(r.ms), exitCode: r.exitCode, summary: r.summary, ...(r.exitCode === 0 ? {} : { outputTail: r.tail }) };
}

export const suiteBench: BenchModule = {
  name: 'suite',
  description: 'whole acceptance suite wall time (npx cucumber-js, CI=true): serial vs --parallel 2',
  needsQemu: true,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const serial: SuiteRun[] = [];
    const parallel: SuiteRun[] = [];
    for (let i = 0; i < ctx.suiteRuns; i++) {
      const s = await runSuite(ctx, [], path.join(ctx.root, `suite-serial-${i}.log`));
      serial.push(s);
      ctx.log(`  serial #${i}: ${fmtMs(s.ms)}, exit ${s.exitCode}: ${s.summary || 'no summary'}`);
      const p = await runSuite(ctx, ['--parallel', '2'], path.join(ctx.root, `suite-parallel-${i}.log`));
      parallel.push(p);
      ctx.log(`  --parallel 2 #${i}: ${fmtMs(p.ms)}, exit ${p.exitCode}: ${p.summary || 'no summary'}`);
    }
    const failed = [...serial, ...parallel].filter((r) => r.exitCode !== 0);
    const notes = [`${ctx.suiteRuns} run(s) each; ratio = parallel / serial (below 1: parallel is faster)`];
    if (failed.length) notes.push(`${failed.length} suite run(s) did not pass (exit codes ${failed.map((r) => r.exitCode).join(', ')}); wall times still reported`);
    return [
      figure({
        id: 'suite.wall', label: 'whole suite: --parallel 2 vs serial', notes,
        vman: { label: 'CI=true npx cucumber-js --parallel 2', samples: parallel.map((r) => r.ms) },
        baseline: { label: 'CI=true npx cucumber-js', samples: serial.map((r) => r.ms) },
        extra: {
          serial: serial.map(report),
          parallel: parallel.map(report),
        },
      }),
    ];
  },
};
