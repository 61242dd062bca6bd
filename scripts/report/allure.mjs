// Allure Report 3 for one whole run, with history kept between runs:
//   node scripts/report/allure.mjs [--results DIR ...] [--out DIR] [--history FILE]
// Without --results: reports/allure-results and reports/shards/*/allure-results,
// those that hold results. All of them make one report (allure generate takes
// several folders); the settings are in allurerc.mjs. The history file (JSON
// lines, the last 50 runs) is read for the trends and flakiness and then has
// this run appended: keep it between runs (CI restores it from the site).
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { isCommand } from './is-command.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A folder holds results when the formatter wrote at least one *-result.json into it. */
export function holdsResults(dir) {
  try {
    return readdirSync(dir).some((f) => f.endsWith('-result.json'));
  } catch {
    return false;
  }
}

/** This run's results and each downloaded shard's, those that exist. */
export function defaultResultDirs(reports = path.join(root, 'reports')) {
  const shards = path.join(reports, 'shards');
  const dirs = [path.join(reports, 'allure-results')];
  if (existsSync(shards)) {
    for (const name of readdirSync(shards).sort()) dirs.push(path.join(shards, name, 'allure-results'));
  }
  return dirs.filter(holdsResults);
}

function fail(message) {
  console.error(`allure: ${message}`);
  process.exit(2);
}

async function main() {
  const { values } = parseArgs({
    options: {
      results: { type: 'string', multiple: true },
      out: { type: 'string', default: path.join(root, 'reports', 'site', 'allure') },
      history: { type: 'string', default: path.join(root, 'reports', 'history', 'allure-history.jsonl') },
    },
  });
  const named = (values.results ?? []).map((d) => path.resolve(d));
  const empty = named.filter((d) => !holdsResults(d));
  if (empty.length > 0) fail(`no Allure results (*-result.json) in ${empty.join(', ')}`);
  const results = named.length > 0 ? named : defaultResultDirs();
  if (results.length === 0) {
    fail('no Allure results in reports/allure-results or reports/shards/*/allure-results: run the suite first (npm run test:acceptance)');
  }

  // A report is made beside its place and moved in when complete: allure
  // generate adds to a folder without clearing it, and a failed generation
  // must not leave half a report where the last good one was.
  const out = path.resolve(values.out);
  if (existsSync(out) && !existsSync(path.join(out, 'index.html'))) {
    fail(`${out} exists and is not an Allure report; remove it or name another --out`);
  }
  const building = `${out}.building-${process.pid}`;
  const history = path.resolve(values.history);
  console.log(`allure: ${results.length} results folder(s) -> ${out} (history ${history})`);
  try {
    await execa('npx', ['allure', 'generate', '--config', path.join(root, 'allurerc.mjs'), '--output', building, ...results], {
      cwd: root,
      env: { VMAN_ALLURE_HISTORY: history },
      stdio: 'inherit',
    });
  } catch (err) {
    rmSync(building, { recursive: true, force: true });
    fail(`allure generate failed: ${err.shortMessage ?? err.message}`);
  }
  if (!existsSync(path.join(building, 'index.html'))) fail(`allure generate made no ${path.join(building, 'index.html')}`);
  rmSync(out, { recursive: true, force: true });
  renameSync(building, out);
  console.log(`allure: ${path.join(out, 'index.html')} (awesome/: the report, dashboard/: trends)`);
}

if (isCommand(import.meta.url)) await main();
