// The numbers and benchmark pages (scripts/report/*.mjs) and the timings the
// suite attaches for them (support/timings-attachment.ts): what counts as a
// boot or a hot-plug, one history line per run, charts for 0, 1 and N points.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { classifyTiming, isMeasurement, TIMINGS_MEDIA_TYPE, timingEntries, type TimingEntry } from '../support/timings-attachment.ts';

// The scripts are plain ESM without type declarations: imported by URL, typed here by what the tests use.
interface Run { cases: Array<{ name: string; attempt: number; status: string; durationMs: number | null; entries: TimingEntry[] }>; wallMs: number | null; passed: number; failed: number }
interface HistoryLine { runAt: string; commit: string | null; kinds: Record<string, { count: number; median: number; p90: number; max: number }>; scenarios: Record<string, Record<string, number>>; wallMs: number | null; passed: number; failed: number }
interface NumbersModule {
  collectRun(envelopes: unknown[]): Run;
  historyRecord(run: Run, o?: { commit?: string | null }): HistoryLine;
  withRun(history: HistoryLine[], record: HistoryLine, limit?: number): HistoryLine[];
  readHistory(file: string): HistoryLine[];
  renderNumbersPage(o: { run: Run; history: HistoryLine[] }): string;
  buildNumbers(o: { messagesFile: string; historyFile: string; outFile: string; benchFile?: string; commit?: string | null }): Promise<{ history: HistoryLine[] }>;
}
interface ChartModule {
  barChart(o: { title: string; rows: Array<{ label: string; value: number; samples?: number[] }>; marker?: { value: number; label: string } }): string;
  lineChart(o: { title: string; xLabels: string[]; series: Array<{ name: string; points: Array<{ x: number; y: number | null }> }> }): string;
}
interface BenchModule { renderBenchPage(bench: unknown): string; buildBenchPage(o: { benchFile?: string; outFile: string }): { bench: unknown } }

const scripts = new URL('../scripts/report/', import.meta.url);
const numbers = (await import(new URL('numbers.mjs', scripts).href)) as NumbersModule;
const charts = (await import(new URL('svg-chart.mjs', scripts).href)) as ChartModule;
const benchPage = (await import(new URL('bench-page.mjs', scripts).href)) as BenchModule;

const ts = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

/** Messages of a run: per scenario [name, attempts], each attempt [status, entries, base64?]. */
function messages(runStart: number, scenarios: Array<[string, Array<[string, TimingEntry[], boolean?]>]>, finished = true): unknown[] {
  const out: unknown[] = [{ testRunStarted: { timestamp: ts(runStart) } }];
  let t = runStart;
  scenarios.forEach(([name, attempts], i) => {
    out.push({ pickle: { id: `p${i}`, uri: 'features/disks.feature', name, tags: [{ name: '@disks' }] } });
    out.push({ testCase: { id: `tc${i}`, pickleId: `p${i}` } });
    attempts.forEach(([status, entries, base64], attempt) => {
      const id = `s${i}-${attempt}`;
      out.push({ testCaseStarted: { id, testCaseId: `tc${i}`, attempt, timestamp: ts((t += 10)) } });
      out.push({ testStepFinished: { testCaseStartedId: id, testStepResult: { status: 'PASSED' } } });
      out.push({ testStepFinished: { testCaseStartedId: id, testStepResult: { status } } });
      const body = JSON.stringify({ entries });
      out.push({ attachment: { testCaseStartedId: id, mediaType: TIMINGS_MEDIA_TYPE, body: base64 ? Buffer.from(body).toString('base64') : body, contentEncoding: base64 ? 'BASE64' : 'IDENTITY' } });
      out.push({ attachment: { testCaseStartedId: id, mediaType: 'text/plain', body: 'not timings', contentEncoding: 'IDENTITY' } });
      out.push({ testCaseFinished: { testCaseStartedId: id, willBeRetried: attempt < attempts.length - 1, timestamp: ts((t += 1000)) } });
    });
  });
  if (finished) out.push({ testRunFinished: { timestamp: ts(t + 5) } });
  return out;
}

const e = (kind: TimingEntry['kind'], ms: number, status: number | null = 200, what = `${kind} thing`): TimingEntry => ({ kind, what, ms, status });

describe('timings of a scenario', () => {
  it('classifies what the tasks measure', () => {
    assert.equal(classifyTiming('start VM web-1'), 'boot');
    assert.equal(classifyTiming('start VM web-1 without waiting'), 'other');
    assert.equal(classifyTiming('resume VM web-1'), 'resume');
    assert.equal(classifyTiming('stop VM web-1'), 'stop');
    assert.equal(classifyTiming('restart VM web-1'), 'restart');
    assert.equal(classifyTiming('attach disk d1'), 'hotplug');
    assert.equal(classifyTiming('detach disk d1'), 'unplug');
    assert.equal(classifyTiming('create disk d1'), 'other');
    assert.equal(classifyTiming('delete disk d1'), 'other');
  });

  it('counts only successful answers and the suite\'s own boots as measurements', () => {
    assert.equal(isMeasurement({ status: 200 }), true);
    assert.equal(isMeasurement({ status: 204 }), true);
    assert.equal(isMeasurement({ status: 409 }), false);
    assert.equal(isMeasurement({ status: 500 }), false);
    assert.equal(isMeasurement({ status: null }), true);
  });

  it('does not call an attach or detach to a stopped VM a hot-plug', () => {
    const timings = [
      { what: 'start VM db', ms: 5000, status: 200 },
      { what: 'attach disk hot', ms: 400, status: 200 },
      { what: 'stop VM db', ms: 200, status: 200 },
      { what: 'detach disk hot', ms: 9, status: 200 },
      { what: 'attach disk cold', ms: 8, status: 200 },
      { what: 'start VM db', ms: 5100, status: 200 },
      { what: 'detach disk cold', ms: 300, status: 200 },
      { what: 'attach disk none', ms: 3, status: 409 },
    ];
    const diskAnswers = [
      { action: 'attach', disk: 'hot', body: { vm_id: 'vm-1', mount_point: '/dev/vdb' } },
      { action: 'detach', disk: 'hot', body: { vm_id: null, mount_point: null } },
      { action: 'attach', disk: 'cold', body: { vm_id: 'vm-1', mount_point: null } },
      { action: 'detach', disk: 'cold', body: { vm_id: null, mount_point: null } },
      { action: 'attach', disk: 'none', body: { title: 'conflict' } },
    ];
    const entries = timingEntries(timings, { diskAnswers, namesById: new Map([['vm-1', 'db']]), bareBoots: [{ name: 'smoke', bootMs: 900 }] });
    assert.deepEqual(entries.map((x) => x.kind), ['boot', 'hotplug', 'stop', 'other', 'other', 'boot', 'unplug', 'hotplug', 'boot']);
    assert.match(entries[3]!.what, /no unplug/);
    assert.match(entries[4]!.what, /no hot-plug/);
    assert.deepEqual(entries.at(-1), { kind: 'boot', what: 'boot guest smoke without vman', ms: 900, status: null });
  });
});

describe('numbers from the messages', () => {
  const msgs = messages(Date.UTC(2026, 11, 4, 10), [
    ['Attach a new disk', [['PASSED', [e('boot', 5000), e('hotplug', 400), e('hotplug', 9999, 500)]]]],
    ['Stop a running VM', [['PASSED', [e('boot', 6000), e('stop', 200)], true]]],
    ['Flaky one', [['FAILED', [e('boot', 7000)]], ['PASSED', [e('boot', 5500)]]]],
  ]);

  it('reads every attempt with its timings, identity or base64', () => {
    const run = numbers.collectRun(msgs);
    assert.equal(run.cases.length, 4);
    assert.deepEqual(run.cases.find((c) => c.name === 'Stop a running VM')!.entries.map((x) => x.kind), ['boot', 'stop']);
    assert.deepEqual(run.cases.filter((c) => c.name === 'Flaky one').map((c) => [c.attempt, c.status]), [[0, 'FAILED'], [1, 'PASSED']]);
    assert.equal(run.cases[0]!.durationMs, 1000);
    assert.deepEqual([run.passed, run.failed], [3, 0]);
    assert.ok(run.wallMs !== null && run.wallMs > 4000);
  });

  it('summarises per kind and per scenario, refusals left out', () => {
    const rec = numbers.historyRecord(numbers.collectRun(msgs), { commit: 'abc' });
    assert.equal(rec.runAt, '2026-12-04T10:00:00.000Z');
    assert.deepEqual(rec.kinds.boot, { count: 4, median: 5750, p90: 7000, max: 7000 });
    assert.deepEqual(rec.kinds.hotplug, { count: 1, median: 400, p90: 400, max: 400 });
    assert.deepEqual(rec.scenarios['features/disks.feature: Flaky one'], { boot: 6250 });
    assert.equal(rec.commit, 'abc');
  });

  it('takes the wall time from the last finished scenario when the run has no testRunFinished', () => {
    const run = numbers.collectRun(messages(0, [['A', [['PASSED', [e('boot', 1)]]]]], false));
    assert.equal(run.wallMs, 1010);
  });
});

describe('history', () => {
  const line = (runAt: string, median = 1): HistoryLine => ({ runAt, commit: null, kinds: { boot: { count: 1, median, p90: median, max: median } }, scenarios: {}, wallMs: 1, passed: 1, failed: 0 });

  it('appends a new run, replaces the same run built again, keeps the newest', () => {
    let h = numbers.withRun([], line('2026-01-01T00:00:00.000Z'));
    h = numbers.withRun(h, line('2026-01-02T00:00:00.000Z'));
    assert.equal(h.length, 2);
    h = numbers.withRun(h, line('2026-01-02T00:00:00.000Z', 7));
    assert.deepEqual(h.map((r) => [r.runAt.slice(0, 10), r.kinds.boot!.median]), [['2026-01-01', 1], ['2026-01-02', 7]]);
    for (let d = 3; d <= 9; d++) h = numbers.withRun(h, line(`2026-01-0${d}T00:00:00.000Z`), 5);
    assert.deepEqual(h.map((r) => r.runAt.slice(8, 10)), ['05', '06', '07', '08', '09']);
  });

  it('writes one line per run to the file, even when the page is built twice', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-numbers-test-'));
    try {
      const messagesFile = path.join(dir, 'run.ndjson');
      const historyFile = path.join(dir, 'history', 'numbers.jsonl');
      const outFile = path.join(dir, 'site', 'numbers.html');
      fs.writeFileSync(messagesFile, messages(Date.UTC(2026, 0, 1), [['One', [['PASSED', [e('boot', 5000)]]]]]).map((m) => JSON.stringify(m)).join('\n'));
      fs.mkdirSync(path.dirname(historyFile));
      fs.writeFileSync(historyFile, `${JSON.stringify(line('2025-12-31T00:00:00.000Z'))}\n{torn line\n`);
      await numbers.buildNumbers({ messagesFile, historyFile, outFile, commit: null });
      await numbers.buildNumbers({ messagesFile, historyFile, outFile, commit: null });
      assert.deepEqual(numbers.readHistory(historyFile).map((r) => r.runAt), ['2025-12-31T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
      assert.match(fs.readFileSync(outFile, 'utf8'), /One/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('charts and pages', () => {
  const svgOk = (svg: string) => {
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>$/);
    assert.doesNotMatch(svg, /NaN|undefined|Infinity/);
  };

  it('draws bars for no, one and many rows', () => {
    const none = charts.barChart({ title: 't', rows: [] });
    svgOk(none);
    assert.match(none, /no measurements/);
    const one = charts.barChart({ title: 't', rows: [{ label: 'A <b>', value: 0 }] });
    svgOk(one);
    assert.match(one, /A &lt;b&gt;/);
    const many = charts.barChart({ title: 't', rows: [{ label: 'slow', value: 900, samples: [800, 1000] }, { label: 'baseline', value: 10 }], marker: { value: 455, label: 'median' } });
    svgOk(many);
    assert.equal(many.match(/<title>/g)!.length, 3);
    assert.match(many, />baseline</, 'a short label is never cut');
    const long = charts.barChart({ title: 't', rows: [{ label: `A request naming a disk or VM that does not exist is answered with 404: ${'x'.repeat(80)} detach the disk`, value: 1 }] });
    assert.match(long, />A request naming .* … .*detach the disk</, 'a long label is cut in the middle, its end kept');
  });

  it('draws lines for no, one and many runs, breaking at a run without the number', () => {
    svgOk(charts.lineChart({ title: 't', xLabels: [], series: [{ name: 'median', points: [] }] }));
    const one = charts.lineChart({ title: 't', xLabels: ['01-01 10:00'], series: [{ name: 'median', points: [{ x: 0, y: 5000 }] }] });
    svgOk(one);
    assert.equal(one.match(/<circle/g)!.length, 1);
    assert.doesNotMatch(one, /<polyline/);
    const many = charts.lineChart({ title: 't', xLabels: ['a', 'b', 'c', 'd'], series: [{ name: 'median', points: [{ x: 0, y: 1 }, { x: 1, y: 2 }, { x: 2, y: null }, { x: 3, y: 3 }] }] });
    svgOk(many);
    assert.equal(many.match(/<circle/g)!.length, 3);
    assert.equal(many.match(/<polyline/g)!.length, 1);
  });

  it('names every scenario that measured something on the numbers page, with one run of history', () => {
    const run = numbers.collectRun(messages(Date.UTC(2026, 0, 1), [
      ['Attach a new disk', [['PASSED', [e('boot', 5000), e('hotplug', 400)]]]],
      ['Stop a running VM', [['PASSED', [e('boot', 6000), e('stop', 200)]]]],
      ['Refused only', [['PASSED', [e('hotplug', 3, 409)]]]],
    ]));
    const html = numbers.renderNumbersPage({ run, history: [numbers.historyRecord(run)] });
    for (const name of ['Attach a new disk', 'Stop a running VM', 'Refused only']) assert.ok(html.includes(name), name);
    assert.doesNotMatch(html, /NaN|undefined/);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('renders the benchmark, and says so when there is none', () => {
    const none = benchPage.renderBenchPage(null);
    assert.match(none, /no benchmark in this run/i);
    assert.match(none, /npm run bench<\/code> writes <code>reports\/bench.json/);
    const html = benchPage.renderBenchPage({
      date: '2026-12-04T12:28:03.654Z', durationMs: 1000, machine: { hostname: 'h', cpu: 'c', cpus: 2, memoryGb: 1 }, qemu: { version: '7.2', path: '/q', qemuImg: '/qi' },
      accelerator: { accel: 'tcg', reason: 'no kvm' }, guest: 'debian',
      figures: [{ id: 'boot.ready', label: 'Boot → ready', stat: 'median', unit: 'ms', vman: { label: 'v', value: 120, samples: [110, 120, 130] }, baseline: { label: 'b', value: 100, samples: [100] }, ratio: 1.2, target: 1.5, verdict: 'ok' }],
      errors: [],
    });
    for (const text of ['Boot → ready', '120 ms', '100 ms', '1.20×', '3 / 1', 'tcg: no kvm', '7.2']) assert.ok(html.includes(text), text);
    assert.doesNotMatch(html, /NaN|undefined/);
  });

  it('shows what a figure that only informs stands beside, such as the floor under a target', () => {
    const html = benchPage.renderBenchPage({
      date: '2026-12-07T16:35:43.000Z', durationMs: 1000, machine: { hostname: 'h', cpu: 'c', cpus: 2, memoryGb: 1 }, qemu: null, accelerator: null, guest: null,
      figures: [{
        id: 'suite.floor', label: 'the @cold features alone', stat: 'median', unit: 'ms', vman: { label: 'v', value: 177_900, samples: [177_900] },
        baseline: { label: 'b', value: 2670, samples: [2670] }, ratio: 66.63, targetText: 'floor under ≤ 60', verdict: 'info',
      }],
      errors: [],
    });
    assert.match(html, /<td class="note">floor under ≤ 60<\/td>/);
  });

  it('shows where each whole-suite run of the bench spent its time, one column per run', () => {
    const breakdown = (ms: number, boots: number, resumes: number) => ({
      wallMs: ms, stepMs: 2 * ms, scenarios: 3,
      rows: [{ kind: 'VM starts (boots and clones)', ms: ms / 2, count: 4 }, { kind: 'disks', ms: 1500, count: 2 }, { kind: 'other hooks', ms: 0, count: 0 }],
      starts: { boots, bootMs: 1000 * boots, resumes, resumeMs: 500 * resumes },
    });
    const fig = (id: string, extra: Record<string, unknown>) => ({
      id, label: id, stat: 'median', unit: 'ms', vman: { label: 'v', value: 1, samples: [1] }, baseline: { label: 'b', value: 1, samples: [1] }, ratio: 1, verdict: 'info', extra,
    });
    const html = benchPage.renderBenchPage({
      date: '2026-12-07T16:35:43.000Z', durationMs: 1000, machine: {}, qemu: null, accelerator: null, guest: null, errors: [],
      figures: [fig('suite.boots', { warm: [{ ms: 1, breakdown: breakdown(395_400, 72, 52) }] }), fig('suite.floor', { floor: [{ ms: 1, breakdown: breakdown(177_900, 44, 0) }] }), fig('api', {})],
    });
    assert.match(html, /Where the suite's time went/);
    assert.match(html, /<th>warm<\/th><th>floor<\/th>/);
    assert.match(html, /<tr><td>wall time of the run<\/td><td>395\.4 s<\/td><td>177\.9 s<\/td><\/tr>/);
    assert.match(html, /<tr><td>disks<\/td><td>1\.5 s<\/td><td>1\.5 s<\/td><\/tr>/);
    assert.match(html, /<td>72 \/ 52<\/td><td>44 \/ 0<\/td>/);
    // A kind no run had is left out.
    assert.doesNotMatch(html, /other hooks/);
    // Without a suite run there is no such section.
    assert.doesNotMatch(benchPage.renderBenchPage({ date: '2026-12-07T16:35:43.000Z', durationMs: 1, figures: [fig('api', {})], errors: [] }), /Where the suite's time went/);
  });
});
