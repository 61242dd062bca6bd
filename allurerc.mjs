// Allure Report 3 over the acceptance suite's results (reports/allure-results,
// written by allure-cucumberjs; see support/allure-labels.mjs). Built by
// `node scripts/report/allure.mjs`, which names the results folders (this run's
// and the CI shards') and may move the history file (VMAN_ALLURE_HISTORY).
// No `import { defineConfig } from 'allure'`: that module runs the allure CLI
// on import, with the importing process's arguments (harmless only inside the
// CLI itself). The config is a plain object; the type is for editors.

// Failures grouped by cause. A result goes to the first category that matches.
// "failed" is a check that did not hold (a chai assertion), "broken" any other
// error; messages come without their stack (support/allure-labels.mjs).
const FAILING = ['failed', 'broken'];

// The suite's own words when the host cannot run a scenario (support/host.ts,
// support/hooks.ts, support/netns.ts, support/real-guest.ts), and the kernel's
// and QEMU's when a resource is missing.
const HOST_CANNOT = new RegExp([
  'QEMU is required \\(VMAN_REQUIRE_QEMU=1\\) but unusable',
  'cannot run \\(VMAN_REQUIRE_PRIVILEGED=1\\)',
  'is not on PATH; \\./setup\\.sh installs it',
  'guest is not built',
  'ip netns does not work here',
  'refuses bridge VLAN filtering',
  'ENOSPC', 'no space left on device',
  'EPERM', 'Operation not permitted',
  'Could not access KVM kernel module', 'failed to initialize kvm',
  'ENOMEM', 'Cannot allocate memory',
].join('|'), 'i');

// The suite's waits (support/poll.ts), its request deadlines and cucumber's
// step timeout: a slow host or a hung vman alike, so a group of their own.
const TIMED_OUT = /timed out after \d+ ms waiting for|no answer (from \S+ )?within \d+ ms|function timed out/i;

// An error in the suite's own code, or a step nobody wrote.
const SUITE_BUG = /^(TypeError|ReferenceError|SyntaxError|RangeError)\b|^undefined step: |Multiple step definitions match/;

export const categories = [
  { name: 'Environment: the host cannot run it', matchers: { statuses: FAILING, message: HOST_CANNOT }, groupBy: [{ label: 'host' }] },
  { name: 'Flaky: failed now but passed before, or passed on retry', matchers: { flaky: true, statuses: [...FAILING, 'passed'] } },
  { name: 'Timed out: a slow host or a hung vman', matchers: { statuses: FAILING, message: TIMED_OUT }, groupBy: [{ label: 'host' }] },
  { name: 'Test defect: the suite itself', matchers: { statuses: ['broken'], message: SUITE_BUG } },
  {
    name: 'Product defect: vman did not do what the scenario says',
    // A failed check, or a VM that ended in error while the suite waited (support/poll.ts).
    matchers: [{ statuses: ['failed'] }, { statuses: ['broken'], message: /^TerminalStateError\b/ }],
    groupBy: [{ label: 'feature' }],
  },
  { name: 'Broken: an error before any check (read the message)', matchers: { statuses: ['broken', 'unknown'] }, groupBy: [{ label: 'feature' }] },
  { name: 'Skipped: this host lacks what the scenario needs', matchers: { statuses: ['skipped'] }, groupBy: [{ label: 'host' }], groupByMessage: false },
];

// Trends need history: stability from the fifth run on. (No stability by tag:
// Allure reads only a result's first tag label.)
const CHARTS = [
  { type: 'currentStatus', title: 'Current status' },
  { type: 'statusDynamics', title: 'Status across runs', limit: 50 },
  { type: 'statusTransitions', title: 'New failures and fixes across runs', limit: 50 },
  { type: 'durationDynamics', title: 'Run duration across runs', limit: 50 },
  { type: 'durations', title: 'Scenario durations', groupBy: 'none' },
  { type: 'durations', title: 'Scenario durations by what they need (QEMU, Debian guest, nothing)', groupBy: 'layer' },
  { type: 'stabilityDistribution', title: 'Stability by feature', groupBy: 'feature', skipStatuses: ['skipped', 'unknown'], threshold: 90 },
  { type: 'testBaseGrowthDynamics', title: 'Scenarios across runs', limit: 50 },
  { type: 'statusAgePyramid', title: 'How long statuses have lasted', limit: 50 },
];

/** @type {import('allure').AllureConfig} */
export default {
  name: 'vman acceptance',
  output: 'reports/site/allure',
  historyPath: process.env.VMAN_ALLURE_HISTORY || 'reports/history/allure-history.jsonl',
  historyLimit: 20,
  // Noise for a reader: every result has them, and the same value.
  hideLabels: ['language', 'framework', 'package'],
  categories,
  plugins: {
    // One file each, the data inlined: a report opened from disk (a downloaded
    // CI artifact, file://) shows its results; split into data files, it is
    // only a spinner there, since a browser refuses fetch over file://.
    awesome: {
      options: {
        singleFile: true,
        reportName: 'vman acceptance',
        groupBy: ['feature'],
        charts: CHARTS,
        sections: ['charts', 'timeline'],
      },
    },
    dashboard: {
      options: { singleFile: true, reportName: 'vman acceptance: trends', layout: CHARTS },
    },
  },
};
