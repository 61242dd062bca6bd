// cucumber-js configuration. tsx is registered first so the TypeScript step
// definitions load without a build; `tsc --noEmit` in `npm test` checks types.
// @rerun.txt lists the failed scenarios (npm run test:rerun runs just those);
// usage.txt ranks the step definitions by time and names the unused ones.
// Allure results go to reports/allure-results/ (allure-cucumberjs, through
// support/allure-reporter.mjs; scripts/report/allure.mjs renders them). That
// formatter writes its own files and nothing to its stream, which goes to
// /dev/null: a formatter without a file would take stdout from pretty/progress.
import { allureFormatOptions } from './support/allure-labels.mjs';

const reports = [
  'html:reports/cucumber.html', 'junit:reports/junit.xml', 'message:reports/cucumber.ndjson',
  'rerun:reports/@rerun.txt', 'usage:reports/usage.txt', './support/allure-reporter.mjs:/dev/null',
];

// No 'paths' here: cucumber's default (features/) applies, and paths given on
// the command line replace it instead of being added to it.
// @nemesis-long (a dozen rounds of vman killed under a random workload) runs
// only when asked for: CI on the main branch, or --profile nemesis. Tags given
// on the command line are added to this with "and".
const common = {
  import: ['support/register-tsx.mjs', 'support/**/*.ts', 'world/**/*.ts', 'step-definitions/**/*.ts'],
  formatOptions: { snippetInterface: 'async-await', junit: { suiteName: 'vman acceptance' }, ...allureFormatOptions() },
};

// On a terminal every step as it runs; in CI (CI=true) compact progress with
// failures in full at the end.
export default {
  ...common,
  tags: 'not @nemesis-long',
  format: [process.env.CI ? 'progress' : 'pretty', ...reports],
};

export const ci = {
  ...common,
  tags: 'not @nemesis-long',
  format: ['progress', ...reports],
  strict: true,
};

export const nemesis = {
  ...common,
  tags: '@nemesis-long',
  format: ['progress', ...reports],
};

// scripts/coverage.sh: every scenario of the default run. Its messages go to
// reports/coverage/ (the report files of the npm test it follows in .ci/run
// stay); .ci/run runs it cold (VMAN_SUITE_COLD=1) and counts it beside the warm run.
export const coverage = {
  ...common,
  tags: 'not @nemesis-long',
  format: ['summary', 'message:reports/coverage-run/cucumber.ndjson', 'rerun:reports/coverage-run/@rerun.txt'],
};
