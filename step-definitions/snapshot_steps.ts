// Steps about snapshots, reverts and clones: asked for through vman's API (or
// its command line), judged from the guest (agent), QEMU (its command line in
// /proc and the suite's own monitor), the database file and the files.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { GUEST_STEP } from '../support/timeouts.ts';
import path from 'node:path';
import { execa } from 'execa';
import { qemuBlockView } from '../support/qmp-reader.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus } from '../support/vm-tasks.ts';
import { guestReadsMarker } from '../support/disk-tasks.ts';
import { recordedVm, rememberVm } from '../support/vm-facts.ts';
import { noteHoldings } from '../support/validation-state.ts';
import { commandWords, runVmanOk, tableRows } from '../support/cli-tasks.ts';
import { qemuOfVm } from '../support/proc-reader.ts';
import {
  deleteSnapshot, guestHostKeys, setGuestClock, guestReadsRootTail, guestWritesRootTail, guestClockOffsetMs, guestDiskChecksum, guestGenerationId, guestKeepsRamMarker, guestRamMarker, memoryStateBytes,
  qemuGenerationId, qemuResumedAState, requestClone, requestRevert, requestSnapshot, takeSnapshot,
} from '../support/snapshot-tasks.ts';

/** How far a guest's clock may be from the host's after a start or a revert. */
const CLOCK_TOLERANCE_MS = 2_000;

// --- making them -------------------------------------------------------------------------------

When('a snapshot {string} of {string} is taken', GUEST_STEP, async function (this: VmanWorld, snapshot: string, vm: string) {
  await takeSnapshot(this, vm, snapshot);
});

When('a VM {string} is cloned from the snapshot {string} of {string}', async function (this: VmanWorld, clone: string, snapshot: string, vm: string) {
  expectStatus(await requestClone(this, clone, this.idOf(vm), snapshot), 201, `clone ${clone} from ${snapshot} of ${vm}`);
  await rememberVm(this, clone);
});

When('{string} is reverted to {string} with force', GUEST_STEP, async function (this: VmanWorld, vm: string, snapshot: string) {
  expectStatus(await requestRevert(this, vm, snapshot, { force: true }), 200, `revert ${vm} to ${snapshot}`);
  await rememberVm(this, vm);
});

// --- what the guest keeps ----------------------------------------------------------------------

Given('the guest of {string} keeps a marker in its memory only', async function (this: VmanWorld, vm: string) {
  this.notes.ramMarker = await guestKeepsRamMarker((await recordedVm(this, vm)).dir);
});

When('the guest of {string} keeps another marker in its memory only', async function (this: VmanWorld, vm: string) {
  const other = await guestKeepsRamMarker((await recordedVm(this, vm)).dir);
  expect(other, 'the second marker').to.not.equal(this.noted('ramMarker', 'a first marker in memory'));
});

Then('the guest of {string} holds the first marker in its memory', async function (this: VmanWorld, vm: string) {
  const seen = await guestRamMarker((await recordedVm(this, vm)).dir);
  expect(seen, `what the tmpfs of ${vm}'s guest holds`).to.deep.equal({ onTmpfs: true, marker: this.noted('ramMarker', 'a marker in memory') });
});

Then('the guest of {string} keeps another marker in its memory only, and the guest of {string} still holds the first', async function (this: VmanWorld, clone: string, origin: string) {
  const first = this.noted('ramMarker', 'a marker in memory');
  const other = await guestKeepsRamMarker((await recordedVm(this, clone)).dir);
  expect(await guestRamMarker((await recordedVm(this, clone)).dir), `what the tmpfs of ${clone}'s guest holds`).to.deep.equal({ onTmpfs: true, marker: other });
  expect(await guestRamMarker((await recordedVm(this, origin)).dir), `what the tmpfs of ${origin}'s guest holds`).to.deep.equal({ onTmpfs: true, marker: first });
});

// The saved clock is then an hour off, whatever the time between saving and resuming: a resume must set it.
Given('the clock of the guest of {string} is an hour behind', async function (this: VmanWorld, vm: string) {
  const dir = (await recordedVm(this, vm)).dir;
  await setGuestClock(dir, Date.now() - 3_600_000);
  const offset = await guestClockOffsetMs(dir);
  expect(Math.round(offset / 60_000), `how far behind the guest clock of ${vm} is, in minutes (${offset} ms)`).to.equal(-60);
});

Given('the guest of {string} notes the checksum of the disk {string}', async function (this: VmanWorld, vm: string, disk: string) {
  this.diskNoted(disk).guestChecksum = await guestDiskChecksum((await recordedVm(this, vm)).dir, this.idOf(disk));
  this.diskNoted(disk).firstGuestMarker = this.diskNoted(disk).guestMarker;
});

Then('the guest of {string} reads the first marker back from the disk {string}', async function (this: VmanWorld, vm: string, disk: string) {
  const first = this.diskNoted(disk).firstGuestMarker;
  if (first === undefined) throw new Error(`no first marker was noted for ${disk}`);
  expect(first, 'the first marker').to.not.equal(this.diskNoted(disk).guestMarker);
  expect(await guestReadsMarker((await recordedVm(this, vm)).dir, this.idOf(disk), first.length), `what the guest of ${vm} reads where the markers were written`).to.equal(first);
});

Then('the checksum of the disk {string}, as the guest of {string} reads it, is the one it noted', async function (this: VmanWorld, disk: string, vm: string) {
  expect(await guestDiskChecksum((await recordedVm(this, vm)).dir, this.idOf(disk)), `the checksum of ${disk}`).to.equal(this.diskNoted(disk).guestChecksum);
});

/** The serial of a VM's root disk as the suite's contract names it: `root-<hex>` of the VM whose hardware it has (a clone: its origin's). */
async function rootSerialOf(world: VmanWorld, vm: string): Promise<string> {
  const row = await world.db().one(
    'SELECT COALESCE(s.vm_id, v.id) AS owner FROM vms v LEFT JOIN snapshots s ON s.id = v.origin_snapshot_id WHERE v.name = ?', [vm]);
  if (!row) throw new Error(`no VM named ${vm}`);
  return `root-${String(row.owner).replace(/^vm-/, '')}`;
}

When('the guests of {string} and {string} each write a marker of their own at the end of their root disk', async function (this: VmanWorld, a: string, b: string) {
  const markers = new Map<string, string>();
  for (const vm of [a, b]) markers.set(vm, await guestWritesRootTail((await recordedVm(this, vm)).dir, await rootSerialOf(this, vm)));
  this.notes.rootTailMarkers = markers;
});

Then('each of {string} and {string} reads back its own marker from the end of its root disk', async function (this: VmanWorld, a: string, b: string) {
  const markers = this.noted('rootTailMarkers', 'markers at the end of root disks');
  for (const vm of [a, b]) {
    const mine = markers.get(vm)!;
    expect(await guestReadsRootTail((await recordedVm(this, vm)).dir, await rootSerialOf(this, vm), mine.length), `what ${vm} reads at the end of its root disk`).to.equal(mine);
  }
});

Then('the root disk of {string} is an overlay in its own folder over the image of the snapshot {string}, and its QEMU writes that overlay', async function (this: VmanWorld, vm: string, snapshot: string) {
  const v = await recordedVm(this, vm);
  const snap = await this.db().one('SELECT s.dir FROM snapshots s JOIN vms c ON c.origin_snapshot_id = s.id WHERE c.name = ? AND s.name = ?', [vm, snapshot]);
  if (!snap) throw new Error(`${vm} is not recorded as a clone of ${snapshot}`);
  const overlay = path.join(v.dir, 'root.qcow2');
  const info = await execa('qemu-img', ['info', '-U', '--output=json', overlay]);
  const backing = (JSON.parse(info.stdout) as { 'full-backing-filename'?: string })['full-backing-filename'];
  expect(path.dirname(backing ?? ''), `the folder of the image ${overlay} stands on`).to.equal(String(snap.dir));
  const root = await rootSerialOf(this, vm);
  const view = await qemuBlockView(v.dir);
  expect(view.fileOf[`disk-${root}`], `the file QEMU of ${vm} holds for its root disk`).to.equal(overlay);
});

// --- QEMU and the snapshot's files ------------------------------------------------------------

Then('the snapshot {string} of {string} holds the guest\'s memory, its state file no larger than the guest\'s memory', async function (this: VmanWorld, snapshot: string, vm: string) {
  const row = await this.db().one('SELECT s.with_memory, t.memory_mb FROM snapshots s JOIN vms v ON v.id = s.vm_id JOIN templates t ON t.id = v.template_id WHERE v.name = ? AND s.name = ?', [vm, snapshot]);
  expect(row?.with_memory, `snapshot ${snapshot} recorded with memory`).to.equal(1);
  const bytes = await memoryStateBytes(this, vm, snapshot);
  expect(bytes, 'the size of memory.state').to.be.a('number').and.above(0);
  expect(bytes!, 'the size of memory.state').to.be.at.most(Number(row!.memory_mb) * 2 ** 20);
});

Then('QEMU of {string} was started from the saved state', async function (this: VmanWorld, vm: string) {
  expect(await qemuResumedAState(this, vm), `-incoming on the command line of ${vm}'s QEMU`).to.equal(true);
});

Then('QEMU of {string} booted the guest rather than start from the saved state', async function (this: VmanWorld, vm: string) {
  expect(await qemuResumedAState(this, vm), `-incoming on the command line of ${vm}'s QEMU`).to.equal(false);
});

Then('the guest clock of {string} is within {int} s of the host\'s', async function (this: VmanWorld, vm: string, seconds: number) {
  const offset = await guestClockOffsetMs((await recordedVm(this, vm)).dir);
  expect(Math.abs(offset), `how far the guest clock of ${vm} is from the host's (ms; ${offset})`).to.be.at.most(Math.min(seconds * 1000, CLOCK_TOLERANCE_MS));
});

Then('the guests of {string} and {string} read different generation ids in their memory, each the one its QEMU gives', async function (this: VmanWorld, a: string, b: string) {
  const ids = [];
  for (const vm of [a, b]) {
    const dir = (await recordedVm(this, vm)).dir;
    const guest = await guestGenerationId(dir);
    expect(guest, `the generation id in ${vm}'s memory`).to.equal(await qemuGenerationId(dir));
    ids.push(guest);
  }
  expect(ids[0], 'the two generation ids').to.not.equal(ids[1]);
});

Then('{string} and {string} each have an SSH port and a console of their own', async function (this: VmanWorld, a: string, b: string) {
  const seen = [];
  for (const vm of [a, b]) {
    const v = await recordedVm(this, vm);
    const row = await this.db().vmByName(vm);
    const proc = await qemuOfVm(v.id, v.dir);
    const argv = proc?.argv.join(' ') ?? '';
    // The port forwarded on 127.0.0.1 as QEMU was told it, and the console file it writes.
    const port = /hostfwd=tcp:127\.0\.0\.1:(\d+)-/.exec(argv)?.[1];
    const consoleFile = /(?:file:|path=)([^ ,]*serial\.log)/.exec(argv)?.[1];
    expect(port, `the SSH port QEMU of ${vm} forwards`).to.equal(String(row?.ssh_port));
    expect(consoleFile, `the console QEMU of ${vm} writes`).to.equal(`${v.dir}/serial.log`);
    seen.push({ port, consoleFile });
  }
  expect(seen[0]!.port, 'the two SSH ports').to.not.equal(seen[1]!.port);
  expect(seen[0]!.consoleFile, 'the two consoles').to.not.equal(seen[1]!.consoleFile);
});

Then('the guests of {string} and {string} hold the same SSH host keys, as the README warns', async function (this: VmanWorld, a: string, b: string) {
  const keys = [];
  for (const vm of [a, b]) keys.push(await guestHostKeys((await recordedVm(this, vm)).dir));
  expect(keys[0]!.length, `SSH host keys in the guest of ${a}`).to.be.above(0);
  expect(keys[0], `the SSH host keys of ${a} against those of ${b}`).to.deep.equal(keys[1]);
});

Then('the database records no snapshot', async function (this: VmanWorld) {
  expect(await this.db().all('SELECT name FROM snapshots'), 'rows of snapshots').to.deep.equal([]);
});

// --- refusals ------------------------------------------------------------------------------------

When('the operator asks to revert {string} to {string} without force', async function (this: VmanWorld, vm: string, snapshot: string) {
  await noteHoldings(this);
  await requestRevert(this, vm, snapshot);
});

When('the operator asks to revert {string} to {string} with force, naming no disk it should detach first', async function (this: VmanWorld, vm: string, snapshot: string) {
  await noteHoldings(this);
  await requestRevert(this, vm, snapshot, { force: true });
});

Then('the problem\'s detail names the disk {string}', function (this: VmanWorld, disk: string) {
  const detail = (this.lastResponse?.body as { detail?: string } | undefined)?.detail ?? '';
  expect(detail, 'the problem\'s detail').to.match(new RegExp(`\\b${disk}\\b`));
});

When('the operator asks to delete the snapshot {string} of {string}', async function (this: VmanWorld, snapshot: string, vm: string) {
  await deleteSnapshot(this, vm, snapshot);
});

Then('the request is refused with status {int} and the problem {string}', function (this: VmanWorld, status: number, problem: string) {
  const res = this.lastResponse;
  expect({ status: res?.statusCode, type: (res?.body as { type?: string } | undefined)?.type }, `the answer ${JSON.stringify(res?.body)}`)
    .to.deep.equal({ status, type: `urn:vman:problem:${problem}` });
  expect(res?.headers['content-type'] ?? '').to.include('application/problem+json');
});

const BAD_REQUESTS: Record<string, (world: VmanWorld) => Promise<unknown>> = {
  'a snapshot of a VM that does not exist': (w) => requestSnapshot(w, 'no-such-vm', 'warm'),
  'a snapshot whose name holds a path separator': (w) => requestSnapshot(w, w.idOf('web'), '../escape'),
  'a snapshot whose name is already taken': (w) => requestSnapshot(w, w.idOf('web'), 'cold'),
  'a clone from a snapshot that does not exist': (w) => requestClone(w, 'web-2', w.idOf('web'), 'never-taken'),
  'a clone from a deleted snapshot': (w) => requestClone(w, 'web-2', w.idOf('web'), 'gone'),
};

When('the operator asks vman for {}', async function (this: VmanWorld, request: string) {
  const ask = BAD_REQUESTS[request];
  if (!ask) throw new Error(`no such request in this feature: ${request}; known: ${Object.keys(BAD_REQUESTS).join('; ')}`);
  // What a refusal starts from: a snapshot taken and deleted.
  if (request === 'a clone from a deleted snapshot') {
    await takeSnapshot(this, 'web', 'gone');
    expectStatus(await deleteSnapshot(this, 'web', 'gone'), 204, 'delete the snapshot gone');
  }
  await noteHoldings(this);
  await ask(this);
});

// --- the command line ----------------------------------------------------------------------------

Then('{string} shows the snapshot {string} with memory', async function (this: VmanWorld, line: string, snapshot: string) {
  const run = await runVmanOk(this, commandWords(line));
  const rows = tableRows(run.stdout).filter((r) => r.NAME === snapshot);
  expect(rows, `rows for ${snapshot} in:\n${run.stdout}`).to.have.length(1);
  expect(rows[0]!.MEMORY, `the MEMORY column of ${snapshot}`).to.equal('yes');
  const row = await this.db().one('SELECT with_memory FROM snapshots WHERE name = ?', [snapshot]);
  expect(row?.with_memory, `snapshot ${snapshot} recorded with memory`).to.equal(1);
});

