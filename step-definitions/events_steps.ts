// Steps about vman's event stream and answers that come before the work is
// done, checked with the suite's own SSE reader and the database file.
import { Given, Then, When, type DataTable } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { GUEST_STEP } from '../support/timeouts.ts';
import { cutAfterDiskState, earlyAnswer, eventReader, listenToEvents, startWithoutWaiting, transcript, waitForEventsAbout } from '../support/event-tasks.ts';
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
  const ids = events.map((e) => Number(e.id?.split('-')[1]));
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

// ---- a client that loses its connection and comes back (Last-Event-ID) ----

When('the suite\'s connection to the event stream is cut once it has delivered {string} as available', async function (this: VmanWorld, disk: string) {
  await cutAfterDiskState(this, disk, 'available', 10_000);
});

When('the suite listens again, sending back the id of the last event it saw', async function (this: VmanWorld) {
  await listenToEvents(this, this.noted('lastEventIdSeen', 'the id of the last event the suite saw before its connection was cut'));
});

/** Why vman may tell a returning client to list again (the reasons the README gives). */
const RESET_REASONS = ['restarted', 'too-far-behind', 'unknown-id'] as const;

Then('the event stream began with one reset event, for the reason {string}', async function (this: VmanWorld, reason: string) {
  if (!(RESET_REASONS as readonly string[]).includes(reason)) throw new Error(`"${reason}" is not a reason a reset gives: ${RESET_REASONS.join(', ')}`);
  const reader = eventReader(this);
  const given = this.noted('lastEventIdSeen', 'the id the suite sent back');
  await reader.waitFor('the first event', (es) => es[0], 10_000).finally(() => this.attach(`event stream:\n${transcript(reader)}`, 'text/plain'));
  const [first, ...rest] = reader.events;
  expect(first!.type, `the first event after sending back ${given}`).to.equal('reset');
  const data = first!.data as { reason?: unknown; last_event_id?: unknown; detail?: unknown };
  expect(data.reason, 'the reset\'s reason').to.equal(reason);
  expect(data.last_event_id, 'the id the reset answers').to.equal(given);
  expect(String(data.detail), 'what the reset tells the client').to.match(/list VMs and disks again$/);
  expect(rest.filter((e) => e.type === 'reset'), 'reset events after the first').to.deep.equal([]);
});

Then('the event stream delivered these disk states, each once and in this order:', async function (this: VmanWorld, table: DataTable) {
  const rows = table.hashes() as Array<{ disk: string; state: string }>;
  const reader = eventReader(this);
  const expected = rows.map((r) => ({ id: this.idOf(r.disk), disk: r.disk, state: r.state }));
  const last = expected.at(-1)!;
  // Whatever a replay repeated would come before the live event that ends the list.
  await reader.waitFor(`${last.disk} ${last.state}`, (es) => es.find((e) => e.type === 'disk.state' && (e.data as { id?: unknown }).id === last.id && (e.data as { state?: unknown }).state === last.state), 10_000)
    .finally(() => this.attach(`event stream:\n${transcript(reader)}`, 'text/plain'));
  const delivered = reader.events.filter((e) => e.type !== 'reset');
  expect(delivered.map((e) => `${e.type} ${String((e.data as { id?: unknown }).id)} ${String((e.data as { state?: unknown }).state)}`), 'the events since the suite listened again, each once')
    .to.deep.equal(expected.map((e) => `disk.state ${e.id} ${e.state}`));
  const numbers = delivered.map((e) => Number(e.id?.split('-')[1]));
  expect(numbers.every((n, i) => Number.isInteger(n) && (i === 0 || n > numbers[i - 1]!)), `ids in delivery order (${delivered.map((e) => e.id).join(', ')})`).to.equal(true);
  // What the stream last said of each disk is what the database file says now.
  for (const disk of new Set(rows.map((r) => r.disk))) {
    const said = rows.filter((r) => r.disk === disk).at(-1)!.state;
    const row = await this.db().one('SELECT state FROM disks WHERE id = ?', [this.idOf(disk)]);
    expect(row ? String(row.state) : 'deleted', `the database file's state of the disk ${disk}`).to.equal(said);
  }
});
