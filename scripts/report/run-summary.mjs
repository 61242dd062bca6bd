// What one (merged) Cucumber message stream says about a run: scenario totals
// by final status (the last attempt of each), the run's span and its shards.
// The site's front page and the history lines are built from this.
import { readFileSync } from 'node:fs';
import { worseStatus } from './statuses.mjs';

/** @param {string} file merged cucumber.ndjson */
export function summarizeRun(file) {
  const worst = new Map();
  const caseOfStarted = new Map();
  const workerOfStarted = new Map();
  const pickleOfCase = new Map();
  const pickles = new Map();
  const totals = { PASSED: 0, FAILED: 0, SKIPPED: 0, UNDEFINED: 0, PENDING: 0, AMBIGUOUS: 0, UNKNOWN: 0 };
  const failed = [];
  const shards = new Map();
  let started;
  let finished;
  let success;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    if (m.pickle) pickles.set(m.pickle.id, m.pickle);
    else if (m.testCase) pickleOfCase.set(m.testCase.id, m.testCase.pickleId);
    else if (m.testCaseStarted) {
      caseOfStarted.set(m.testCaseStarted.id, m.testCaseStarted.testCaseId);
      workerOfStarted.set(m.testCaseStarted.id, m.testCaseStarted.workerId ?? '');
    } else if (m.testStepFinished) {
      const id = m.testStepFinished.testCaseStartedId;
      const s = m.testStepFinished.testStepResult.status;
      worst.set(id, worseStatus(worst.get(id) ?? 'UNKNOWN', s));
    } else if (m.testCaseFinished && !m.testCaseFinished.willBeRetried) {
      const id = m.testCaseFinished.testCaseStartedId;
      const s = worst.get(id) ?? 'UNKNOWN';
      totals[s] = (totals[s] ?? 0) + 1;
      // Merged worker ids read "<shard>/<worker>"; a single run has no shard.
      const shard = (workerOfStarted.get(id) ?? '').split('/').slice(0, -1).join('/') || 'local';
      const t = shards.get(shard) ?? { passed: 0, failed: 0, other: 0 };
      if (s === 'PASSED') t.passed++; else if (s === 'FAILED' || s === 'UNDEFINED' || s === 'AMBIGUOUS') t.failed++; else t.other++;
      shards.set(shard, t);
      if (s !== 'PASSED' && s !== 'SKIPPED') {
        const p = pickles.get(pickleOfCase.get(caseOfStarted.get(id)));
        failed.push({ name: p?.name ?? id, uri: p?.uri ?? '', status: s });
      }
    } else if (m.testRunStarted) started = toMs(m.testRunStarted.timestamp);
    else if (m.testRunFinished) {
      finished = toMs(m.testRunFinished.timestamp);
      success = m.testRunFinished.success;
    }
  }
  return { totals, failed, shards: Object.fromEntries(shards), startedAt: started, finishedAt: finished, success };
}

function toMs(t) {
  return t ? t.seconds * 1000 + Math.round(t.nanos / 1e6) : undefined;
}
