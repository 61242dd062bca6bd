// The benchmark page: reports/bench.json (written by `npm run bench`,
// bench/run.ts) as a table, a chart of vman against its baseline per figure,
// and what it ran on. Without a bench.json, a page that says so.
//
//   node scripts/report/bench-page.mjs [--bench reports/bench.json] --out reports/site/bench.html
//   (without --bench, or when the file is missing: the "no benchmark" page)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { barChart, COLORS, esc, fmtMs, htmlPage } from './svg-chart.mjs';
import { isCommand } from './is-command.mjs';

const fmtRatio = (r) => (typeof r === 'number' && Number.isFinite(r) ? `${r.toFixed(r >= 100 ? 0 : 2)}×` : 'n/a');
const samplesText = (xs = []) => xs.map((x) => fmtMs(x)).join(', ');

function verdictCell(f) {
  if (f.verdict === 'ok') return `<td class="good">ok (${esc(f.targetText ?? `≤ ${f.target}`)})</td>`;
  if (f.verdict === 'over') return `<td class="bad">over (${esc(f.targetText ?? `≤ ${f.target}`)})</td>`;
  // A figure that only informs may still say what it stands beside (the floor under a target).
  return `<td class="note">${f.targetText ? esc(f.targetText) : '—'}</td>`;
}

function figureRow(f) {
  const stat = f.stat && f.stat !== 'median' ? ` (${esc(f.stat)})` : '';
  return `<tr><td>${esc(f.label)}${stat}<div class="note">${esc(f.id)}</div></td>`
    + `<td title="${esc(f.vman?.label ?? '')}">${fmtMs(f.vman?.value)}</td>`
    + `<td title="${esc(f.baseline?.label ?? '')}">${fmtMs(f.baseline?.value)}</td>`
    + `<td>${fmtRatio(f.ratio)}</td>${verdictCell(f)}`
    + `<td title="vman: ${esc(samplesText(f.vman?.samples))}&#10;baseline: ${esc(samplesText(f.baseline?.samples))}">${f.vman?.samples?.length ?? 0} / ${f.baseline?.samples?.length ?? 0}</td></tr>`;
}

// Figures differ by orders of magnitude (µs API calls, 20 s deadlines): each gets its own scale.
function figureChart(f) {
  const row = (who, s, color) => ({
    label: who, value: s?.value ?? 0, samples: s?.samples?.length > 1 ? s.samples : undefined, color,
    tooltip: `${who}: ${s?.label ?? ''}\n${f.stat ?? 'median'} ${fmtMs(s?.value)}; samples ${samplesText(s?.samples)}`,
  });
  return `<section class="card"><h3>${esc(f.label)} <span class="note">ratio ${fmtRatio(f.ratio)}</span></h3>
${barChart({ title: f.label, rows: [row('vman', f.vman, COLORS[0]), row('baseline', f.baseline, COLORS[4])], width: 960 })}
<p class="note"><b>vman</b>: ${esc(f.vman?.label ?? '')}<br><b>baseline</b>: ${esc(f.baseline?.label ?? '')}${(f.notes ?? []).map((n) => `<br>${esc(n)}`).join('')}</p></section>`;
}

const fmtS = (ms) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Where the suite's time went in each whole-suite run of the bench (the step
 * time by kind bench/suite.bench.ts keeps in a figure's extra): one column per
 * run, so the ratio and its breakdown are read from the same sitting.
 */
function breakdownSection(figures) {
  const runs = [];
  for (const f of figures) {
    for (const [name, list] of Object.entries(f.extra ?? {})) {
      if (!Array.isArray(list)) continue;
      list.forEach((r, i) => {
        if (Array.isArray(r?.breakdown?.rows)) runs.push({ name: list.length > 1 ? `${name} #${i}` : name, b: r.breakdown });
      });
    }
  }
  if (runs.length === 0) return '';
  const kinds = [...new Set(runs.flatMap((r) => r.b.rows.filter((x) => x.count > 0).map((x) => x.kind)))];
  const cell = (r, kind) => {
    const row = r.b.rows.find((x) => x.kind === kind);
    return `<td>${row && row.count > 0 ? fmtS(row.ms) : '—'}</td>`;
  };
  const line = (label, cells) => `<tr><td>${esc(label)}</td>${cells.join('')}</tr>`;
  return `<h2>Where the suite's time went</h2>
<section class="card"><table>
<tr><th>Step time by kind (both workers)</th>${runs.map((r) => `<th>${esc(r.name)}</th>`).join('')}</tr>
${line('wall time of the run', runs.map((r) => `<td>${fmtS(r.b.wallMs)}</td>`))}
${line('step time', runs.map((r) => `<td>${fmtS(r.b.stepMs)}</td>`))}
${kinds.map((k) => line(k, runs.map((r) => cell(r, k)))).join('\n')}
${line('VM starts through vman: cold boots / clones', runs.map((r) => `<td>${r.b.starts.boots} / ${r.b.starts.resumes}</td>`))}
</table>
<p class="note">From each run's Cucumber messages (scripts/time-breakdown.mjs); step time is summed over both workers, so it is about twice the wall time.</p></section>`;
}

function facts(pairs) {
  return `<dl class="facts">${pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

const nav = '<nav><a href="index.html">Report home</a><a href="numbers.html">Boot, hot-plug and stop times</a></nav>';

/** The page for a parsed bench.json, or the "no benchmark" page for null. */
export function renderBenchPage(bench) {
  if (!bench) {
    return htmlPage({
      title: 'vman: benchmark',
      body: `<header>${nav}<h1>Benchmark</h1></header>
<section class="card"><p><b>No benchmark in this run:</b> <code>npm run bench</code> writes <code>reports/bench.json</code>.</p>
<p class="note">The benchmark measures vman against a baseline measured in the same run (bare QEMU, direct QMP, ...) on the same machine; it is not part of <code>npm test</code>.</p></section>`,
    });
  }
  const figures = bench.figures ?? [];
  const m = bench.machine ?? {};
  const load = (xs) => (Array.isArray(xs) ? xs.map((x) => x.toFixed(2)).join(' ') : undefined);
  const body = `<header>${nav}
<h1>Benchmark: vman against its baselines</h1>
<p>Run of ${esc(new Date(bench.date).toUTCString())}, took ${fmtMs(bench.durationMs)}; ${figures.length} figure${figures.length === 1 ? '' : 's'}${bench.options?.modules ? ` from ${esc(bench.options.modules.join(', '))}` : ''}.
A ratio below 1 means vman was faster than the baseline.</p></header>
${(bench.errors ?? []).length ? `<section class="card"><h3 class="bad">Benchmarks that failed</h3><ul>${bench.errors.map((e) => `<li><b>${esc(e.module)}</b>: ${esc(String(e.error).split('\n')[0])}</li>`).join('')}</ul></section>` : ''}
<h2>Figures</h2>
<section class="card">${figures.length ? `<table>
<tr><th>Figure</th><th>vman</th><th>Baseline</th><th>Ratio</th><th>Target</th><th>Samples (vman / baseline)</th></tr>
${figures.map(figureRow).join('\n')}
</table>
<p class="note">Medians unless the figure says otherwise; hover a value for what was measured, the sample count for every sample.</p>` : '<p class="note">This bench.json has no figures.</p>'}</section>
<h2>vman and baseline per figure</h2>
<p class="note">Each figure on its own scale; black ticks are the single samples.</p>
${figures.map(figureChart).join('\n')}
${breakdownSection(figures)}
<h2>What it ran on</h2>
<section class="card">${facts([
    ['Machine', `${m.hostname ?? '?'}: ${m.cpu ?? '?'}, ${m.cpus ?? '?'} CPUs, ${m.memoryGb ?? '?'} GB`],
    ['System', m.platform],
    ['Node.js', m.node],
    ['Load average before / after', load(m.loadavgBefore) && `${load(m.loadavgBefore)} / ${load(m.loadavgAfter)}`],
    ['Other QEMU processes at start', m.otherQemuProcessesAtStart],
    ['QEMU', bench.qemu ? `${bench.qemu.version} (${bench.qemu.path}; qemu-img ${bench.qemu.qemuImg})` : 'not used'],
    ['Accelerator', bench.accelerator ? `${bench.accelerator.accel}: ${bench.accelerator.reason}` : undefined],
    ['Guest image', bench.guest],
    ['Options', bench.options ? `runs ${bench.options.runs}, suite runs ${bench.options.suiteRuns}${bench.options.only?.length ? `, only ${bench.options.only.join(', ')}` : ''}${bench.options.skipSuite ? ', suite skipped' : ''}` : undefined],
    ['Time per module', bench.moduleTimesMs ? Object.entries(bench.moduleTimesMs).map(([k, v]) => `${k} ${fmtMs(v)}`).join(', ') : undefined],
  ])}</section>`;
  return htmlPage({ title: 'vman: benchmark', body });
}

/** Writes the page from benchFile (absent: the "no benchmark" page). */
export function buildBenchPage({ benchFile, outFile }) {
  const bench = benchFile && existsSync(benchFile) ? JSON.parse(readFileSync(benchFile, 'utf8')) : null;
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, renderBenchPage(bench));
  return { bench };
}


if (isCommand(import.meta.url)) {
  // No --bench: no benchmark in this run (the orchestrator passes one only when a shard has it).
  const { values } = parseArgs({ options: { bench: { type: 'string' }, out: { type: 'string' } } });
  if (!values.out) {
    console.error('usage: node scripts/report/bench-page.mjs [--bench reports/bench.json] --out reports/site/bench.html');
    process.exit(2);
  }
  try {
    const { bench } = buildBenchPage({ benchFile: values.bench, outFile: values.out });
    console.log(`wrote ${values.out}${bench ? `: ${bench.figures?.length ?? 0} figures` : ' (no benchmark in this run)'}`);
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
