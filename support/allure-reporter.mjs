// allure-cucumberjs's formatter, with three changes for this suite (cucumber.js
// names this file as a formatter; it runs in the coordinating process):
// - A run starts by removing an earlier run's results (the files Allure
//   writes, nothing else), as the other formatters start their files afresh:
//   they would pass for this run's.
// - The suite attaches its evidence (serial consoles, QMP exchanges, timings,
//   vman's log, the guest's state on failure) in After hooks, and the host in
//   a Before hook. Allure would file them under the hook's fixture, away from
//   the scenario's Attachments tab; here they belong to the scenario.
// - A hook without a name is named by its place in the code, not "Unknown test".
// - The run's environment, attached once per worker (support/run-environment.ts),
//   goes into the report's environment panel, not into a scenario.
// It relies on two fields of allure-cucumberjs 3 (fixtureUuids, beforeHooks/afterHooks);
// test/allure-config.test.ts fails if they go.
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import AllureCucumberReporter from 'allure-cucumberjs/reporter';

/** support/run-environment.ts's media type (test/allure-config.test.ts checks that the two agree). */
export const RUN_ENVIRONMENT_TYPE = 'application/vnd.vman.run-environment+json';

/** "After (support/hooks.ts:66)" for an unnamed hook. */
export function hookName(kind, hook, cwd = process.cwd()) {
  if (hook.name) return hook.name;
  const where = hook.uri ? `${path.relative(cwd, path.resolve(cwd, hook.uri))}:${hook.line}` : 'unknown place';
  return `${kind} (${where})`;
}

// What allure-js writes into a results folder; only that is removed, whatever the folder is.
const ALLURE_FILE = /^[0-9a-f-]{36}-(result\.json|container\.json|globals\.json|attachment.*)$|^(environment\.properties|categories\.json)$/;

export function clearResults(dir) {
  let files;
  try {
    files = readdirSync(dir);
  } catch {
    return;
  }
  for (const f of files.filter((f) => ALLURE_FILE.test(f))) rmSync(path.join(dir, f), { force: true });
}

export default class VmanAllureReporter extends AllureCucumberReporter {
  constructor(options) {
    clearResults(path.resolve(options.cwd ?? '.', options.parsedArgvOptions.resultsDir ?? 'allure-results'));
    super(options);
    for (const [kind, hooks] of [['Before', this.beforeHooks], ['After', this.afterHooks]]) {
      for (const [id, hook] of Object.entries(hooks)) hooks[id] = { ...hook, name: hookName(kind, hook, options.cwd) };
    }
  }

  onAttachment(message) {
    if (message.mediaType === RUN_ENVIRONMENT_TYPE) {
      Object.assign((this.allureRuntime.environmentInfo ??= {}), JSON.parse(message.body));
      return undefined;
    }
    const started = message.testCaseStartedId;
    const fixture = started ? this.fixtureUuids.get(started) : undefined;
    if (!fixture) return super.onAttachment(message);
    this.fixtureUuids.delete(started);
    try {
      return super.onAttachment(message);
    } finally {
      this.fixtureUuids.set(started, fixture);
    }
  }
}
