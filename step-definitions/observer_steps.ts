// Steps about the observer: inconsistencies made by hand, checks, reports, repair.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access, readdir, rm } from 'node:fs/promises';
import type { VmanWorld } from '../world/vman-world.ts';
import { tamperWithDatabase } from '../support/db-reader.ts';
import { createVm } from '../support/vm-tasks.ts';
import { rememberVm } from '../support/vm-facts.ts';
import {
  askForRepair, checkNow, findingAbout, lastReport, latestReport, makeDiskFileByHand, makeVmFolderByHand, notedSnapshot, plugDiskBehindVmansBack, putTapOnBridgeByHand,
  reserveByHand, snapshotThroughApi, startQemuByHand, unplugDeviceBehindVmansBack, waitForPeriodicFinding,
} from '../support/observer-tasks.ts';
import { recordedDisk, waitForGuestDisk } from '../support/disk-facts.ts';
import { recordedVm } from '../support/vm-facts.ts';
import { qemuBlockView } from '../support/qmp-reader.ts';
import { blockNamesOf } from '../support/block-names.ts';
import { sha256File } from '../support/file-digest.ts';
import { isAlive } from '../support/proc-reader.ts';
import { noteHoldings } from '../support/validation-state.ts';
import { GUEST_STEP } from '../support/timeouts.ts';

Given('vman is running with the observer checking every second', async function (this: VmanWorld) {
  await this.startVman({ env: { VMAN_OBSERVER_INTERVAL: '1' } });
});

Given('a VM {string} recorded as running although its QEMU was never started', async function (this: VmanWorld, name: string) {
  const vm = await createVm(this, name, 'small');
  const changed = await tamperWithDatabase(this.api().dbPath, "UPDATE vms SET state = 'running' WHERE id = ?", [vm.id]);
  expect(changed, 'rows changed behind vman').to.equal(1);
  await rememberVm(this, name);
});

Given("a QEMU process started by hand under vman's storage", async function (this: VmanWorld) {
  await startQemuByHand(this);
});

Given("a disk file made by hand with qemu-img in vman's disk folder", async function (this: VmanWorld) {
  await makeDiskFileByHand(this);
});

When('the file of disk {string} is deleted by hand', async function (this: VmanWorld, name: string) {
  const row = await this.db().one('SELECT path FROM disks WHERE id = ?', [this.idOf(name)]);
  await rm(String(row?.path));
});

Given('a VM {string} recorded as stopped although its QEMU still runs', async function (this: VmanWorld, name: string) {
  const changed = await tamperWithDatabase(this.api().dbPath, "UPDATE vms SET state = 'stopped' WHERE id = ?", [this.idOf(name)]);
  expect(changed, 'rows changed behind vman').to.equal(1);
});

Given('an address recorded for the VM {string}, which was never started', async function (this: VmanWorld, name: string) {
  const changed = await tamperWithDatabase(this.api().dbPath,
    "INSERT INTO address_allocations (address, vm_id, allocated_at) VALUES ('10.0.2.99', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", [this.idOf(name)]);
  expect(changed, 'rows changed behind vman').to.equal(1);
});

Given('the device of the disk {string} taken out of the QEMU of {string} behind vman\'s back', GUEST_STEP, async function (this: VmanWorld, disk: string, vm: string) {
  await unplugDeviceBehindVmansBack((await recordedVm(this, vm)).dir, this.idOf(disk));
});

Given('a VM folder made by hand in vman\'s storage', async function (this: VmanWorld) {
  this.notes.handFolder = await makeVmFolderByHand(this);
});

Given('a snapshot {string} of {string} taken through vman\'s API', async function (this: VmanWorld, snapshot: string, vm: string) {
  await snapshotThroughApi(this, vm, snapshot);
});

When('the record of snapshot {string} of {string} is deleted behind vman\'s back', async function (this: VmanWorld, snapshot: string, vm: string) {
  const changed = await tamperWithDatabase(this.api().dbPath, 'DELETE FROM snapshots WHERE id = ?', [notedSnapshot(this, vm, snapshot).id]);
  expect(changed, 'rows changed behind vman').to.equal(1);
});

When('the folder of snapshot {string} of {string} is deleted by hand', async function (this: VmanWorld, snapshot: string, vm: string) {
  await rm(notedSnapshot(this, vm, snapshot).dir, { recursive: true });
});

Given('what vman holds is noted', async function (this: VmanWorld) {
  await noteHoldings(this);
});

When('the observer checks', async function (this: VmanWorld) {
  await checkNow(this);
});

When('a repair is asked for', async function (this: VmanWorld) {
  await askForRepair(this);
});

Then('the report says {string} is recorded running but has no QEMU process', function (this: VmanWorld, name: string) {
  const f = findingAbout(lastReport(this), 'vm-not-running', this.idOf(name));
  expect(f.observed).to.include('no QEMU process');
});

Then('the start-up report says {string} was recorded running but had no QEMU process', async function (this: VmanWorld, name: string) {
  const report = await latestReport(this);
  if (!report) throw new Error('vman has no observer report after starting');
  const f = findingAbout(report, 'vm-not-running', this.idOf(name));
  expect(f.observed).to.include('no QEMU process');
});

Then('the report says {string} has failed, naming {string}', function (this: VmanWorld, name: string, words: string) {
  const f = findingAbout(lastReport(this), 'vm-failed', this.idOf(name));
  expect(f.recorded, 'what the finding says the database recorded').to.include(words);
  expect(f.observed, 'what the observer saw').to.equal('no QEMU process');
});

Then('the report names the hand-started QEMU as an orphan, with its pid', function (this: VmanWorld) {
  const pid = this.noted('handQemuPid', 'a QEMU started by hand');
  const f = findingAbout(lastReport(this), 'orphan-process', String(pid));
  expect(f.pid, 'pid in the finding').to.equal(pid);
});

Then('the report says disk {string} has no file', function (this: VmanWorld, name: string) {
  findingAbout(lastReport(this), 'disk-file-missing', this.idOf(name));
});

Then('the report names the hand-made file as an orphan disk file', function (this: VmanWorld) {
  const file = this.noted('handDiskFile', 'a disk file made by hand');
  findingAbout(lastReport(this), 'orphan-disk-file', file);
});

Then('the report says {string} is recorded at rest while its QEMU runs', async function (this: VmanWorld, name: string) {
  const f = findingAbout(lastReport(this), 'vm-process-unexpected', this.idOf(name));
  const vm = await recordedVm(this, name);
  expect(f.observed, 'what the observer saw').to.include(`QEMU process ${vm.pid} is alive`);
});

Then('the report says the address of {string} is held by a VM that does not run', function (this: VmanWorld, name: string) {
  const f = findingAbout(lastReport(this), 'address-without-running-vm', '10.0.2.99');
  expect(f.recorded, 'what the observer found recorded').to.include(this.idOf(name));
});

Then('the report says disk {string} is recorded attached to {string} but its QEMU has no such device', function (this: VmanWorld, disk: string, vm: string) {
  const f = findingAbout(lastReport(this), 'disk-device-missing', this.idOf(disk));
  expect(f.observed, 'what the observer saw').to.include(`QEMU of VM ${this.idOf(vm)} has no device`);
});

Then('the report names the hand-made VM folder as an orphan', function (this: VmanWorld) {
  const folder = this.noted('handFolder', 'a VM folder made by hand');
  findingAbout(lastReport(this), 'orphan-vm-folder', folder);
});

Then('the report names the folder of snapshot {string} of {string} as orphan snapshot files', async function (this: VmanWorld, snapshot: string, vm: string) {
  const s = notedSnapshot(this, vm, snapshot);
  const f = findingAbout(lastReport(this), 'orphan-snapshot-files', s.dir);
  const held = (await readdir(s.dir)).sort();
  expect({ type: f.resource_type, vm: f.vm_id, path: f.path }, 'what, of which VM, where').to.deep.equal({ type: 'folder', vm: this.idOf(vm), path: s.dir });
  expect(f.recorded, 'what the database says').to.equal(`no snapshot record of VM ${vm} with id ${s.id}`);
  expect(f.observed, 'what the observer saw').to.equal(held.length > 0 ? `the folder exists, holding ${held.join(', ')}` : 'the folder exists, empty');
});

Then('the report says snapshot {string} of {string} has no folder', function (this: VmanWorld, snapshot: string, vm: string) {
  const s = notedSnapshot(this, vm, snapshot);
  const f = findingAbout(lastReport(this), 'snapshot-files-missing', s.id);
  expect({ type: f.resource_type, vm: f.vm_id, path: f.path }, 'what, of which VM, where').to.deep.equal({ type: 'snapshot', vm: this.idOf(vm), path: s.dir });
  expect(f.recorded, 'what the database says').to.match(new RegExp(`^snapshot ${snapshot} of VM ${vm}, disks only`));
  expect(f.observed, 'what the observer saw').to.equal('no such folder');
});

Then('the report has no findings', function (this: VmanWorld) {
  expect(lastReport(this).findings, 'findings').to.deep.equal([]);
});

Then('within {int} seconds the latest periodic report says disk {string} has no file', async function (this: VmanWorld, seconds: number, name: string) {
  await waitForPeriodicFinding(this, 'disk-file-missing', this.idOf(name), seconds * 1000);
});

Then('the hand-started QEMU is still running', async function (this: VmanWorld) {
  expect(await isAlive(this.noted('handQemuPid', 'a QEMU started by hand')), 'hand-started QEMU alive').to.equal(true);
});

Then('the hand-made disk file is still there', async function (this: VmanWorld) {
  await access(this.noted('handDiskFile', 'a disk file made by hand'));
});

When("the QEMU of {string} is given the disk {string} behind vman's back", async function (this: VmanWorld, vm: string, disk: string) {
  const owner = await recordedVm(this, vm);
  const d = await recordedDisk(this, disk);
  this.diskNoted(disk).sha256 = await sha256File(d.path);
  await plugDiskBehindVmansBack(owner.dir, d);
  // The guest takes the device too, as it would after a real attach.
  await waitForGuestDisk(owner.dir, d.id);
});

Then('the report says the QEMU of {string} holds the disk {string}, which is recorded available', function (this: VmanWorld, vm: string, disk: string) {
  const f = findingAbout(lastReport(this), 'qemu-block-unrecorded', this.idOf(disk));
  const names = blockNamesOf(this.idOf(disk));
  expect({ vm: f.vm_id, type: f.resource_type }, 'whose QEMU, and what').to.deep.equal({ vm: this.idOf(vm), type: 'disk' });
  expect(f.observed, 'what the observer saw').to.include(`holds ${[names.device, ...names.nodes].join(', ')}`);
  expect(f.recorded, 'what the database says').to.match(new RegExp(`^disk ${disk} is available, not attached to VM ${vm}$`));
});

Then('the QEMU of {string} holds nothing of the disk {string}', async function (this: VmanWorld, vm: string, disk: string) {
  const view = await qemuBlockView((await recordedVm(this, vm)).dir);
  const id = this.idOf(disk);
  expect([...view.devices, ...view.nodes].filter((n) => n.endsWith(id)), `what QEMU of ${vm} holds of ${disk}`).to.deep.equal([]);
});

Then('the repair says it took the device and both nodes of {string} out of the QEMU of {string}', function (this: VmanWorld, disk: string, vm: string) {
  const repair = this.noted('repairAnswer', 'an answer to a repair');
  const names = blockNamesOf(this.idOf(disk));
  expect(repair.removed_from_qemu, 'what the repair says it removed').to.deep.equal([{ vm_id: this.idOf(vm), devices: [names.device], nodes: names.nodes }]);
});

Then('the file of the disk {string} is unchanged', async function (this: VmanWorld, disk: string) {
  const d = await recordedDisk(this, disk);
  expect(await sha256File(d.path), `content of ${d.path}`).to.equal(this.diskNoted(disk).sha256);
});

When('a tap device named like a VM\'s is put on the bridge by hand', async function (this: VmanWorld) {
  await putTapOnBridgeByHand(this);
});

When("a DHCP reservation is written into dnsmasq's hosts file by hand", async function (this: VmanWorld) {
  await reserveByHand(this);
});

Then('the report names the hand-made tap device as an orphan of no VM', function (this: VmanWorld) {
  const tap = this.noted('handTap', 'a tap device put on the bridge by hand');
  const f = findingAbout(lastReport(this), 'orphan-tap', tap);
  expect(f.recorded, 'what the database says').to.equal(`no VM record with id vm-${tap.slice(2)}`);
});

Then('the report names the hand-written reservation as an orphan', function (this: VmanWorld) {
  const r = this.noted('handReservation', 'a DHCP reservation written by hand');
  const f = findingAbout(lastReport(this), 'orphan-reservation', r);
  expect(f.observed, 'what dnsmasq was seen to do').to.equal(`dnsmasq reserves ${r.split(' ')[1]} for ${r.split(' ')[0]}`);
});
