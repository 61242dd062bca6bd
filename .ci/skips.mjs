// Skipped scenarios against the allow-list in .ci/allowed-skips.json: a skip
// that is not on it is a failure, wherever the suite ran (.ci/run through
// summarize.mjs, each shard of the workflow through this file's command line).
//   node .ci/skips.mjs [reports/cucumber.ndjson]   exits 1 naming each skip not allowed
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { worseStatus } from '../scripts/report/statuses.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Names ("<feature file>: <scenario>") of the scenarios CI may skip, with the reason each may. */
export function allowedSkips() {
  return JSON.parse(readFileSync(path.join(here, 'allowed-skips.json'), 'utf8')).allowed;
}

/** The skipped scenario names (as "uri: name [reason]" strings) that the allow-list does not cover. */
export function skipsNotAllowed(skipped) {
  const allowed = allowedSkips();
  return skipped.filter((s) => !(s.name in allowed));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const file = process.argv[2] ?? 'reports/cucumber.ndjson';
  const pickles = new Map();
  const pickleOfCase = new Map();
  const caseOfStarted = new Map();
  const skipped = new Map();
  const worst = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    if (m.pickle) pickles.set(m.pickle.id, `${m.pickle.uri}: ${m.pickle.name}`);
    if (m.testCase) pickleOfCase.set(m.testCase.id, m.testCase.pickleId);
    if (m.testCaseStarted) caseOfStarted.set(m.testCaseStarted.id, m.testCaseStarted.testCaseId);
    if (m.testStepFinished) {
      const id = m.testStepFinished.testCaseStartedId;
      worst.set(id, worseStatus(worst.get(id) ?? 'UNKNOWN', m.testStepFinished.testStepResult.status));
    }
    if (m.testCaseFinished && !m.testCaseFinished.willBeRetried && worst.get(m.testCaseFinished.testCaseStartedId) === 'SKIPPED') {
      const started = m.testCaseFinished.testCaseStartedId;
      skipped.set(started, { name: pickles.get(pickleOfCase.get(caseOfStarted.get(started))) ?? started });
    }
  }
  const bad = skipsNotAllowed([...skipped.values()]);
  for (const s of bad) console.log(`skipped but not on .ci/allowed-skips.json: ${s.name}`);
  console.log(`${skipped.size} scenario(s) skipped, ${bad.length} not allowed`);
  process.exit(bad.length > 0 ? 1 : 0);
}
