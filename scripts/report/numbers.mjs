// The numbers page: boot, hot-plug and stop times per scenario from one run's
// Cucumber messages (the timings.json attachments support/hooks.ts makes),
// and the same figures across runs from reports/history/numbers.jsonl, to
// which each run adds one line. Static HTML with inline SVG: opens offline.
//
//   node scripts/report/numbers.mjs --messages reports/cucumber.ndjson [--bench reports/bench.json]
//        --history reports/history/numbers.jsonl --out reports/site/numbers.html
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { barChart, COLORS, esc, fmtMs, htmlPage, lineChart } from './svg-chart.mjs';
import { isCommand } from './is-command.mjs';

export const TIMINGS_MEDIA_TYPE = 'application/vnd.vman.timings+json';
export const KINDS = ['boot', 'resume', 'hotplug', 'unplug', 'stop', 'restart'];
/** The kinds whose per-scenario medians and trends the history keeps. */
export const TREND_KINDS = ['boot', 'hotplug', 'stop'];
export const HISTORY_LIMIT = 200;

const KIND_TITLES = {
  boot: 'Boot: start → guest ready',
  resume: "Warm start: a clone's first start → guest ready",
  hotplug: 'Hot-plug: attach a disk to a running VM',
  unplug: 'Unplug: detach a disk from a running VM',
  stop: 'Stop: stop request → stopped',
  restart: 'Restart',
};

// Worst first: a scenario's status is the worst of its steps'.
const STATUS_ORDER = ['FAILED', 'AMBIGUOUS', 'UNDEFINED', 'PENDING', 'UNKNOWN', 'SKIPPED', 'PASSED'];

export function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile, as bench/lib/stats.ts computes it. */
export function percentile(xs, p) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1];
}

export function summarize(xs) {
  return { count: xs.length, median: median(xs), p90: percentile(xs, 90), max: xs.length ? Math.max(...xs) : null };
}

const toMs = (ts) => (ts ? Number(ts.seconds) * 1000 + Math.round(Number(ts.nanos ?? 0) / 1e6) : null);

/** Only successful answers (2xx) are measurements; null status: measured by the suite without vman. */
export const isMeasurement = (e) => e.status === null || e.status === undefined || (e.status >= 200 && e.status < 300);

export function readMessages(file) {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (err) {
      throw new Error(`${file}:${i + 1} is not a Cucumber message: ${err.message}`);
    }
  });
}

function attachmentText(a) {
  return a.contentEncoding === 'BASE64' ? Buffer.from(a.body, 'base64').toString('utf8') : a.body;
}

/**
 * One run from its (possibly merged) messages: every test case attempt with
 * its pickle's name, uri and tags, status, duration and timing entries.
 */
export function collectRun(envelopes) {
  const pickles = new Map();
  const testCases = new Map();
  const attempts = new Map();
  const runStarts = [];
  const runEnds = [];
  let lastSeen = null; // the end when testRunFinished is missing (a failing AfterAll ends the run without it)
  for (const m of envelopes) {
    if (m.pickle) pickles.set(m.pickle.id, m.pickle);
    else if (m.testCase) testCases.set(m.testCase.id, m.testCase);
    else if (m.testRunStarted) runStarts.push(toMs(m.testRunStarted.timestamp));
    else if (m.testRunFinished) runEnds.push(toMs(m.testRunFinished.timestamp));
    else if (m.testCaseFinished || m.testRunHookFinished) lastSeen = Math.max(lastSeen ?? 0, toMs((m.testCaseFinished ?? m.testRunHookFinished).timestamp));
    else if (m.testCaseStarted) {
      const s = m.testCaseStarted;
      attempts.set(s.id, { id: s.id, testCaseId: s.testCaseId, attempt: s.attempt ?? 0, startedAt: toMs(s.timestamp), finishedAt: null, final: true, statuses: [], entries: [] });
    }
  }
  for (const m of envelopes) {
    const a = attempts.get(m.testCaseFinished?.testCaseStartedId ?? m.testStepFinished?.testCaseStartedId ?? m.attachment?.testCaseStartedId);
    if (!a) continue;
    if (m.testCaseFinished) {
      a.finishedAt = toMs(m.testCaseFinished.timestamp);
      a.final = !m.testCaseFinished.willBeRetried;
    } else if (m.testStepFinished) a.statuses.push(m.testStepFinished.testStepResult?.status ?? 'UNKNOWN');
    else if (m.attachment.mediaType === TIMINGS_MEDIA_TYPE) {
      try {
        a.entries.push(...(JSON.parse(attachmentText(m.attachment)).entries ?? []));
      } catch {
        // A broken attachment costs its own numbers, not the page.
      }
    }
  }
  const cases = [...attempts.values()].map((a) => {
    const pickle = pickles.get(testCases.get(a.testCaseId)?.pickleId) ?? {};
    const status = STATUS_ORDER.find((s) => a.statuses.includes(s)) ?? 'UNKNOWN';
    return {
      id: a.id,
      pickleId: pickle.id ?? a.testCaseId,
      name: pickle.name ?? '(unknown scenario)',
      uri: pickle.uri ?? '',
      tags: (pickle.tags ?? []).map((t) => t.name),
      attempt: a.attempt,
      final: a.final,
      status,
      startedAt: a.startedAt,
      durationMs: a.startedAt !== null && a.finishedAt !== null ? a.finishedAt - a.startedAt : null,
      entries: a.entries,
    };
  });
  const caseStarts = cases.map((c) => c.startedAt).filter((t) => t !== null);
  const startedAt = runStarts.length ? Math.min(...runStarts) : caseStarts.length ? Math.min(...caseStarts) : null;
  const endedAt = runEnds.length ? Math.max(...runEnds) : lastSeen;
  const finals = cases.filter((c) => c.final);
  return {
    startedAt,
    wallMs: startedAt !== null && endedAt !== null ? endedAt - startedAt : null,
    cases,
    passed: finals.filter((c) => c.status === 'PASSED').length,
    failed: finals.filter((c) => ['FAILED', 'AMBIGUOUS', 'UNDEFINED', 'PENDING'].includes(c.status)).length,
    other: finals.filter((c) => !['PASSED', 'FAILED', 'AMBIGUOUS', 'UNDEFINED', 'PENDING'].includes(c.status)).length,
  };
}

/**
 * Per scenario (a pickle: its attempts together) and kind, the measured times.
 * Labels are the scenario names, numbered when two scenarios share a name.
 */
export function scenarioTimes(run) {
  const byPickle = new Map();
  for (const c of run.cases) {
    let s = byPickle.get(c.pickleId);
    if (!s) byPickle.set(c.pickleId, (s = { key: `${c.uri}: ${c.name}`, name: c.name, uri: c.uri, tags: c.tags, status: c.status, durationMs: 0, attempts: 0, times: {}, refused: 0 }));
    s.attempts += 1;
    if (c.final) s.status = c.status;
    s.durationMs += c.durationMs ?? 0;
    for (const e of c.entries) {
      if (!isMeasurement(e)) s.refused += 1;
      else (s.times[e.kind] ??= []).push({ ms: e.ms, what: e.what });
    }
  }
  const list = [...byPickle.values()];
  const seen = new Map();
  for (const s of list) {
    const n = (seen.get(s.key) ?? 0) + 1;
    seen.set(s.key, n);
    s.label = n > 1 ? `${s.name} (${n})` : s.name;
  }
  return list;
}

/** The history line of a run. */
export function historyRecord(run, { commit = null, now = new Date() } = {}) {
  const scenarios = scenarioTimes(run);
  const kinds = {};
  for (const kind of KINDS) {
    const xs = scenarios.flatMap((s) => (s.times[kind] ?? []).map((t) => t.ms));
    if (xs.length) kinds[kind] = summarize(xs);
  }
  const perScenario = {};
  for (const s of scenarios) {
    const medians = {};
    for (const kind of TREND_KINDS) if (s.times[kind]) medians[kind] = median(s.times[kind].map((t) => t.ms));
    if (Object.keys(medians).length) perScenario[s.key] = medians;
  }
  return {
    runAt: new Date(run.startedAt ?? now.getTime()).toISOString(),
    commit,
    kinds,
    scenarios: perScenario,
    wallMs: run.wallMs,
    passed: run.passed,
    failed: run.failed,
    other: run.other,
  };
}

export function readHistory(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').flatMap((line) => {
    if (!line.trim()) return [];
    try {
      return [JSON.parse(line)];
    } catch {
      return []; // a torn line (an interrupted write elsewhere) is dropped, not fatal
    }
  });
}

/** The history with this run's line: replaces the last line when it is the same run (built again), trimmed to the newest `limit`. */
export function withRun(history, record, limit = HISTORY_LIMIT) {
  const next = history.length && history.at(-1).runAt === record.runAt ? [...history.slice(0, -1), record] : [...history, record];
  return next.slice(-limit);
}

export function writeHistory(file, history) {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, history.map((r) => JSON.stringify(r)).join('\n') + (history.length ? '\n' : ''));
  renameSync(tmp, file);
}

export async function currentCommit() {
  if (process.env.GITHUB_SHA) return process.env.GITHUB_SHA;
  const r = await execa('git', ['rev-parse', 'HEAD'], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

const shortDate = (iso) => {
  const d = new Date(iso);
  return `${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')} ${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
};

function scenarioChart(kind, scenarios) {
  const rows = scenarios
    .filter((s) => s.times[kind]?.length)
    .map((s) => {
      const ms = s.times[kind].map((t) => t.ms);
      const value = median(ms);
      const detail = s.times[kind].map((t) => `  ${t.what}: ${fmtMs(t.ms)}`).join('\n');
      // The smoke feature's guest, booted by the suite's own QEMU: set apart from vman's boots.
      const bare = s.times[kind].every((t) => / without vman$/.test(t.what));
      return {
        label: bare ? `${s.label} (no vman)` : s.label,
        color: bare ? COLORS[4] : undefined,
        value,
        samples: ms.length > 1 ? ms : undefined,
        tooltip: `${s.name}\n${s.uri} · ${s.status.toLowerCase()}\n${ms.length > 1 ? `median of ${ms.length}: ${fmtMs(value)}\n` : ''}${detail}`,
      };
    })
    .sort((a, b) => b.value - a.value);
  const all = scenarios.flatMap((s) => (s.times[kind] ?? []).map((t) => t.ms));
  return barChart({ title: KIND_TITLES[kind], rows, marker: all.length ? { value: median(all), label: 'median of all' } : undefined });
}

function trendChart(kind, history, labels) {
  const point = (r, i, stat) => ({ x: i, y: r.kinds?.[kind]?.[stat] ?? null, tooltip: `${labels[i]}${r.commit ? ` (${r.commit.slice(0, 7)})` : ''}: ${stat} ${fmtMs(r.kinds?.[kind]?.[stat])} of ${r.kinds?.[kind]?.count ?? 0}` });
  return lineChart({
    title: `${KIND_TITLES[kind]} across runs`,
    xLabels: labels,
    series: [
      { name: 'median', color: COLORS[0], points: history.map((r, i) => point(r, i, 'median')) },
      { name: 'p90', color: COLORS[1], dashed: true, points: history.map((r, i) => point(r, i, 'p90')) },
    ],
  });
}

function change(now, before) {
  if (typeof now !== 'number' || typeof before !== 'number' || before === 0) return '<td class="note">—</td>';
  const pct = ((now - before) / before) * 100;
  const cls = Math.abs(pct) < 5 ? '' : pct > 0 ? 'bad' : 'good';
  return `<td class="${cls}">${pct > 0 ? '+' : ''}${pct.toFixed(0)} %</td>`;
}

/** The page, from this run's scenarios and the history (this run last). */
export function renderNumbersPage({ run, history, bench = null }) {
  const scenarios = scenarioTimes(run);
  const current = history.at(-1) ?? historyRecord(run);
  const previous = history.length > 1 ? history.at(-2) : undefined;
  const labels = history.map((r) => shortDate(r.runAt));
  const kindsHere = KINDS.filter((k) => current.kinds[k]);
  const refused = scenarios.reduce((n, s) => n + s.refused, 0);

  const rows = kindsHere.map((k) => {
    const s = current.kinds[k];
    return `<tr><td>${esc(KIND_TITLES[k])}</td><td>${s.count}</td><td>${fmtMs(s.median)}</td><td>${fmtMs(s.p90)}</td><td>${fmtMs(s.max)}</td>`
      + `<td>${previous?.kinds?.[k] ? fmtMs(previous.kinds[k].median) : '—'}</td>${change(s.median, previous?.kinds?.[k]?.median)}</tr>`;
  });
  rows.push(`<tr><td>Suite wall time</td><td>1</td><td>${fmtMs(current.wallMs)}</td><td></td><td></td><td>${previous ? fmtMs(previous.wallMs) : '—'}</td>${change(current.wallMs, previous?.wallMs)}</tr>`);

  const durations = scenarios.filter((s) => s.durationMs > 0).sort((a, b) => b.durationMs - a.durationMs);
  const slowest = durations.slice(0, 25).map((s) => ({
    label: s.label, value: s.durationMs, color: s.status === 'PASSED' ? COLORS[2] : '#c0392b',
    tooltip: `${s.name}\n${s.uri} · ${s.status.toLowerCase()}${s.attempts > 1 ? ` after ${s.attempts} attempts` : ''}: ${fmtMs(s.durationMs)}`,
  }));

  const body = `
<header>
  <nav><a href="index.html">Report home</a><a href="bench.html">Benchmark${bench ? '' : ' (none in this run)'}</a></nav>
  <h1>Boot, hot-plug and stop times</h1>
  <p>Run of ${esc(new Date(current.runAt).toUTCString())}${current.commit ? `, commit <code>${esc(current.commit.slice(0, 12))}</code>` : ''}:
  ${run.passed} passed, ${run.failed} failed${run.other ? `, ${run.other} other` : ''}; suite wall time ${fmtMs(current.wallMs)}.
  ${history.length} run${history.length === 1 ? '' : 's'} in the history.</p>
</header>

<h2>This run in numbers</h2>
<section class="card">
<table>
<tr><th>What</th><th>Count</th><th>Median</th><th>p90</th><th>Max</th><th>Previous median</th><th>Change</th></tr>
${rows.join('\n')}
</table>
<p class="note">Measured by the suite: from vman's request to its answer (a start answers once the guest is ready). Only successful answers (2xx) count${refused ? `; ${refused} refused or failed request${refused === 1 ? '' : 's'} left out` : ''}. Boots marked “no vman” (grey) are the suite's own QEMU command line (smoke feature), for comparison.</p>
</section>

<h2>Per scenario, this run</h2>
<p class="note">One bar per scenario, slowest on top; a bar is the scenario's median when it measured more than once (each time a black tick). The dashed line is the median of all. Hover for the details.</p>
${kindsHere.map((k) => `<section class="card"><h3>${esc(KIND_TITLES[k])}</h3>${scenarioChart(k, scenarios)}</section>`).join('\n') || '<section class="card"><p class="note">No scenario in this run measured a boot, hot-plug or stop.</p></section>'}

<h2>Across runs</h2>
<p class="note">Each point is one run of the suite; hover for its date, commit and figure.${history.length === 1 ? ' This is the first run in the history: the lines start with the next one.' : ''}</p>
${TREND_KINDS.map((k) => `<section class="card"><h3>${esc(KIND_TITLES[k])}</h3>${trendChart(k, history, labels)}</section>`).join('\n')}
<section class="card"><h3>Suite wall time</h3>${lineChart({
    title: 'Suite wall time across runs',
    xLabels: labels,
    series: [{ name: 'wall time', color: COLORS[3], points: history.map((r, i) => ({ x: i, y: r.wallMs ?? null, tooltip: `${labels[i]}: ${fmtMs(r.wallMs)}, ${r.passed} passed, ${r.failed} failed` })) }],
  })}</section>

<h2>Scenario durations, this run</h2>
<section class="card"><h3>Slowest scenarios${durations.length > 25 ? ` (25 of ${durations.length})` : ''}</h3>
${barChart({ title: 'Scenario durations', rows: slowest, emptyText: 'no finished scenarios' })}
<p class="note">From the scenario's start to its end, hooks included; green passed, red did not.</p></section>
`;
  return htmlPage({ title: 'vman: boot, hot-plug and stop times', body });
}

/** Reads the messages, adds this run to the history and writes the page. */
export async function buildNumbers({ messagesFile, benchFile, historyFile, outFile, commit }) {
  const run = collectRun(readMessages(messagesFile));
  const record = historyRecord(run, { commit: commit === undefined ? await currentCommit() : commit });
  const history = withRun(readHistory(historyFile), record);
  writeHistory(historyFile, history);
  const bench = benchFile && existsSync(benchFile) ? JSON.parse(readFileSync(benchFile, 'utf8')) : null;
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, renderNumbersPage({ run, history, bench }));
  return { run, record, history };
}


if (isCommand(import.meta.url)) {
  const { values } = parseArgs({
    options: { messages: { type: 'string' }, bench: { type: 'string' }, history: { type: 'string' }, out: { type: 'string' } },
  });
  const usage = 'usage: node scripts/report/numbers.mjs --messages FILE.ndjson [--bench reports/bench.json] --history reports/history/numbers.jsonl --out reports/site/numbers.html';
  if (!values.messages || !values.history || !values.out) {
    console.error(usage);
    process.exit(2);
  }
  try {
    const { run, history } = await buildNumbers({ messagesFile: values.messages, benchFile: values.bench, historyFile: values.history, outFile: values.out });
    const measured = run.cases.reduce((n, c) => n + c.entries.length, 0);
    console.log(`wrote ${values.out}: ${run.cases.length} scenario attempts, ${measured} timings; ${history.length} runs in ${values.history}`);
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
