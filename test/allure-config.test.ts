// The Allure set-up: the lanes of the timeline (a shard is a host, a cucumber
// worker a thread), what the listener rewrites in each result, the formatter's
// hook names, both cucumber profiles writing Allure results, and which
// category each kind of failure the suite produces lands in (with Allure's own
// matcher).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { extractErrorMatchingData, matchCategory, normalizeCategoriesConfig, type CategoryRule } from '@allurereport/core-api';

const ROOT = path.resolve(import.meta.dirname, '..');

type Label = { name: string; value: string };
type Result = {
  fullName?: string;
  status?: string;
  labels: Label[];
  parameters?: unknown[];
  steps?: Array<{ name: string; status?: string; statusDetails?: { message?: string } }>;
  statusDetails?: { message?: string; flaky?: boolean };
};
type Listener = { beforeTestResultStart(r: Result): void; beforeTestResultWrite(r: Result): void };
interface AllureLabels {
  laneLabels(thread: string | undefined, env: Record<string, string | undefined>): { host: string; thread: string };
  resultListener(env: Record<string, string | undefined>): Listener;
  withoutStack(message: string): string;
}
type CucumberProfile = { format: string[]; formatOptions: { resultsDir?: string; listeners?: unknown[] } };

// Plain .mjs modules without type declarations: imported by URL, typed here.
const load = (file: string): Promise<unknown> => import(pathToFileURL(path.join(ROOT, file)).href);
const labels = (await load('support/allure-labels.mjs')) as AllureLabels;
const cucumber = (await load('cucumber.js')) as { default: CucumberProfile; ci: CucumberProfile };
const allurerc = (await load('allurerc.mjs')) as { categories: CategoryRule[]; default: { historyPath: string; output: string } };

const label = (r: Result, name: string): string | undefined => r.labels.find((l) => l.name === name)?.value;
const scenario = (over: Partial<Result> = {}): Result => ({
  fullName: 'vman:features/smoke.feature#boots',
  labels: [{ name: 'host', value: 'somewhere' }, { name: 'thread', value: '1' }, { name: 'tag', value: '@integration' }],
  ...over,
});

describe('timeline lanes', () => {
  it('makes each CI shard a host and each cucumber worker a thread', () => {
    assert.deepEqual(labels.laneLabels('1', { VMAN_SHARD: 'disks' }), { host: 'disks', thread: 'worker 1' });
  });

  it('names this machine when no shard is set, and the single process "main" without --parallel', () => {
    assert.deepEqual(labels.laneLabels('pid-42-worker-main', {}), { host: os.hostname(), thread: 'main' });
  });
});

describe('the result listener', () => {
  const fresh = (): { listener: Listener } => ({ listener: labels.resultListener({ VMAN_SHARD: 'smoke' }) });

  it('replaces host and thread with the lane, once, and adds the layer from the tags', () => {
    const { listener } = fresh();
    const r = scenario();
    listener.beforeTestResultStart(r);
    assert.deepEqual(r.labels.filter((l) => ['host', 'thread', 'layer'].includes(l.name)), [
      { name: 'host', value: 'smoke' }, { name: 'thread', value: 'worker 1' }, { name: 'layer', value: 'QEMU' },
    ]);
    const light = scenario({ labels: [{ name: 'tag', value: '@validation' }] });
    listener.beforeTestResultStart(light);
    assert.equal(label(light, 'layer'), 'no QEMU');
    const debian = scenario({ labels: [{ name: 'tag', value: '@integration' }, { name: 'tag', value: '@real-guest' }] });
    listener.beforeTestResultStart(debian);
    assert.equal(label(debian, 'layer'), 'Debian guest');
  });

  it('marks a scenario that passed after a failed attempt of the same run flaky, and no other', () => {
    const { listener } = fresh();
    const first = scenario({ status: 'failed', statusDetails: { message: 'AssertionError: no' } });
    const retry = scenario({ status: 'passed' });
    const other = scenario({ fullName: 'vman:features/smoke.feature#other', status: 'passed' });
    for (const r of [first, retry, other]) listener.beforeTestResultWrite(r);
    assert.equal(retry.statusDetails?.flaky, true);
    assert.equal(first.statusDetails?.flaky, undefined);
    assert.equal(other.statusDetails?.flaky, undefined);
  });

  it('makes a scenario with an undefined step broken, naming the step (the formatter calls it passed)', () => {
    const { listener } = fresh();
    const undefinedStep = { name: 'When nobody wrote this', statusDetails: { message: "The step doesn't have an implementation." } };
    const r = scenario({ status: 'passed', steps: [{ name: 'Given a VM', status: 'passed' }, undefinedStep] });
    listener.beforeTestResultWrite(r);
    assert.equal(r.status, 'broken');
    assert.match(r.statusDetails?.message ?? '', /^undefined step: When nobody wrote this/);
  });

  it('leaves a scenario whose attachments are steps without a status passed', () => {
    const { listener } = fresh();
    const r = scenario({ status: 'passed', steps: [{ name: 'host.txt' }, { name: 'Given a VM', status: 'passed' }, { name: 'serial console of web' }] });
    listener.beforeTestResultWrite(r);
    assert.equal(r.status, 'passed');
  });

  it('drops the stack from messages (the trace keeps it), so equal failures group together', () => {
    const message = 'AssertionError: state of web: expected \'error\' to equal \'running\'\n    + expected - actual\n\n    at World.<anonymous> (file:///x.ts:1:1)\n    at next';
    assert.equal(labels.withoutStack(message), 'AssertionError: state of web: expected \'error\' to equal \'running\'\n    + expected - actual');
  });
});

describe('the formatter', () => {
  it('starts a run without an earlier run\'s results, names hooks without a name by their place, and still has the fields it relies on', async (t) => {
    const { default: Reporter } = (await load('support/allure-reporter.mjs')) as { default: new (options: unknown) => Record<string, unknown> };
    const hook = (id: string, line: number, name?: string): Record<string, unknown> => ({ id, uri: 'support/hooks.ts', line, name, code: () => undefined });
    const resultsDir = mkdtempSync(path.join(os.tmpdir(), 'allure-results-'));
    t.after(() => rmSync(resultsDir, { recursive: true, force: true }));
    const earlier = ['0b0b5b5e-4a4f-4c8e-9a52-1c4e0f7f2a11-result.json', '0b0b5b5e-4a4f-4c8e-9a52-1c4e0f7f2a11-attachment.txt', 'environment.properties'];
    for (const f of [...earlier, 'notes.md']) writeFileSync(path.join(resultsDir, f), '');
    const reporter = new Reporter({
      cwd: ROOT,
      eventBroadcaster: new EventEmitter(),
      parsedArgvOptions: { resultsDir },
      supportCodeLibrary: {
        beforeTestCaseHookDefinitions: [hook('b1', 36)],
        afterTestCaseHookDefinitions: [hook('a1', 66), hook('a2', 70, 'evidence')],
        beforeTestRunHookDefinitions: [],
        afterTestRunHookDefinitions: [],
        World: class {},
      },
    });
    const names = (field: string): unknown[] => Object.values(reporter[field] as Record<string, { name: string }>).map((h) => h.name);
    assert.deepEqual(names('beforeHooks'), ['Before (support/hooks.ts:36)']);
    assert.deepEqual(names('afterHooks'), ['After (support/hooks.ts:66)', 'evidence']);
    assert.ok(reporter.fixtureUuids instanceof Map, 'allure-cucumberjs keeps the running fixtures in fixtureUuids');
    assert.deepEqual(earlier.filter((f) => existsSync(path.join(resultsDir, f))), [], 'an earlier run\'s results are gone');
    assert.equal(existsSync(path.join(resultsDir, 'notes.md')), true, 'what Allure did not write stays');
  });
});

describe('the environment panel', () => {
  it('guesses nothing before the run: no /dev/kvm permission check, the accelerator not known yet', () => {
    const info = (labels as unknown as { environmentInfo(env: Record<string, string>): Record<string, string> }).environmentInfo({});
    assert.equal('/dev/kvm' in info, false);
    assert.equal(info.accelerator, 'not known: no scenario reached QEMU');
    assert.equal(info.CPUs, String(os.availableParallelism()));
  });

  it('takes the run\'s environment attachment into environment.properties, not into a scenario', async (t) => {
    const { default: Reporter, RUN_ENVIRONMENT_TYPE } = (await load('support/allure-reporter.mjs')) as { default: new (options: unknown) => Record<string, any>; RUN_ENVIRONMENT_TYPE: string };
    const { RUN_ENVIRONMENT_TYPE: fromSuite } = await import('../support/run-environment.ts');
    assert.equal(RUN_ENVIRONMENT_TYPE, fromSuite, 'the formatter and the suite name the same media type');
    const resultsDir = mkdtempSync(path.join(os.tmpdir(), 'allure-results-'));
    t.after(() => rmSync(resultsDir, { recursive: true, force: true }));
    const eventBroadcaster = new EventEmitter();
    new Reporter({
      cwd: ROOT,
      eventBroadcaster,
      parsedArgvOptions: { resultsDir, environmentInfo: { accelerator: 'not known: no scenario reached QEMU', kernel: 'k' } },
      supportCodeLibrary: { beforeTestCaseHookDefinitions: [], afterTestCaseHookDefinitions: [], beforeTestRunHookDefinitions: [], afterTestRunHookDefinitions: [], World: class {} },
    });
    const facts = { accelerator: 'TCG: /dev/kvm exists but a KVM probe VM did not boot', 'test guest': '2853417c9d812c3e: linux-image-6.1.0-57-cloud-amd64' };
    eventBroadcaster.emit('envelope', { attachment: { mediaType: fromSuite, body: JSON.stringify(facts), contentEncoding: 'IDENTITY', testCaseStartedId: 'nowhere' } });
    eventBroadcaster.emit('envelope', { testRunFinished: { timestamp: { seconds: 0, nanos: 0 }, success: true } });
    const written = readFileSync(path.join(resultsDir, 'environment.properties'), 'utf8');
    assert.match(written, /^accelerator\s*=\s*TCG: \/dev\/kvm exists but a KVM probe VM did not boot$/m);
    assert.match(written, /^test\\? guest\s*=\s*2853417c9d812c3e/m); // a space in a key is escaped, as .properties do
    assert.match(written, /^kernel\s*=\s*k$/m);
    assert.deepEqual(readdirSync(resultsDir).filter((f) => f.includes('attachment')), [], 'no scenario got it as an attachment');
  });
});

describe('cucumber profiles', () => {
  for (const name of ['default', 'ci'] as const) {
    it(`${name}: writes Allure results into reports/allure-results without taking stdout`, () => {
      const profile = cucumber[name];
      assert.ok(profile.format.includes('./support/allure-reporter.mjs:/dev/null'));
      assert.equal(profile.formatOptions.resultsDir, 'reports/allure-results');
      assert.equal(profile.formatOptions.listeners?.length, 1);
    });
  }
});

describe('failure categories', () => {
  const rules = normalizeCategoriesConfig(allurerc.categories);
  const category = (status: 'failed' | 'broken' | 'passed' | 'skipped', message?: string, flaky = false): string | undefined =>
    matchCategory(rules, extractErrorMatchingData({ status, labels: [], error: message ? { message } : {}, flaky }))?.name;

  it('puts what the host cannot do under Environment, in the suite\'s own words', () => {
    for (const m of [
      'Error: QEMU is required (VMAN_REQUIRE_QEMU=1) but unusable: qemu-system-x86_64 is not on PATH; ./setup.sh installs it',
      'Error: this @privileged scenario cannot run (VMAN_REQUIRE_PRIVILEGED=1): needs root (network namespaces, bridges and tap devices); run the suite as root',
      'Error: the Debian guest is not built (guest/build-debian.sh; ./setup.sh builds it)',
      'Error: ENOSPC: no space left on device, write',
      'Error: qemu-system-x86_64: Could not access KVM kernel module: No such file or directory',
    ]) assert.equal(category('broken', m), 'Environment: the host cannot run it', m);
  });

  it('puts the suite\'s waits and cucumber\'s step timeout under Timed out', () => {
    assert.equal(category('broken', 'WaitTimeoutError: timed out after 60000 ms waiting for VM web running; last seen: starting'), 'Timed out: a slow host or a hung vman');
    assert.equal(category('failed', 'function timed out, ensure the promise resolves within 60000 milliseconds'), 'Timed out: a slow host or a hung vman');
  });

  it('puts a failed check and a VM that ended in error under Product defect', () => {
    assert.equal(category('failed', 'AssertionError: HTTP status: expected 500 to equal 200'), 'Product defect: vman did not do what the scenario says');
    assert.equal(category('broken', 'TerminalStateError: VM web is in error: QEMU exited'), 'Product defect: vman did not do what the scenario says');
  });

  it('puts errors of the suite\'s own code and undefined steps under Test defect', () => {
    assert.equal(category('broken', "TypeError: Cannot read properties of undefined (reading 'id')"), 'Test defect: the suite itself');
    assert.equal(category('broken', 'undefined step: Given a step nobody wrote (no step definition matches it)'), 'Test defect: the suite itself');
  });

  it('puts flaky results under Flaky before their cause, and leaves a plain pass uncategorized', () => {
    assert.equal(category('failed', 'AssertionError: x', true), 'Flaky: failed now but passed before, or passed on retry');
    assert.equal(category('passed', undefined, true), 'Flaky: failed now but passed before, or passed on retry');
    assert.equal(category('passed'), undefined);
  });

  it('keeps other errors apart from failed checks, and skipped scenarios in a group of their own', () => {
    assert.equal(category('broken', 'Error: POST /api/v1/vms answered 409'), 'Broken: an error before any check (read the message)');
    assert.equal(category('skipped'), 'Skipped: this host lacks what the scenario needs');
  });

  it('keeps the report and its history where the site and CI expect them', () => {
    assert.equal(allurerc.default.output, 'reports/site/allure');
    assert.equal(allurerc.default.historyPath, process.env.VMAN_ALLURE_HISTORY || 'reports/history/allure-history.jsonl');
  });
});

describe('the report script', () => {
  it('takes this run\'s results and every shard\'s, skipping folders without results', async (t) => {
    const script = (await load('scripts/report/allure.mjs')) as { defaultResultDirs(reports: string): string[] };
    const reports = mkdtempSync(path.join(os.tmpdir(), 'reports-'));
    t.after(() => rmSync(reports, { recursive: true, force: true }));
    const results = (dir: string, file: string): string => {
      mkdirSync(path.join(reports, dir), { recursive: true });
      writeFileSync(path.join(reports, dir, file), '{}');
      return path.join(reports, dir);
    };
    const local = results('allure-results', 'a-result.json');
    const disks = results('shards/disks/allure-results', 'b-result.json');
    results('shards/empty/allure-results', 'environment.properties');
    const smoke = results('shards/smoke/allure-results', 'c-result.json');
    assert.deepEqual(script.defaultResultDirs(reports), [local, disks, smoke]);
  });
});
