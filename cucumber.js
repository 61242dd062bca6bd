// cucumber-js configuration. tsx is registered first so the TypeScript step
// definitions load without a build; `tsc --noEmit` in `npm test` checks types.
const common = {
  import: ['support/register-tsx.mjs', 'support/**/*.ts', 'world/**/*.ts', 'step-definitions/**/*.ts'],
  paths: ['features/**/*.feature'],
  format: [
    'html:reports/cucumber.html',
    'junit:reports/junit.xml',
    'message:reports/cucumber.ndjson',
  ],
  formatOptions: { snippetInterface: 'async-await', junit: { suiteName: 'vman acceptance' } },
};

export default {
  ...common,
  format: ['pretty', ...common.format],
};

// CI: compact progress on the terminal (failures and a summary at the end).
export const ci = {
  ...common,
  format: ['progress', ...common.format],
  retry: 0,
  strict: true,
};
