// `npm run report`: builds the site for one whole run from reports/ — a local
// run's files, or the CI shards' reports downloaded to reports/shards/<name>/:
//   reports/site/index.html          how the run went, with links to
//   reports/site/living-doc/         the merged Cucumber living documentation and tag index
//   reports/site/allure/             Allure Report 3 (history, trends, timeline, categories)
//   reports/site/numbers.html        boot, hot-plug and stop times, this run and across runs
//   reports/site/bench.html          the benchmark table of `npm run bench`
//   reports/site/coverage/           coverage of src/ (scripts/coverage.sh), when it ran
// History kept between runs lives in reports/history/ (CI restores it from the
// published site first); the site carries a copy under history/.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { summarizeRun } from './run-summary.mjs';
import { frontPage } from './front-page.mjs';
import { tapTotals } from './statuses.mjs';

const reports = 'reports';
const site = path.join(reports, 'site');
const history = path.join(reports, 'history');

/** Each shard's reports folder, named; a local run is the shard "local". */
function shardFolders() {
  const found = [];
  const shardsDir = path.join(reports, 'shards');
  if (existsSync(shardsDir)) {
    for (const name of readdirSync(shardsDir).sort()) found.push({ name, dir: path.join(shardsDir, name) });
  }
  if (existsSync(path.join(reports, 'cucumber.ndjson'))) found.push({ name: 'local', dir: reports });
  return found;
}

function step(what, script, args) {
  console.log(`report: ${what}`);
  const run = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`${what} failed (${script} exited ${run.status ?? run.signal})`);
}

const shards = shardFolders();
const withMessages = shards.filter((s) => existsSync(path.join(s.dir, 'cucumber.ndjson')));
if (withMessages.length === 0) {
  console.error('report: no Cucumber messages in reports/cucumber.ndjson or reports/shards/*/cucumber.ndjson: run the suite first (npm test)');
  process.exit(2);
}
rmSync(site, { recursive: true, force: true });
mkdirSync(site, { recursive: true });
mkdirSync(history, { recursive: true });

try {
  const merged = path.join(site, 'living-doc', 'cucumber.ndjson');
  step('living documentation (merged)', 'scripts/report/living-doc.mjs',
    ['--out', path.join(site, 'living-doc'), ...withMessages.map((s) => `${s.name}=${path.join(s.dir, 'cucumber.ndjson')}`)]);
  const bench = shards.map((s) => path.join(s.dir, 'bench.json')).find((f) => existsSync(f));
  step('numbers', 'scripts/report/numbers.mjs',
    ['--messages', merged, ...(bench ? ['--bench', bench] : []), '--history', path.join(history, 'numbers.jsonl'), '--out', path.join(site, 'numbers.html')]);
  step('benchmarks', 'scripts/report/bench-page.mjs', [...(bench ? ['--bench', bench] : []), '--out', path.join(site, 'bench.html')]);
  const results = shards.map((s) => path.join(s.dir, 'allure-results')).filter((d) => existsSync(d));
  step('Allure report', 'scripts/report/allure.mjs',
    [...results.flatMap((d) => ['--results', d]), '--out', path.join(site, 'allure'), '--history', path.join(history, 'allure-history.jsonl')]);
  const summary = summarizeRun(merged);
  const unit = unitTotals(shards.map((s) => path.join(s.dir, 'unit.tap')).filter((f) => existsSync(f)));
  const extras = shards.flatMap((s) => ['junit.xml', 'usage.txt', '@rerun.txt', 'unit.tap']
    .filter((f) => existsSync(path.join(s.dir, f)))
    .map((f) => ({ shard: s.name, file: f, from: path.join(s.dir, f) })));
  for (const e of extras) {
    const to = path.join(site, 'files', e.shard, e.file);
    mkdirSync(path.dirname(to), { recursive: true });
    cpSync(e.from, to);
  }
  const coverage = copyCoverage();
  writeFileSync(path.join(site, 'index.html'), frontPage({
    summary, unit, coverage, commit: process.env.GITHUB_SHA ?? gitHead(), runUrl: runUrl(),
    files: extras.map((e) => ({ label: `${e.shard}: ${e.file}`, href: `files/${e.shard}/${e.file}` })),
  }));
  cpSync(history, path.join(site, 'history'), { recursive: true });
  console.log(`report: ${path.join(site, 'index.html')}`);
} catch (e) {
  console.error(`report: ${e.message}`);
  process.exit(1);
}

/**
 * The coverage HTML of scripts/coverage.sh (reports/coverage/, or CI's coverage
 * job downloaded as a shard), copied to coverage/; its totals for the front page.
 */
function copyCoverage() {
  const candidates = [path.join(reports, 'coverage'), ...shards.map((s) => s.dir)];
  const from = candidates.find((d) => existsSync(path.join(d, 'coverage-summary.json')) && existsSync(path.join(d, 'index.html')));
  if (!from) return undefined;
  console.log('report: coverage');
  cpSync(from, path.join(site, 'coverage'), { recursive: true });
  const total = JSON.parse(readFileSync(path.join(from, 'coverage-summary.json'), 'utf8')).total;
  const gate = JSON.parse(readFileSync('.c8rc.json', 'utf8'));
  return { lines: total.lines.pct, branches: total.branches.pct, gate: { lines: gate.lines, branches: gate.branches } };
}

/** The unit tests' totals from node:test's TAP summary lines, when a shard ran them. */
function unitTotals(files) {
  if (files.length === 0) return undefined;
  const totals = { passed: 0, failed: 0 };
  for (const f of files) {
    const t = tapTotals(readFileSync(f, 'utf8'));
    totals.passed += t.passed;
    totals.failed += t.failed;
  }
  return totals;
}

function gitHead() {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function runUrl() {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: id } = process.env;
  return server && repo && id ? `${server}/${repo}/actions/runs/${id}` : undefined;
}
