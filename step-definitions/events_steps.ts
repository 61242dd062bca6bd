// Steps about vman's event stream and answers that come before the work is
// done, checked with the suite's own SSE reader and the database file.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { GUEST_STEP } from '../support/timeouts.ts';
import { earlyAnswer, eventReader, listenToEvents, startWithoutWaiting, transcript, waitForEventsAbout } from '../support/event-tasks.ts';
import { recordedVm } from '../support/vm-facts.ts';
import { VM_STATES, type DiskState, type VmState } from '../support/closed-sets.ts';

/** A boot of the test guest takes seconds; the stream must carry its end well within this. */
const STREAM_WAIT_MS = 60_000;

Given('the suite listens to vman\'s event stream', async function (this: VmanWorld) {
  await listenToEvents(this);
});

When('the VM {string} is started without waiting', async function (this: VmanWorld, name: string) {
  await startWithoutWaiting(this, name);
});

Then('vman answered 202 with a Location to the VM {string}', async function (this: VmanWorld, name: string) {
  const { res } = earlyAnswer(this);
  expect(res.statusCode, `status of the start without waiting: ${JSON.stringify(res.body)}`).to.equal(202);
  const vm = await recordedVm(this, name);
  expect(res.headers.location, 'Location header').to.equal(`/api/v1/vms/${vm.id}`);
});

Then('the database file recorded {string} as starting when the answer came', function (this: VmanWorld, name: string) {
  const { rowAfter } = earlyAnswer(this);
  expect(rowAfter, `a row for ${name}`).to.not.equal(undefined);
  expect(rowAfter!.state, `state of ${name} read right after the answer`).to.equal('starting');
});

Then('the event stream delivered the VM states {vm-state} then {vm-state} for {string}, in that order', GUEST_STEP, async function (this: VmanWorld, first: VmState, second: VmState, name: string) {
  await expectVmStatesDelivered(this, name, [first, second]);
});

// A longer sequence, as a reader writes it: "stopping, stopped, starting, running".
Then('the event stream delivered the VM states {string} for {string}, and nothing else', GUEST_STEP, async function (this: VmanWorld, sequence: string, name: string) {
  const states = sequence.split(',').map((s) => s.trim());
  const unknown = states.filter((s) => !(VM_STATES as readonly string[]).includes(s));
  if (unknown.length > 0 || states.length < 2) throw new Error(`"${sequence}" must list two or more of ${VM_STATES.join(', ')}; not states: ${unknown.join(', ')}`);
  await expectVmStatesDelivered(this, name, states);
  const last = states[states.length - 1]!;
  expect((await recordedVm(this, name)).state, `the database file's state of ${name} after ${last}`).to.equal(last);
});

/**
 * The VM's state events since the suite subscribed are exactly `states`, each
 * naming the one before as its previous state, with ids in delivery order.
 * Waits until as many came, or the last state or an error did.
 */
async function expectVmStatesDelivered(world: VmanWorld, name: string, states: string[]): Promise<void> {
  const reader = eventReader(world);
  const vm = await recordedVm(world, name);
  const last = states[states.length - 1]!;
  const stateOf = (e: { data: unknown }): string => (e.data as { state: string }).state;
  const events = await waitForEventsAbout(reader, 'vm.state', vm.id, states.join(' then '),
    (es) => es.length >= states.length || es.some((e) => stateOf(e) === last || stateOf(e) === 'error'), STREAM_WAIT_MS)
    .finally(() => world.attach(`event stream:\n${transcript(reader)}`, 'text/plain'));
  expect(events.map(stateOf), `vm.state events of ${name} since the suite subscribed`).to.deep.equal(states);
  expect(events.slice(1).map((e) => (e.data as { previous: string }).previous), 'each event\'s previous state').to.deep.equal(states.slice(0, -1));
  const ids = events.map((e) => Number(e.id));
  expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!), `ids in delivery order (${ids.join(', ')})`).to.equal(true);
}

Then('the event stream delivered the disk state attached for {string} on {string}', async function (this: VmanWorld, disk: string, vmName: string) {
  const reader = eventReader(this);
  const row = await this.db().one('SELECT id FROM disks WHERE name = ?', [disk]);
  if (!row) throw new Error(`the database file has no disk named ${disk}`);
  const vm = await recordedVm(this, vmName);
  const events = await waitForEventsAbout(reader, 'disk.state', String(row.id), 'attached', (es) => es.length >= 1, 10_000).finally(() => this.attach(`event stream:\n${transcript(reader)}`, 'text/plain'));
  expect(events.map((e) => e.data), `disk.state events of ${disk} since the suite subscribed`).to.have.length(1);
  const data = events[0]!.data as { state: DiskState; previous: DiskState | null; vm_id: string | null };
  expect(data.state, 'state').to.equal('attached');
  expect(data.previous, 'previous state').to.equal('available');
  expect(data.vm_id, 'vm_id').to.equal(vm.id);
});
