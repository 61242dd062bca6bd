// cucumber-js configuration. tsx is registered first so the TypeScript step
// definitions load without a build; `tsc --noEmit` in `npm test` checks types.
const reports = ['html:reports/cucumber.html', 'junit:reports/junit.xml', 'message:reports/cucumber.ndjson'];

const common = {
  import: ['support/register-tsx.mjs', 'support/**/*.ts', 'world/**/*.ts', 'step-definitions/**/*.ts'],
  paths: ['features/**/*.feature'],
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
