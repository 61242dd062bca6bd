// Steps about bad input and conflicting requests: what vman answers, and
// that a refusal changed nothing it holds (its database, its storage folder,
// its QEMU processes, the objects of the process it runs in).
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import {
  createOwnTemplate, headUnlikeGet, lastAnswer, sendBody, sendLongUrl, sendTo, sendToId, sendWellFormed, sendWellFormedAs, sendWithBaseImage,
  sendWithField, sendWithKey, sendWithKeyTwice, stopWithQuery, tryCreateTemplate, tryCreateVm, tryDeleteTemplate, tryVmAction, type IdAction,
} from '../support/validation-requests.ts';
import { creating, tableBody, tableId, tableValue, type Target } from '../support/validation-tables.ts';
import { createOneAfterAnother } from '../support/validation-names.ts';
import { attachToBothAtOnce, createTwiceAtOnce, describeRace, oneWonFlaws, raceEntries, raceWinner, startTwiceAtOnce } from '../support/race-tasks.ts';
import { changesSinceLastRequest, prototypeChangesSinceLastRequest } from '../support/validation-state.ts';
import { allowed, fieldFlaws, methodsFlaws, quotesFlaws, saysFlaws } from '../support/validation-problem.ts';
import { disturbedPlaces, preparePlaces } from '../support/validation-places.ts';
import { answeredWith, healthStatuses, notRefusedAsUnauthorized, readEveryListWithToken, requireApiToken, sendEveryRequest } from '../support/validation-token.ts';
import { bootFilesIn, bootFilesOf, qemuArgument, rootDiskBacking, templateOfBootFiles } from '../support/validation-boot-files.ts';
import {
  createsNotAnswered, diskDeviceHeldBy, namesNotRecordedApart, notOneRecordOfWinner, qemuProcessesOf, storageGainedBeyondCreated, storageGainedBeyondWinner,
  templateIdOfVm,
} from '../support/validation-facts.ts';
import { recordedDisk } from '../support/disk-facts.ts';
import type { HttpMethod, Kind, PoisonKey, RaceRequest, VmAction } from '../support/closed-sets.ts';
import { answersInOrder, overlapStartAndDelete } from '../support/start-delete-race.ts';
import { rememberVm } from '../support/vm-facts.ts';

// --- Given ------------------------------------------------------------------------

Given('a template {string} that is not built in', async function (this: VmanWorld, name: string) {
  await createOwnTemplate(this, name);
});

Given('files where the id {} would lead from vman\'s folders', async function (this: VmanWorld, id: string) {
  await preparePlaces(this, tableId(id));
});

Given('vman requires the API token {string}', async function (this: VmanWorld, token: string) {
  await requireApiToken(this, token);
});

Given('the test guest\'s kernel and initrd and a base image in a folder named {string}', async function (this: VmanWorld, folder: string) {
  await bootFilesIn(this, folder);
});

Given('a template {string} of those files', async function (this: VmanWorld, name: string) {
  await templateOfBootFiles(this, name);
});

// --- When: one request with one thing wrong ---------------------------------------------

When('the operator asks to create a {kind} with the request every refusal below starts from', async function (this: VmanWorld, kind: Kind) {
  await sendWellFormed(this, creating(kind));
});

When('the operator asks to create a {kind} whose {word} is {}', async function (this: VmanWorld, kind: Kind, field: string, value: string) {
  await sendWithField(this, creating(kind), field, tableValue(value));
});

When('the operator asks to create a template whose base image in qcow2 is {}', async function (this: VmanWorld, value: string) {
  await sendWithBaseImage(this, tableValue(value));
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

When('the operator sends {} to create a {kind}', async function (this: VmanWorld, body: string, kind: Kind) {
  await sendBody(this, creating(kind), tableBody(body));
});

When('the operator sends {} to attach the disk {string} to {string}', async function (this: VmanWorld, body: string, disk: string, vm: string) {
  await sendBody(this, { what: 'attach', disk, vm }, tableBody(body));
});

When('the operator sends {} to detach the disk {string}', async function (this: VmanWorld, body: string, disk: string) {
  await sendBody(this, { what: 'detach', disk }, tableBody(body));
});

When('the operator sends {} to {vm-action} the VM {string}', async function (this: VmanWorld, body: string, action: VmAction, vm: string) {
  await sendBody(this, { what: action, vm }, tableBody(body));
});

When('the operator sends a request to {request} whose body also has the key {poison-key}', async function (this: VmanWorld, request: Target, key: PoisonKey) {
  await sendWithKey(this, request, key);
});

When('the operator sends a request to {request} whose key {word} is given twice, the second time as {}', async function (this: VmanWorld, request: Target, key: string, second: string) {
  await sendWithKeyTwice(this, request, key, tableValue(second));
});

When('the operator sends the well-formed request to {request} with the content type {}', async function (this: VmanWorld, request: Target, contentType: string) {
  await sendWellFormedAs(this, request, contentType);
});

When('the operator sends a {http-method} request to {}', async function (this: VmanWorld, method: HttpMethod, urlPath: string) {
  await sendTo(this, method, urlPath);
});

When('the operator sends an {http-method} request to {}', async function (this: VmanWorld, method: HttpMethod, urlPath: string) {
  await sendTo(this, method, urlPath);
});

When('the operator asks for {} followed by {int} letters', async function (this: VmanWorld, urlPath: string, length: number) {
  await sendLongUrl(this, urlPath, length);
});

When('the operator asks to {id-action} the {kind} with the id {}', async function (this: VmanWorld, action: IdAction, kind: Kind, id: string) {
  await sendToId(this, action, kind, tableId(id));
});

When('the operator sends every request vman serves without an Authorization header', async function (this: VmanWorld) {
  await sendEveryRequest(this, undefined);
});

When('the operator sends every request vman serves with the Authorization {string}', async function (this: VmanWorld, authorization: string) {
  await sendEveryRequest(this, authorization);
});

When('the operator reads vman\'s OpenAPI document and every list with the token {string}', async function (this: VmanWorld, token: string) {
  await readEveryListWithToken(this, token);
});

// --- When: what the state forbids -----------------------------------------------------------

When('the operator tries to {vm-action} the VM {string}', async function (this: VmanWorld, action: VmAction, vm: string) {
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

When('the operator creates a {kind} {string} and then a {kind} {string}', async function (this: VmanWorld, kind: Kind, first: string, again: Kind, second: string) {
  if (kind !== again) throw new Error(`both creates are of one kind here, not a ${kind} and a ${again}`);
  await createOneAfterAnother(this, kind, [first, second]);
});

// --- When: at the same moment ------------------------------------------------------------------

When('the VM {string} is started twice at the same moment', async function (this: VmanWorld, vm: string) {
  await startTwiceAtOnce(this, vm);
});

When('the VM {string} is started, and deleted with force while it is starting', async function (this: VmanWorld, vm: string) {
  await rememberVm(this, vm);
  await overlapStartAndDelete(this, vm, 'start', 'starting');
});

When('the VM {string} is deleted with force, and started while it is stopping', async function (this: VmanWorld, vm: string) {
  await rememberVm(this, vm);
  await overlapStartAndDelete(this, vm, 'delete', 'stopping');
});

When('the disk {string} is attached to {string} and to {string} at the same moment', async function (this: VmanWorld, disk: string, a: string, b: string) {
  await attachToBothAtOnce(this, disk, a, b);
});

When('the request to create a {kind} {string} is sent twice at the same moment', async function (this: VmanWorld, kind: Kind, name: string) {
  await createTwiceAtOnce(this, kind, name);
});

// --- Then: the answer ---------------------------------------------------------------------------

Then('the request is accepted with status {int}', function (this: VmanWorld, status: number) {
  const res = lastAnswer(this);
  expect(res.statusCode, `HTTP status; body ${JSON.stringify(res.body)}`).to.equal(status);
});

Then('the request is answered with status {int} and no body', function (this: VmanWorld, status: number) {
  const res = lastAnswer(this);
  expect({ status: res.statusCode, body: res.text }, 'the answer').to.deep.equal({ status, body: '' });
});

Then('the answer is a problem that names the field {word}', function (this: VmanWorld, field: string) {
  expect(fieldFlaws(lastAnswer(this), field), 'flaws of the answer').to.deep.equal([]);
});

Then('the answer is a problem whose detail says {string}', function (this: VmanWorld, words: string) {
  expect(saysFlaws(lastAnswer(this), words), 'flaws of the answer').to.deep.equal([]);
});

Then('the answer is a problem that names the key {word}', function (this: VmanWorld, key: string) {
  expect(quotesFlaws(lastAnswer(this), key), 'flaws of the answer').to.deep.equal([]);
});

Then('the answer is a problem that quotes the id/template {}', function (this: VmanWorld, value: string) {
  expect(quotesFlaws(lastAnswer(this), tableId(value)), 'flaws of the answer').to.deep.equal([]);
});

Then('the answer is a problem that names the path {}', function (this: VmanWorld, urlPath: string) {
  expect(saysFlaws(lastAnswer(this), urlPath), 'flaws of the answer').to.deep.equal([]);
});

Then('the answer is a problem that names the methods {http-methods}', function (this: VmanWorld, methods: HttpMethod[]) {
  expect(methodsFlaws(lastAnswer(this), methods), 'flaws of the answer').to.deep.equal([]);
});

Then('the Allow header of the answer lists {http-methods}', function (this: VmanWorld, methods: HttpMethod[]) {
  expect(allowed(lastAnswer(this)).sort(), 'the methods in Allow').to.deep.equal([...methods].sort());
});

Then('the answer has the status, content type and length of the answer to GET {}, and no body', async function (this: VmanWorld, urlPath: string) {
  expect(await headUnlikeGet(this, urlPath), 'how HEAD differs from GET').to.deep.equal([]);
});

// --- Then: nothing changed ------------------------------------------------------------------------

Then('the database, the storage folder and the QEMU processes are as they were before', async function (this: VmanWorld) {
  expect(await changesSinceLastRequest(this), 'what changed in the database, the storage folder and the QEMU processes').to.deep.equal([]);
});

// A request that failed half-way (qemu-img could not write) began an operation:
// its intent was written and removed again, which moves the journal's counter
// and so writes the database file; every row and every other file is as it was.
Then('the database, the storage folder and the QEMU processes are as they were before, but for the counter of the journal', async function (this: VmanWorld) {
  const leeway = { tables: ['sqlite_sequence'], files: ['vman.db', 'vman.db-wal'] };
  expect(await changesSinceLastRequest(this, leeway), 'what changed in the database, the storage folder and the QEMU processes').to.deep.equal([]);
});

Then('no object in vman\'s process has gained a property', function (this: VmanWorld) {
  expect(prototypeChangesSinceLastRequest(this), 'changes to the built-in prototypes').to.deep.equal([]);
});

Then('the files where the id {} would lead are untouched', async function (this: VmanWorld, id: string) {
  expect(await disturbedPlaces(this, tableId(id)), 'places where the id leads').to.deep.equal([]);
});

// --- Then: with an API token -----------------------------------------------------------------------

Then('every answer but those of the health check, the readiness check and the OpenAPI document is a 401 problem with a Bearer challenge', function (this: VmanWorld) {
  expect(notRefusedAsUnauthorized(this), 'requests not refused as unauthorized').to.deep.equal([]);
});

Then('the health check answered with status {int}', function (this: VmanWorld, status: number) {
  expect(healthStatuses(this), 'GET and HEAD /health').to.deep.equal([{ method: 'GET', status }, { method: 'HEAD', status }]);
});

Then('none of them was refused with status {int}', function (this: VmanWorld, status: number) {
  expect(answeredWith(this, status), `requests answered ${status}`).to.deep.equal([]);
});

// --- Then: names that differ only in case ------------------------------------------------------------

Then('both were accepted with status {int}', function (this: VmanWorld, status: number) {
  expect(createsNotAnswered(this, status), `creates not answered ${status}`).to.deep.equal([]);
});

Then('the database records the {kinds} {string} and {string} under different ids', async function (this: VmanWorld, kind: Kind, a: string, b: string) {
  expect(await namesNotRecordedApart(this, kind, [a, b]), 'names not recorded apart').to.deep.equal([]);
});

Then('the storage folder gained what the {kinds} {string} and {string} have, and nothing else', async function (this: VmanWorld, kind: Kind, a: string, b: string) {
  expect(await storageGainedBeyondCreated(this, kind, [a, b]), 'what the storage folder gained').to.deep.equal([]);
});

Then('the database records {string} as made from the template {string}', async function (this: VmanWorld, vm: string, template: string) {
  expect(await templateIdOfVm(this, vm), `the template of ${vm}`).to.equal(this.idOf(`template:${template}`));
});

// --- Then: requests sent at the same moment ----------------------------------------------------------

Then('one {race-request} succeeded and the other was refused with status {int}', function (this: VmanWorld, what: RaceRequest, status: number) {
  expect(oneWonFlaws(this, what, status), describeRace(raceEntries(this))).to.deep.equal([]);
});

Then('the answers came in the order {string}', function (this: VmanWorld, order: string) {
  expect(answersInOrder(this), 'what the start and the delete answered, in the order the answers came').to.equal(order);
});

Then('the database records one {kind} named {string}, the one whose create succeeded', async function (this: VmanWorld, kind: Kind, name: string) {
  expect(await notOneRecordOfWinner(this, kind, name), describeRace(raceEntries(this))).to.deep.equal([]);
});

Then('the storage folder gained what the {kind} {string} has, and nothing for the refused create', async function (this: VmanWorld, kind: Kind, _name: string) {
  expect(await storageGainedBeyondWinner(this, kind), 'what the storage folder gained').to.deep.equal([]);
});

Then('exactly one QEMU process runs {string}', async function (this: VmanWorld, vm: string) {
  const { pids, recorded } = await qemuProcessesOf(this, vm);
  expect(pids, `QEMU processes of ${vm} in /proc; the database records the pid ${recorded}`).to.deep.equal([recorded]);
});

Then('the disk {string} is recorded as attached to the VM whose attach succeeded', async function (this: VmanWorld, disk: string) {
  const winner = raceWinner(this, 'attach');
  const recorded = await recordedDisk(this, disk);
  expect({ state: recorded.state, vmId: recorded.vmId }, `the disk in the database (${winner.label} won)`)
    .to.deep.equal({ state: 'attached', vmId: this.idOf(winner.label) });
});

Then('QMP lists the disk {string} on the VM whose attach succeeded and not on the other', async function (this: VmanWorld, disk: string) {
  expect(await diskDeviceHeldBy(this, disk), `whether QEMU holds the device of ${disk}, by the VM whose attach succeeded and the other`)
    .to.deep.equal({ winner: true, loser: false });
});

// --- Then: what QEMU was given ------------------------------------------------------------------------

Then('QEMU of {string} was given exactly the kernel and the initrd in the folder {string}', async function (this: VmanWorld, vm: string, folder: string) {
  const files = bootFilesOf(this, folder);
  expect({ kernel: await qemuArgument(this, vm, '-kernel'), initrd: await qemuArgument(this, vm, '-initrd') }, `the -kernel and -initrd arguments of the QEMU of ${vm}`)
    .to.deep.equal({ kernel: files.kernel, initrd: files.initrd });
});

Then('QMP shows the root disk of {string} backed by exactly the base image in the folder {string}', async function (this: VmanWorld, vm: string, folder: string) {
  const files = bootFilesOf(this, folder);
  expect(await rootDiskBacking(this, vm), `the backing file of the root disk of ${vm}, as QMP reports it`)
    .to.deep.equal({ backingFile: files.baseImage, backingImage: files.baseImage });
});
