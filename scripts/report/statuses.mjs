// How a run's results are counted, in one place for the site (run summary, tag
// index) and .ci/summarize.mjs: a scenario's status is the worst of its steps'
// statuses; the unit tests' totals come from node:test's TAP summary lines.

/** Cucumber's step statuses, from best to worst. */
const STATUS_RANK = { UNKNOWN: 0, PASSED: 1, SKIPPED: 2, PENDING: 3, UNDEFINED: 4, AMBIGUOUS: 5, FAILED: 6 };

/** The worse of two statuses (an unknown name ranks as UNKNOWN). */
export function worseStatus(a, b) {
  return (STATUS_RANK[b] ?? 0) > (STATUS_RANK[a] ?? 0) ? b : a;
}

/** node:test's TAP summary: passed, failed (cancelled included) and skipped (todo included). */
export function tapTotals(tap) {
  const count = (key) => Number(new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
  return { passed: count('pass'), failed: count('fail') + count('cancelled'), skipped: count('skipped') + count('todo') };
}
