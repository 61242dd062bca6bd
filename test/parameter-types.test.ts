// The suite's closed sets (support/closed-sets.ts) are vman's own: the suite
// keeps copies, since it must not run vman's code, and this holds them equal.
// Each parameter type accepts its members and rejects near-misses, and
// .vscode/settings.json declares to the editor exactly the parameter types
// Cucumber registers (the extension cannot read them from the glue: they are
// built from these lists, not written as literals).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { loadConfiguration, loadSupport, runCucumber } from '@cucumber/cucumber/api';
import { VmState as VmStateSchema } from '../src/api/schemas.ts';
import { CRASH_POINT_NAMES } from '../src/crash-points.ts';
import { applyMigrations } from '../src/db/migrations.ts';
import type { DiskState, StopMethod, VmState } from '../src/db/types.ts';
import { BUILTIN_TEMPLATES } from '../src/services/template-service.ts';
import { AT_REST, IN_LIFE } from '../src/model/vm-states.ts';
import * as suite from '../support/closed-sets.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

/** true when A and B are the same union: a `false` below fails `npm run typecheck`. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const SAME_TYPES: [Same<suite.VmState, VmState>, Same<suite.DiskState, DiskState>, Same<suite.StopMethod, StopMethod>] = [true, true, true];

const sorted = (values: Iterable<string>): string[] => [...values].sort();

/** What `CHECK (column IN (...))` allows, in the schema vman's migrations make. */
function checkedValues(table: string, column: string): string[] {
  const db = new Database(':memory:');
  try {
    applyMigrations(db);
    const sql = db.prepare<[string], string>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(table) ?? '';
    const check = new RegExp(`CHECK \\(${column} IN \\(([^)]*)\\)\\)`).exec(sql);
    if (!check) throw new Error(`no CHECK on ${table}.${column} in:\n${sql}`);
    return [...check[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]!);
  } finally {
    db.close();
  }
}

describe("the suite's closed sets are vman's", () => {
  it('VM states: the state machine, the database schema and the API', () => {
    assert.deepEqual(SAME_TYPES, [true, true, true]);
    assert.deepEqual(sorted(suite.VM_STATES), sorted([...AT_REST, ...IN_LIFE]), 'the states of src/model/vm-states.ts');
    assert.deepEqual(sorted(suite.VM_STATES), sorted(checkedValues('vms', 'state')), 'vms.state in the schema');
    assert.deepEqual(sorted(suite.VM_STATES), sorted(VmStateSchema.anyOf.map((s) => String(s.const))), 'VmState in the API schemas');
  });

  it('disk states: the database schema', () => {
    assert.deepEqual(sorted(suite.DISK_STATES), sorted(checkedValues('disks', 'state')));
  });

  it('stop methods: the database schema', () => {
    assert.deepEqual(sorted(Object.keys(suite.STOP_METHODS)), sorted(checkedValues('vms', 'stop_method')));
  });

  it('built-in templates, with their sizes', () => {
    assert.deepEqual(suite.BUILT_IN_TEMPLATES, BUILTIN_TEMPLATES);
  });

  it('crash points', () => {
    assert.deepEqual(sorted(suite.CRASH_POINTS), sorted(CRASH_POINT_NAMES));
  });
});

/** Texts one slip away from `member`: a letter short, one more, the case of the first letter, a dot that is not a dot. */
function nearMisses(member: string): string[] {
  const first = member[0]!;
  const flipped = first === first.toUpperCase() ? first.toLowerCase() : first.toUpperCase();
  const misses = [member.slice(0, -1), `${member}x`, `${flipped}${member.slice(1)}`, ` ${member}`];
  if (member.includes('.')) misses.push(member.replace('.', 'x'));
  return misses;
}

describe('each parameter type', () => {
  for (const type of suite.CLOSED_SET_TYPES) {
    // As Cucumber uses it: the whole of the parameter's text, nothing around it.
    const whole = new RegExp(`^(?:${type.regexp.source})$`);

    it(`{${type.name}} accepts each member and rejects near-misses`, () => {
      for (const member of type.members) assert.match(member, whole, `{${type.name}} should accept ${JSON.stringify(member)}`);
      const misses = type.members.flatMap(nearMisses).filter((m) => !type.members.includes(m));
      for (const miss of misses) assert.doesNotMatch(miss, whole, `{${type.name}} should reject ${JSON.stringify(miss)}`);
    });
  }

  it('{vm-state} rejects the typos a feature might have', () => {
    const vmState = suite.CLOSED_SET_TYPES.find((t) => t.name === 'vm-state')!;
    for (const typo of ['runing', 'Running', 'stoped', 'errored', 'deleted', 'available']) {
      assert.doesNotMatch(typo, new RegExp(`^(?:${vmState.regexp.source})$`));
    }
  });

  it('turns the words of a step into what the step uses', () => {
    const transform = (name: string, text: string): unknown => suite.CLOSED_SET_TYPES.find((t) => t.name === name)!.transformer(text);
    for (const [method, words] of Object.entries(suite.STOP_METHODS)) assert.equal(transform('stop-method', words), method);
    assert.equal(transform('kinds', 'VMs'), 'VM');
    assert.deepEqual(transform('http-methods', 'GET, HEAD, OPTIONS'), ['GET', 'HEAD', 'OPTIONS']);
    assert.deepEqual(transform('id-action', 'attach to "db"'), { attachTo: 'db' });
    assert.equal(transform('id-action', 'look up'), 'look up');
    assert.deepEqual(suite.REQUEST_SAMPLES.map((r) => transform('request', r)), [
      { what: 'create a template' }, { what: 'create a VM' }, { what: 'create a disk' },
      { what: 'attach', disk: 'data', vm: 'db' }, { what: 'detach', disk: 'data' },
      { what: 'start', vm: 'db' }, { what: 'stop', vm: 'db' }, { what: 'restart', vm: 'db' },
    ]);
  });
});

interface EditorSettings {
  'cucumber.features': string[];
  'cucumber.glue': string[];
  'cucumber.parameterTypes': Array<{ name: string; regexp: string }>;
}

/** What this test reads of the library loadSupport returns; its public type (ISupportCodeLibrary) hides it. */
interface LoadedSupport {
  parameterTypeRegistry: { parameterTypes: Iterable<{ name?: string; regexpStrings: readonly string[]; builtin?: boolean }> };
  stepDefinitions: Array<{ pattern: string | RegExp }>;
}

// The support code as cucumber-js loads it, with the project's configuration.
const { runConfiguration } = await loadConfiguration({ profiles: [] }, { cwd: ROOT });
const support = await loadSupport(runConfiguration, { cwd: ROOT });
const library = support as unknown as LoadedSupport;
const custom = [...library.parameterTypeRegistry.parameterTypes].filter((t) => !t.builtin);

describe('the editor settings (.vscode/settings.json)', () => {
  const settings = JSON.parse(readFileSync(path.join(ROOT, '.vscode', 'settings.json'), 'utf8')) as EditorSettings;
  const byName = <T extends { name: string }>(list: T[]): T[] => [...list].sort((a, b) => a.name.localeCompare(b.name));

  it('declare exactly the parameter types Cucumber registers', () => {
    const registered = custom.map((t) => ({ name: t.name!, regexp: t.regexpStrings.join('|') }));
    assert.deepEqual(byName(settings['cucumber.parameterTypes']), byName(registered),
      `"cucumber.parameterTypes" should be:\n${JSON.stringify(registered, null, 2)}`);
  });

  it('name as glue every TypeScript folder cucumber-js imports', () => {
    const imported = (runConfiguration.support.importPaths ?? []).filter((p) => p.endsWith('.ts'));
    assert.deepEqual(sorted(settings['cucumber.glue']), sorted(imported));
    assert.deepEqual(settings['cucumber.features'], ['features/**/*.feature']);
  });

  it('have no parameter type that no step uses', () => {
    const patterns = library.stepDefinitions.map((d) => String(d.pattern));
    assert.deepEqual(custom.map((t) => t.name!).filter((name) => !patterns.some((p) => p.includes(`{${name}}`))), []);
  });
});

// `cucumber-js --dry-run` exits 0 whatever it finds (cucumber-js 12 counts no
// step of a dry run as a failure), so the steps a typo leaves undefined or
// ambiguous are counted here, from the messages of a dry run.
describe('the features', () => {
  it('have exactly one step definition for every step', async () => {
    const stepText = new Map<string, string>();
    const pickleStepOf = new Map<string, string>();
    const wrong: string[] = [];
    const { success } = await runCucumber(
      {
        ...runConfiguration,
        support,
        runtime: { ...runConfiguration.runtime, dryRun: true, parallel: 0 },
        // No report files: a dry run must not replace those of a real run.
        formats: { stdout: 'summary', files: {}, publish: false, options: {} },
      },
      { cwd: ROOT, stdout: new PassThrough().resume(), stderr: process.stderr },
      (envelope) => {
        for (const step of envelope.pickle?.steps ?? []) stepText.set(step.id, `${envelope.pickle!.uri}: ${step.text}`);
        for (const step of envelope.testCase?.testSteps ?? []) if (step.pickleStepId) pickleStepOf.set(step.id, step.pickleStepId);
        const finished = envelope.testStepFinished;
        if (finished && ['UNDEFINED', 'AMBIGUOUS'].includes(finished.testStepResult.status)) {
          wrong.push(`${finished.testStepResult.status} ${stepText.get(pickleStepOf.get(finished.testStepId) ?? '') ?? finished.testStepId}`);
        }
      },
    );
    assert.deepEqual(wrong, []);
    assert.equal(success, true);
  });
});
