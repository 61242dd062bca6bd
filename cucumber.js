// cucumber-js configuration. tsx is registered first so the TypeScript step
// definitions load without a build; `tsc --noEmit` in `npm test` checks types.
// @rerun.txt lists the failed scenarios (npm run test:rerun runs just those);
// usage.txt ranks the step definitions by time and names the unused ones.
const reports = [
  'html:reports/cucumber.html', 'junit:reports/junit.xml', 'message:reports/cucumber.ndjson',
  'rerun:reports/@rerun.txt', 'usage:reports/usage.txt',
];

// No 'paths' here: cucumber's default (features/) applies, and paths given on
// the command line replace it instead of being added to it.
const common = {
  import: ['support/register-tsx.mjs', 'support/**/*.ts', 'world/**/*.ts', 'step-definitions/**/*.ts'],
  formatOptions: { snippetInterface: 'async-await', junit: { suiteName: 'vman acceptance' } },
};

// On a terminal every step as it runs; in CI (CI=true) compact progress with
// failures in full at the end.
export default {
  ...common,
  format: [process.env.CI ? 'progress' : 'pretty', ...reports],
};

export const ci = {
  ...common,
  format: ['progress', ...reports],
  strict: true,
};
