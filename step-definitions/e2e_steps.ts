// Steps that span several resources: the whole workflow, many VMs at once,
// vman restarts, and the coherence of everything vman manages.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { GUEST_STEP } from '../support/timeouts.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { disagreements } from '../support/coherence.ts';
import { createVm, expectStatus, vmAction } from '../support/vm-tasks.ts';
import { guestIpv4, recordedVm, rememberVm, waitForNoQemu } from '../support/vm-facts.ts';
import { checkNow, findingAbout } from '../support/observer-tasks.ts';
import { changesSinceLastRequest, noteHoldings } from '../support/validation-state.ts';
import { createWhileKilled, describeCreates, incompleteCreates } from '../support/inflight-tasks.ts';
import type { BuiltInTemplate } from '../support/closed-sets.ts';

const names = (list: string): string[] => list.split(/,\s*|\s+and\s+/).map((n) => n.trim().replace(/^"|"$/g, ''));

When('a VM {string} is created from the {word} template', async function (this: VmanWorld, name: string, template: string) {
  await createVm(this, name, template);
  await rememberVm(this, name);
});

Then('the database, QEMU, the guests and the files agree', GUEST_STEP, async function (this: VmanWorld) {
  expect(await disagreements(this), 'disagreements between the database, QEMU, the guests and the files').to.deep.equal([]);
});

Then('vman holds nothing but its built-in templates', async function (this: VmanWorld) {
  const db = this.db();
  expect(await db.all('SELECT name FROM templates WHERE builtin = 0'), 'templates').to.deep.equal([]);
  for (const table of ['vms', 'disks', 'address_allocations']) expect(await db.all(`SELECT * FROM ${table}`), table).to.deep.equal([]);
  const storage = this.api().storagePath;
  expect(await readdir(path.join(storage, 'vms')), 'VM folders').to.deep.equal([]);
  expect(await readdir(path.join(storage, 'disks')), 'disk files').to.deep.equal([]);
});

Given('VMs {string} created from the {built-in-template} template', async function (this: VmanWorld, list: string, template: BuiltInTemplate) {
  for (const name of names(list)) {
    await createVm(this, name, template);
    await rememberVm(this, name);
  }
  this.notes.group = names(list);
});

When('they are all started at once', async function (this: VmanWorld) {
  const group = this.noted('group');
  const answers = await Promise.all(group.map((n) => vmAction(this, n, 'start')));
  answers.forEach((r, i) => expectStatus(r, 200, `start ${group[i]}`));
  for (const n of group) await rememberVm(this, n);
});

When('they are all stopped at once', async function (this: VmanWorld) {
  const group = this.noted('group');
  const answers = await Promise.all(group.map((n) => vmAction(this, n, 'stop')));
  answers.forEach((r, i) => expectStatus(r, 200, `stop ${group[i]}`));
});

Then('all of them are recorded as running with distinct addresses', async function (this: VmanWorld) {
  const group = this.noted('group');
  const addresses: string[] = [];
  for (const n of group) {
    const vm = await recordedVm(this, n);
    expect(vm.state, `state of ${n}`).to.equal('running');
    const a = await this.db().addressOf(vm.id);
    expect(a, `address of ${n}`).to.be.a('string');
    addresses.push(a!);
  }
  expect(new Set(addresses).size, `addresses ${addresses.join(', ')}`).to.equal(group.length);
});

Then('each guest has the address vman recorded for it', async function (this: VmanWorld) {
  for (const n of this.noted('group')) {
    const vm = await recordedVm(this, n);
    expect(await guestIpv4(vm.dir), `addresses the guest of ${n} reports`).to.deep.equal([await this.db().addressOf(vm.id)]);
  }
});

Then('none of them has a QEMU process or an address left', async function (this: VmanWorld) {
  for (const n of this.noted('group')) {
    const vm = await recordedVm(this, n);
    await waitForNoQemu(vm.id, vm.dir);
    expect(vm.state, `state of ${n}`).to.equal('stopped');
    expect(await this.db().addressOf(vm.id), `address of ${n}`).to.equal(undefined);
  }
});

Then('the observer reports {string} as failed', async function (this: VmanWorld, name: string) {
  const f = findingAbout(await checkNow(this), 'vm-failed', this.idOf(name));
  expect(f.observed).to.include('no QEMU process');
});

Given('what vman has recorded is noted', async function (this: VmanWorld) {
  await noteHoldings(this);
  this.notes.recordsBefore = await this.db().dump();
  for (const row of await this.db().all('SELECT name FROM vms')) await rememberVm(this, String(row.name));
});

// Every table, the intents among them, every file and folder, the QEMU
// processes and their block nodes. Only updated_at may move (adoption touches
// running VMs), so the database's own files may be written, and the new vman
// takes the storage's lock.
Then('every record is still there, unchanged', async function (this: VmanWorld) {
  // The lock and owner files say which vman holds the storage: the new one does.
  const leeway = { columns: ['updated_at'], files: ['vman.db', 'vman.db-wal', 'vman.lock', 'vman.owner'] };
  expect(await changesSinceLastRequest(this, leeway), 'what changed in the database, the storage folder, the QEMU processes and their block nodes').to.deep.equal([]);
});

Then('{string} kept its address', async function (this: VmanWorld, name: string) {
  const before = this.noted('recordsBefore', 'what vman had recorded');
  const id = this.idOf(name);
  const was = before.address_allocations?.find((a) => a.vm_id === id)?.address;
  expect(was, `address ${name} held before`).to.be.a('string');
  expect(await this.db().addressOf(id)).to.equal(was);
  expect(await guestIpv4((await recordedVm(this, name)).dir), `addresses the guest of ${name} reports`).to.deep.equal([was]);
});

When('{int} disks and {int} VMs are being created when vman is killed with SIGKILL', async function (this: VmanWorld, disks: number, vms: number) {
  if (!this.child) throw new Error('vman is not running as a separate process in this scenario');
  this.notes.inFlightCreates = await createWhileKilled(this, this.child, disks, vms);
});

Then('every disk and VM vman has recorded is complete, and nothing half-made is left', async function (this: VmanWorld) {
  const storage = this.api().storagePath;
  const disks = await this.db().all('SELECT id, path FROM disks');
  const diskFiles = await readdir(path.join(storage, 'disks'));
  expect(diskFiles.sort(), 'files in the disk folder').to.deep.equal(disks.map((d) => path.basename(String(d.path))).sort());
  const vms = await this.db().all('SELECT id FROM vms');
  expect((await readdir(path.join(storage, 'vms'))).sort(), 'VM folders').to.deep.equal(vms.map((v) => String(v.id)).sort());
  this.attach(`${disks.length} disk(s) and ${vms.length} VM(s) were completed before vman died; ${describeCreates(this.noted('inFlightCreates'))}`, 'text/plain');
});

// Durability: an answer of 201 is a promise that outlives vman.
Then('every create answered 201 before vman died is there, complete', async function (this: VmanWorld) {
  const answered = this.noted('inFlightCreates').filter((c) => c.status === 201);
  expect(await incompleteCreates(this, answered), `what became of the ${answered.length} create(s) answered 201`).to.deep.equal([]);
});

Then('at least one create was cut off without an answer', function (this: VmanWorld) {
  const creates = this.noted('inFlightCreates');
  expect(creates.filter((c) => c.status === undefined).length, `creates left unanswered when vman died (else nothing was in flight, and the scenario tested nothing): ${describeCreates(creates)}`).to.be.above(0);
});
