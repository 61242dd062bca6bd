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
  const reader = eventReader(this);
  const vm = await recordedVm(this, name);
  const events = await waitForEventsAbout(reader, 'vm.state', vm.id, `${first} then ${second}`,
    (es) => es.length >= 2 || es.some((e) => (e.data as { state: string }).state === second), STREAM_WAIT_MS).finally(() => this.attach(`event stream:\n${transcript(reader)}`, 'text/plain'));
  expect(events.map((e) => (e.data as { state: string }).state), `vm.state events of ${name} since the suite subscribed`).to.deep.equal([first, second]);
  expect((events[1]!.data as { previous: string }).previous, `the second event's previous state`).to.equal(first);
  expect(Number(events[1]!.id), `ids in delivery order (${events.map((e) => e.id).join(', ')})`).to.be.greaterThan(Number(events[0]!.id));
});

// A longer sequence, as a reader writes it: "stopping, stopped, starting, running".
Then('the event stream delivered the VM states {string} for {string}, and nothing else', GUEST_STEP, async function (this: VmanWorld, sequence: string, name: string) {
  const states = sequence.split(',').map((s) => s.trim());
  const unknown = states.filter((s) => !(VM_STATES as readonly string[]).includes(s));
  if (unknown.length > 0 || states.length < 2) throw new Error(`"${sequence}" must list two or more of ${VM_STATES.join(', ')}; not states: ${unknown.join(', ')}`);
  const reader = eventReader(this);
  const vm = await recordedVm(this, name);
  const last = states[states.length - 1]!;
  const events = await waitForEventsAbout(reader, 'vm.state', vm.id, sequence,
    (es) => es.length >= states.length || es.some((e) => (e.data as { state: string }).state === 'error'), STREAM_WAIT_MS)
    .finally(() => this.attach(`event stream:\n${transcript(reader)}`, 'text/plain'));
  expect(events.map((e) => (e.data as { state: string }).state), `vm.state events of ${name} since the suite subscribed`).to.deep.equal(states);
  expect(events.slice(1).map((e) => (e.data as { previous: string }).previous), 'each event\'s previous state').to.deep.equal(states.slice(0, -1));
  const ids = events.map((e) => Number(e.id));
  expect(ids, `ids in delivery order`).to.deep.equal([...ids].sort((a, b) => a - b));
  expect((await recordedVm(this, name)).state, `the database file's state of ${name} after ${last}`).to.equal(last);
});

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
