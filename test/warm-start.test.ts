// Which scenarios the suite starts warm (support/warm-start.ts, the crash
// outline's set-up in support/crash-tasks.ts), and where the suite's time
// goes by kind (scripts/time-breakdown.mjs).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { scenarioClones } from '../support/warm-start.ts';
import { crashSetupClones } from '../support/crash-tasks.ts';

interface Breakdown {
  wallMs: number;
  stepMs: number;
  scenarios: number;
  rows: Array<{ kind: string; ms: number; count: number }>;
  starts: { resumes: number; resumeMs: number; boots: number; bootMs: number };
}
const { breakdown } = (await import(new URL('../scripts/time-breakdown.mjs', import.meta.url).href)) as { breakdown(messages: unknown[]): Breakdown };

const pickle = (steps: string[], tags: string[] = []): { tags: Array<{ name: string; astNodeId: string }>; steps: Array<{ text: string; id: string; astNodeIds: string[] }> } => ({
  tags: tags.map((name) => ({ name, astNodeId: name })),
  steps: steps.map((text, i) => ({ text, id: `s${i}`, astNodeIds: [] })),
});

describe('which scenarios clone the worker\'s warm snapshot', () => {
  // The tests may themselves run with VMAN_SUITE_COLD=1 (.ci/run's coverage run): each says its own.
  const outside = process.env.VMAN_SUITE_COLD;
  beforeEach(() => {
    delete process.env.VMAN_SUITE_COLD;
  });
  afterEach(() => {
    if (outside === undefined) delete process.env.VMAN_SUITE_COLD;
    else process.env.VMAN_SUITE_COLD = outside;
  });

  it('a scenario that asks for a running VM of the small template clones', () => {
    assert.equal(scenarioClones(pickle(['vman is running on this host', 'a running VM "web" from the small template']), crashSetupClones), true);
  });

  it('one that asks for another template, or only creates and starts VMs, boots', () => {
    assert.equal(scenarioClones(pickle(['a running VM "deb" from the debian template']), crashSetupClones), false);
    assert.equal(scenarioClones(pickle(['a VM "web" created from the small template', 'the VM "web" is started']), crashSetupClones), false);
  });

  it('@cold and VMAN_SUITE_COLD=1 boot every VM', () => {
    const steps = ['a running VM "web" from the small template'];
    assert.equal(scenarioClones(pickle(steps, ['@integration', '@cold']), crashSetupClones), false);
    process.env.VMAN_SUITE_COLD = '1';
    assert.equal(scenarioClones(pickle(steps), crashSetupClones), false);
  });

  it('the crash outline clones the VM whose operation is not a start, never on the bridge', () => {
    const ready = (op: string): string => `everything is ready to ${op}, with vman set to die at "x.y"`;
    for (const op of ['stop the VM', 'restart the VM', 'delete the VM', 'attach the disk to the running VM', 'attach the disk to the stopped VM',
      'detach the disk from the running VM', 'snapshot the running VM', 'revert the running VM', 'start the clone']) {
      assert.equal(crashSetupClones(ready(op)), true, op);
    }
    for (const op of ['start the VM', 'start the VM on the bridge', 'stop the VM on the bridge', 'create a VM', 'create a disk', 'delete the disk', 'no such operation']) {
      assert.equal(crashSetupClones(ready(op)), false, op);
    }
    assert.equal(crashSetupClones('vman is running on this host'), false);
  });
});

describe('scripts/time-breakdown.mjs', () => {
  const ts = (ms: number): { seconds: number; nanos: number } => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
  const messages = [
    { testRunStarted: { timestamp: ts(1_000) } },
    { stepDefinition: { id: 'd1', pattern: { source: 'a running VM {string} from the {word} template' } } },
    { stepDefinition: { id: 'd2', pattern: { source: 'vman is running on this host' } } },
    { hook: { id: 'h1', name: 'the whole system judged' } },
    { pickle: { id: 'p1', uri: 'features/disks.feature' } },
    { pickle: { id: 'p2', uri: 'features/crash.feature' } },
    { testCase: { id: 'c1', pickleId: 'p1', testSteps: [{ id: 't1', stepDefinitionIds: ['d2'] }, { id: 't2', stepDefinitionIds: ['d1'] }, { id: 't3', hookId: 'h1' }] } },
    { testCase: { id: 'c2', pickleId: 'p2', testSteps: [{ id: 't4', stepDefinitionIds: ['d2'] }] } },
    { testCaseStarted: { id: 'a1', testCaseId: 'c1' } },
    { testStepFinished: { testCaseStartedId: 'a1', testStepId: 't1', testStepResult: { duration: ts(200) } } },
    { testStepFinished: { testCaseStartedId: 'a1', testStepId: 't2', testStepResult: { duration: ts(1_500) } } },
    { testStepFinished: { testCaseStartedId: 'a1', testStepId: 't3', testStepResult: { duration: ts(100) } } },
    { attachment: { mediaType: 'application/vnd.vman.timings+json', body: JSON.stringify({ entries: [
      { kind: 'resume', what: 'resume VM web', ms: 1_200, status: 200 },
      { kind: 'boot', what: 'start VM db', ms: 4_000, status: 200 },
      { kind: 'boot', what: 'start VM db', ms: 10, status: 409 },
    ] }) } },
    { testCaseStarted: { id: 'a2', testCaseId: 'c2' } },
    { testStepFinished: { testCaseStartedId: 'a2', testStepId: 't4', testStepResult: { duration: ts(3_000) } } },
    { testRunFinished: { timestamp: ts(6_000) } },
  ];

  it('sums step and hook time by kind, the crash outline apart, and counts cold boots and clones', () => {
    const b = breakdown(messages);
    assert.equal(b.wallMs, 5_000);
    assert.equal(b.stepMs, 4_800);
    assert.equal(b.scenarios, 2);
    const ms = Object.fromEntries(b.rows.filter((r) => r.count > 0).map((r) => [r.kind, r.ms]));
    assert.deepEqual(ms, {
      'crash outline (vman killed and started again, VMs and all)': 3_000,
      'judge after each scenario': 100,
      'vman start-ups': 200,
      'VM starts (boots and clones)': 1_500,
    });
    // A refusal is not a boot.
    assert.deepEqual(b.starts, { resumes: 1, resumeMs: 1_200, boots: 1, bootMs: 4_000 });
  });
});
