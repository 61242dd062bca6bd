// Steps about bad input and conflicting requests: what vman answers, and
// that a refusal changed nothing in its database, disk files or VM folders.
import { Before, Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import {
  atTheSameMoment, createOwnTemplate, describeRace, disturbedClimbTargets, idAction, placeClimbTargets, problemFlaws, raceEntries,
  raceWinner, sendBody, sendTo, sendToId, sendWellFormed, sendWellFormedAs, sendWithField, stopWithQuery, tableBody, tableValue,
  tryCreateTemplate, tryCreateVm, tryDeleteTemplate, tryVmAction, vmFolders, vmFoldersBeforeLastRequest, type Target,
} from '../support/validation-tasks.ts';
import { listVmanQemuProcesses } from '../src/operator/proc.ts';
import { listDiskDevices } from '../src/operator/hotplug.ts';
import { diskNodeNames } from '../src/operator/qemu-command.ts';
import { withAuxQmp } from '../support/qemu-facts.ts';
import { recordedDisk, storedState, storedStateBeforeLastRequest } from '../support/disk-facts.ts';
import { recordedVm } from '../support/vm-facts.ts';
import { hostStatus } from '../support/host.ts';

const creating = (kind: string): Target => {
  if (kind === 'template') return { what: 'create a template' };
  if (kind === 'VM') return { what: 'create a VM' };
  if (kind === 'disk') return { what: 'create a disk' };
  throw new Error(`vman creates templates, VMs and disks, not a ${kind}`);
};

const vmTarget = (action: string, vm: string): Target => {
  if (action !== 'start' && action !== 'stop' && action !== 'restart') throw new Error(`a VM cannot be asked to ${action}`);
  return { what: action, vm };
};

// vman probes the host as it starts unless it is handed a probe. The run probes
// once; handing that to vman saves a probe in each of the many short scenarios
// here. Without a usable QEMU nothing is handed over, and vman, probing for
// itself, serves anyway (a start then gets 503).
Before({ tags: '@validation and not @integration' }, async function (this: VmanWorld) {
  const status = await hostStatus();
  if (status.ok) this.host = status.host;
});

// --- Given ------------------------------------------------------------------------

Given('a template {string} that is not built in', async function (this: VmanWorld, name: string) {
  await createOwnTemplate(this, name);
});

Given('files where the id {string} would lead from vman\'s folders', async function (this: VmanWorld, id: string) {
  await placeClimbTargets(this, id);
});

// --- When: one request with one thing wrong ---------------------------------------------

When('the operator asks to create a {word} with the request every refusal below starts from', async function (this: VmanWorld, kind: string) {
  await sendWellFormed(this, creating(kind));
});

When('the operator asks to create a {word} whose {word} is {}', async function (this: VmanWorld, kind: string, field: string, value: string) {
  await sendWithField(this, creating(kind), field, tableValue(value));
});

When('the operator asks to attach the disk {string} to {string} in a request whose {word} is {}', async function (this: VmanWorld, disk: string, vm: string, field: string, value: string) {
  await sendWithField(this, { what: 'attach', disk, vm }, field, tableValue(value));
});

When('the operator asks to stop the VM {string} in a request whose {word} is {}', async function (this: VmanWorld, vm: string, field: string, value: string) {
  await sendWithField(this, { what: 'stop', vm }, field, tableValue(value));
});

When('the operator asks to stop the VM {string} with the query {}', async function (this: VmanWorld, vm: string, query: string) {
  await stopWithQuery(this, vm, query);
});

When('the operator sends {} to create a {word}', async function (this: VmanWorld, body: string, kind: string) {
  await sendBody(this, creating(kind), tableBody(body));
});

When('the operator sends {} to attach the disk {string} to {string}', async function (this: VmanWorld, body: string, disk: string, vm: string) {
  await sendBody(this, { what: 'attach', disk, vm }, tableBody(body));
});

When('the operator sends {} to detach the disk {string}', async function (this: VmanWorld, body: string, disk: string) {
  await sendBody(this, { what: 'detach', disk }, tableBody(body));
});

When('the operator sends {} to {word} the VM {string}', async function (this: VmanWorld, body: string, action: string, vm: string) {
  await sendBody(this, vmTarget(action, vm), tableBody(body));
});

When('the operator sends a well-formed VM request as {}', async function (this: VmanWorld, contentType: string) {
  await sendWellFormedAs(this, { what: 'create a VM' }, contentType);
});

When('the operator sends a {word} request to {}', async function (this: VmanWorld, method: string, urlPath: string) {
  await sendTo(this, method, urlPath);
});

When('the operator asks to {} the {word} with the id {}', async function (this: VmanWorld, action: string, kind: string, id: string) {
  if (kind !== 'template' && kind !== 'VM' && kind !== 'disk') throw new Error(`unknown kind ${kind}`);
  await sendToId(this, idAction(action), kind, String(tableValue(id)));
});

// --- When: what the state forbids -----------------------------------------------------------

When('the operator tries to {word} the VM {string}', async function (this: VmanWorld, action: string, vm: string) {
  await tryVmAction(this, action, vm);
});

When('the operator tries to delete the template {string}', async function (this: VmanWorld, name: string) {
  await tryDeleteTemplate(this, name);
});

When('the operator tries to create a template {string}', async function (this: VmanWorld, name: string) {
  await tryCreateTemplate(this, name);
});

When('the operator tries to create a VM {string} from the {word} template', async function (this: VmanWorld, name: string, template: string) {
  await tryCreateVm(this, name, template);
});

// --- When: at the same moment ------------------------------------------------------------------

When('the VM {string} is started twice at the same moment', async function (this: VmanWorld, vm: string) {
  const start = () => this.api().http.post(`api/v1/vms/${this.idOf(vm)}/start`);
  await atTheSameMoment(this, [{ what: 'start', label: 'first', send: start }, { what: 'start', label: 'second', send: start }]);
});

// Sent in the order named: the first one sent usually reaches the VM's lock first.
When('the VM {string} is {word} and {word} at the same moment', async function (this: VmanWorld, vm: string, first: string, second: string) {
  const id = this.idOf(vm);
  const requests = {
    started: { what: 'start', label: vm, send: () => this.api().http.post(`api/v1/vms/${id}/start`) },
    deleted: { what: 'delete', label: vm, send: () => this.api().http.delete(`api/v1/vms/${id}`) },
  } as const;
  const pick = (word: string) => {
    if (word !== 'started' && word !== 'deleted') throw new Error(`a VM is started or deleted here, not ${word}`);
    return requests[word];
  };
  await atTheSameMoment(this, [pick(first), pick(second)]);
});

When('the disk {string} is attached to {string} and to {string} at the same moment', async function (this: VmanWorld, disk: string, a: string, b: string) {
  const attach = (vm: string) => () => this.api().http.post(`api/v1/disks/${this.idOf(disk)}/attach`, { json: { vm_id: this.idOf(vm) } });
  await atTheSameMoment(this, [{ what: 'attach', label: a, send: attach(a) }, { what: 'attach', label: b, send: attach(b) }]);
});

// --- Then: the answer ---------------------------------------------------------------------------

Then('the request is refused with status {int} or {int}', function (this: VmanWorld, one: number, other: number) {
  const res = this.lastResponse;
  expect(res?.statusCode, `HTTP status; body ${JSON.stringify(res?.body)}`).to.be.oneOf([one, other]);
  expect(res?.headers['content-type'] ?? '').to.include('application/problem+json');
});

Then('the request is accepted with status {int}', function (this: VmanWorld, status: number) {
  const res = this.lastResponse;
  expect(res?.statusCode, `HTTP status; body ${JSON.stringify(res?.body)}`).to.equal(status);
});

Then('the answer is a problem that says what was wrong', function (this: VmanWorld) {
  const res = this.lastResponse;
  if (!res) throw new Error('no request was sent in this scenario');
  expect(problemFlaws(res), `flaws of the answer ${JSON.stringify(res.body)?.slice(0, 300)}`).to.deep.equal([]);
});

// --- Then: nothing changed ------------------------------------------------------------------------

// The same comparison as disks.feature's "the database and the disk files are
// as they were before", and the VM folders besides.
Then('the database, the disk files and the VM folders are as they were before', async function (this: VmanWorld) {
  expect(await storedState(this), 'the database and the disk files').to.deep.equal(storedStateBeforeLastRequest(this));
  expect(await vmFolders(this), 'entries under <storage>/vms').to.deep.equal(vmFoldersBeforeLastRequest(this));
});

Then('the files where the id {string} would lead are untouched', async function (this: VmanWorld, id: string) {
  expect(await disturbedClimbTargets(this, id), 'files outside vman\'s storage').to.deep.equal([]);
});

// --- Then: requests sent at the same moment ----------------------------------------------------------

Then('one {word} succeeded and the other was refused with status {int}', function (this: VmanWorld, what: string, status: number) {
  const winner = raceWinner(this, what);
  const entries = raceEntries(this).filter((e) => e.what === what);
  expect(entries.length, `${what} requests sent`).to.equal(2);
  const loser = entries.find((e) => e !== winner)!;
  expect(loser.statusCode, `the other ${what}: ${describeRace(entries)}`).to.equal(status);
  expect(problemFlaws(loser), `flaws of the refusal ${JSON.stringify(loser.body)}`).to.deep.equal([]);
});

Then('the delete succeeded, and the start either succeeded first or was refused with status 404 or 409', function (this: VmanWorld) {
  const entries = raceEntries(this);
  const del = entries.find((e) => e.what === 'delete');
  const start = entries.find((e) => e.what === 'start');
  expect(del?.statusCode, `the delete: ${describeRace(entries)}`).to.equal(204);
  expect(start?.statusCode, `the start: ${describeRace(entries)}`).to.be.oneOf([200, 404, 409]);
  if (start!.statusCode !== 200) expect(problemFlaws(start!), `flaws of the refused start ${JSON.stringify(start!.body)}`).to.deep.equal([]);
});

Then('exactly one QEMU process runs {string}', async function (this: VmanWorld, vm: string) {
  const recorded = await recordedVm(this, vm);
  const procs = (await listVmanQemuProcesses()).filter((p) => p.vmId === recorded.id);
  expect(procs.map((p) => p.pid), `QEMU processes named vman-${recorded.id}`).to.have.lengthOf(1);
  expect(recorded.pid, 'pid recorded in the database').to.equal(procs[0]!.pid);
});

Then('the disk {string} is recorded as attached to the VM whose attach succeeded', async function (this: VmanWorld, disk: string) {
  const winner = raceWinner(this, 'attach');
  const recorded = await recordedDisk(this, disk);
  expect({ state: recorded.state, vmId: recorded.vmId }, `the disk in the database (${winner.label} won)`)
    .to.deep.equal({ state: 'attached', vmId: this.idOf(winner.label) });
});

Then('QMP lists the disk {string} on the VM whose attach succeeded and not on the other', async function (this: VmanWorld, disk: string) {
  const winner = raceWinner(this, 'attach');
  const loser = raceEntries(this).find((e) => e.what === 'attach' && e !== winner)!;
  const { device } = diskNodeNames(this.idOf(disk));
  const devicesOf = async (vm: string): Promise<string[]> => withAuxQmp((await recordedVm(this, vm)).dir, (qmp) => listDiskDevices(qmp));
  expect(await devicesOf(winner.label), `block devices of ${winner.label}, whose attach succeeded`).to.include(device);
  expect(await devicesOf(loser.label), `block devices of ${loser.label}, whose attach was refused`).to.not.include(device);
});
