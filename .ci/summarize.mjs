// Prints the closing line CI reads: "N passed, N failed[, N skipped]", counting
// unit tests (TAP from node:test) and scenarios (Cucumber messages).
import { existsSync, readFileSync } from 'node:fs';
import { tapTotals, worseStatus } from '../scripts/report/statuses.mjs';
import { skipsNotAllowed } from './skips.mjs';

const totals = { passed: 0, failed: 0, skipped: 0 };

if (existsSync('reports/unit.tap')) {
  const unit = tapTotals(readFileSync('reports/unit.tap', 'utf8'));
  totals.passed += unit.passed;
  totals.failed += unit.failed;
  totals.skipped += unit.skipped;
  console.log(`unit tests: ${unit.passed} passed, ${unit.failed} failed, ${unit.skipped} skipped`);
} else {
  console.log('unit tests: no reports/unit.tap (did they run?)');
  totals.failed += 1;
}

/** The scenarios of one run of the suite, from its Cucumber messages: totals, and the names of those skipped and of all. */
function scenarioTotals(file) {
  const caseOfStarted = new Map();
  const pickleOfCase = new Map();
  const pickles = new Map();
  const reasons = new Map();
  const skippedNames = [];
  const worst = new Map();
  const names = new Set();
  const scenarios = { passed: 0, failed: 0, skipped: 0, runHookFailures: 0 };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    if (m.pickle) pickles.set(m.pickle.id, `${m.pickle.uri}: ${m.pickle.name}`);
    if (m.testCase) pickleOfCase.set(m.testCase.id, m.testCase.pickleId);
    if (m.testCaseStarted) caseOfStarted.set(m.testCaseStarted.id, m.testCaseStarted.testCaseId);
    if (m.attachment?.testCaseStartedId && /^Skipped: /.test(m.attachment.body ?? '')) reasons.set(m.attachment.testCaseStartedId, m.attachment.body.slice('Skipped: '.length));
    if (m.testStepFinished) {
      const id = m.testStepFinished.testCaseStartedId;
      const s = m.testStepFinished.testStepResult.status;
      worst.set(id, worseStatus(worst.get(id) ?? 'UNKNOWN', s));
    }
    if (m.testCaseFinished && !m.testCaseFinished.willBeRetried) {
      const started = m.testCaseFinished.testCaseStartedId;
      const name = pickles.get(pickleOfCase.get(caseOfStarted.get(started))) ?? started;
      names.add(name);
      const s = worst.get(started) ?? 'UNKNOWN';
      if (s === 'PASSED') scenarios.passed++;
      else if (s === 'SKIPPED') {
        scenarios.skipped++;
        skippedNames.push({ name, reason: reasons.get(started) ?? 'no reason given' });
      } else scenarios.failed++;
    }
    if (m.testRunHookFinished && m.testRunHookFinished.result?.status === 'FAILED') scenarios.runHookFailures++;
  }
  return { ...scenarios, skippedNames, names };
}

/** Counts one run's scenarios into the totals, printing them under `label`; a skip not on the allow-list is a failure. */
function countRun(label, run) {
  console.log(`${label}: ${run.passed} passed, ${run.failed} failed, ${run.skipped} skipped` +
    (run.runHookFailures ? ` (+${run.runHookFailures} failed BeforeAll/AfterAll hook, e.g. the leak guard)` : ''));
  // A skip is never silent: each one is named, with its reason; one that is
  // not on the allow-list (.ci/allowed-skips.json) fails the run.
  for (const s of run.skippedNames) console.log(`skipped: ${s.name} (${s.reason})`);
  const notAllowed = skipsNotAllowed(run.skippedNames);
  for (const s of notAllowed) console.log(`skipped but not on .ci/allowed-skips.json, so failed: ${s.name}`);
  totals.passed += run.passed;
  totals.failed += run.failed + run.runHookFailures + notAllowed.length;
  totals.skipped += run.skipped;
}

let warm;
if (existsSync('reports/cucumber.ndjson')) {
  warm = scenarioTotals('reports/cucumber.ndjson');
  countRun('scenarios', warm);
} else {
  console.log('scenarios: no reports/cucumber.ndjson (the acceptance suite did not run)');
}

// .ci/run runs the suite a second time for coverage, cold (VMAN_SUITE_COLD=1:
// every VM boots, none is a clone). Its scenarios count too, and they must be
// the same scenarios as the warm run's: a clone must not hide a difference.
const COLD = 'reports/coverage-run/cucumber.ndjson';
if (process.env.COLD_RUN === '1') {
  if (existsSync(COLD)) {
    const cold = scenarioTotals(COLD);
    countRun('scenarios run cold (VMAN_SUITE_COLD=1, the coverage run)', cold);
    const onlyWarm = warm ? [...warm.names].filter((n) => !cold.names.has(n)) : [];
    const onlyCold = warm ? [...cold.names].filter((n) => !warm.names.has(n)) : [];
    for (const n of onlyWarm) console.log(`run warm but not cold: ${n}`);
    for (const n of onlyCold) console.log(`run cold but not warm: ${n}`);
    totals.failed += onlyWarm.length + onlyCold.length;
  } else {
    console.log(`scenarios run cold: no ${COLD} (the cold coverage run did not run)`);
    totals.failed += 1;
  }
}

// The coverage gate of .ci/run (scripts/coverage-gate.mjs): under it is one failure.
if (process.env.COVERAGE_GATE && process.env.COVERAGE_GATE !== '0') {
  console.log('coverage: under the gate of .c8rc.json (reports/coverage.log)');
  totals.failed += 1;
}

// A runner that failed without a failing test to show for it (a suite that
// could not load, a hook that threw) still counts as a failure.
const status = Number(process.argv[2] ?? 0);
if (status !== 0 && totals.failed === 0) {
  console.log(`npm test or npm run report exited with ${status} although no test was counted as failed`);
  totals.failed = 1;
}
console.log(`${totals.passed} passed, ${totals.failed} failed` + (totals.skipped ? `, ${totals.skipped} skipped` : ''));
if (totals.failed > 0) process.exitCode = 1;
