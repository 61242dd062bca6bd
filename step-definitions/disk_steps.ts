// Steps about disks managed through vman's API, checked through the database
// file, the disk files and qemu-img, QMP on the VM's second monitor, and the
// guest's own view through its agent.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access } from 'node:fs/promises';
import { GUEST_STEP } from '../support/timeouts.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { guestFormatsAndWrites, guestReadsNote, rootFsState } from '../support/real-guest.ts';
import { qemuBlockView } from '../support/qmp-reader.ts';
import {
  attachDisk, createAttachedDisk, createDeletedDisk, createDisk, deleteDisk, detachDisk, getDisk, guestReadsMarker, guestWritesMarker, imageReadsMarker,
  lastDiskRequest, requestDisk, type DiskJson,
} from '../support/disk-tasks.ts';
import {
  describeGuestDisks, diskFiles, diskNodeNames, expectedDiskFile, GIB, guestDisks, imageFacts, interruptions, recordedDisk,
  recordedDiskOrNone, waitForSamplesAfter, watchVm, type VmSample,
} from '../support/disk-facts.ts';
import { createVm, deleteVm, expectStatus } from '../support/vm-tasks.ts';
import { recordedVm } from '../support/vm-facts.ts';


// --- Given -------------------------------------------------------------------

Given('a {int} GB disk {string}', async function (this: VmanWorld, sizeGb: number, name: string) {
  await createDisk(this, name, sizeGb);
});

Given('a {int} GB disk {string} attached to {string}', GUEST_STEP, async function (this: VmanWorld, sizeGb: number, disk: string, vm: string) {
  await createAttachedDisk(this, disk, sizeGb, vm);
});

Given('a disk {string} that has since been deleted', async function (this: VmanWorld, name: string) {
  await createDeletedDisk(this, name);
});

Given('a VM {string} that has since been deleted', async function (this: VmanWorld, name: string) {
  await createVm(this, name, 'small');
  expectStatus(await deleteVm(this, name), 204, `delete the VM ${name}`);
});

Given('the VM {string} is being watched through its guest agent and QMP', async function (this: VmanWorld, name: string) {
  const watch = watchVm((await recordedVm(this, name)).dir);
  this.vmNoted(name).watch = watch;
  // Stopped by the first After hook if a step fails before the Then that stops it (support/hooks.ts).
  this.watches.push(watch);
  await waitForSamplesAfter(watch, 0, 2);
});

// --- When --------------------------------------------------------------------

When('a {int} GB disk {string} is created', async function (this: VmanWorld, sizeGb: number, name: string) {
  await createDisk(this, name, sizeGb);
});

When('the disk {string} is attached to {string}', GUEST_STEP, async function (this: VmanWorld, disk: string, vm: string) {
  const recorded = await recordedVm(this, vm);
  if (recorded.state === 'running') (this.diskNoted(disk).guestDisksBefore ??= new Map()).set(vm, await guestDisks(recorded.dir));
  expectStatus(await attachDisk(this, disk, vm), 200, `attach the disk ${disk} to ${vm}`);
});

When('the disk {string} is detached', GUEST_STEP, async function (this: VmanWorld, disk: string) {
  expectStatus(await detachDisk(this, disk), 200, `detach the disk ${disk}`);
});

When('the disk {string} is deleted', async function (this: VmanWorld, disk: string) {
  expectStatus(await deleteDisk(this, disk), 204, `delete the disk ${disk}`);
});

When('the guest of {string} writes a marker to the disk {string}', async function (this: VmanWorld, vm: string, disk: string) {
  this.diskNoted(disk).guestMarker = await guestWritesMarker((await recordedVm(this, vm)).dir, this.idOf(disk));
});

// Requests that may be refused: the answer is checked by a Then step.

When('the operator tries to create a disk {string} of {} GB', async function (this: VmanWorld, name: string, size: string) {
  await requestDisk(this, name, jsonValue(size));
});

When('the operator tries to look up the disk {string}', async function (this: VmanWorld, disk: string) {
  await getDisk(this, disk);
});

When('the operator tries to attach the disk {string} to {string}', async function (this: VmanWorld, disk: string, vm: string) {
  await attachDisk(this, disk, vm);
});

When('the operator tries to detach the disk {string}', async function (this: VmanWorld, disk: string) {
  await detachDisk(this, disk);
});

When('the operator tries to delete the disk {string}', async function (this: VmanWorld, disk: string) {
  await deleteDisk(this, disk);
});

// --- Then: QMP -----------------------------------------------------------------

Then('QMP lists the disk {string} on {string}', async function (this: VmanWorld, disk: string, vm: string) {
  const { node, fileNode, device } = diskNodeNames(this.idOf(disk));
  const view = await qemuBlockView((await recordedVm(this, vm)).dir);
  expect(view.devices, 'block devices in QMP query-block').to.include(device);
  expect(view.nodes, 'block nodes in QMP query-named-block-nodes').to.include.members([node, fileNode]);
  expect(view.fileOf[device], `the image file QMP says ${device} reads`).to.equal((await recordedDisk(this, disk)).path);
});

Then('QMP no longer lists the disk {string} on {string}', async function (this: VmanWorld, disk: string, vm: string) {
  const { node, fileNode, device } = diskNodeNames(this.idOf(disk));
  const view = await qemuBlockView((await recordedVm(this, vm)).dir);
  expect(view.devices, 'block devices in QMP query-block').to.not.include(device);
  expect(view.nodes.filter((n) => n === node || n === fileNode), 'the disk\'s block nodes in QMP query-named-block-nodes').to.deep.equal([]);
  expect(Object.values(view.fileOf), 'image files QEMU still reads').to.not.include(expectedDiskFile(this, this.idOf(disk)));
});

// --- Then: the guest -------------------------------------------------------------

Then('the guest of {string} sees {string} as a new disk of {int} GB', async function (this: VmanWorld, vm: string, disk: string, sizeGb: number) {
  const { seen, devices } = await expectGuestDisk(this, vm, disk, sizeGb);
  const before = this.diskNoted(disk).guestDisksBefore?.get(vm);
  if (!before) throw new Error(`the guest's disks of ${vm} were not noted before ${disk} was attached`);
  expect(before.map((d) => d.name), `devices before the attach: ${describeGuestDisks(before)}`).to.not.include(seen.name);
  expect(devices.length, `devices now: ${describeGuestDisks(devices)}`).to.equal(before.length + 1);
});

Then('the guest of {string} sees {string} as a disk of {int} GB', async function (this: VmanWorld, vm: string, disk: string, sizeGb: number) {
  await expectGuestDisk(this, vm, disk, sizeGb);
});

/** The guest's own device for the disk (found by its serial, the disk id), of the given size. */
async function expectGuestDisk(world: VmanWorld, vm: string, disk: string, sizeGb: number) {
  const id = world.idOf(disk);
  const devices = await guestDisks((await recordedVm(world, vm)).dir);
  const seen = devices.find((d) => d.serial === id);
  expect(seen, `a guest block device with serial ${id}; the guest sees ${describeGuestDisks(devices)}`).to.not.equal(undefined);
  expect(seen!.sizeBytes, `size of ${seen!.path} in bytes`).to.equal(sizeGb * GIB);
  return { seen: seen!, devices };
}

Then('the guest of {string} no longer sees the disk {string}', async function (this: VmanWorld, vm: string, disk: string) {
  const id = this.idOf(disk);
  const devices = await guestDisks((await recordedVm(this, vm)).dir);
  expect(devices.filter((d) => d.serial === id), `guest devices: ${describeGuestDisks(devices)}`).to.deep.equal([]);
});

Then('the file of the disk {string} holds the marker its guest wrote', async function (this: VmanWorld, disk: string) {
  const marker = this.diskNoted(disk).guestMarker;
  if (marker === undefined) throw new Error(`no marker was written to ${disk} in this scenario`);
  const row = await recordedDisk(this, disk);
  expect(await imageReadsMarker(String(row.path), marker.length), `what the image of ${disk} holds where the marker was written`).to.equal(marker);
});

Then('the guest of {string} reads the marker back from the disk {string}', async function (this: VmanWorld, vm: string, disk: string) {
  const marker = this.diskNoted(disk).guestMarker;
  if (marker === undefined) throw new Error(`no marker was written to ${disk} in this scenario`);
  const read = await guestReadsMarker((await recordedVm(this, vm)).dir, this.idOf(disk), marker.length);
  expect(read, `what the guest of ${vm} reads where the marker was written`).to.equal(marker);
});

Then('throughout, the guest agent of {string} answered, its uptime kept growing and QMP reported it running', async function (this: VmanWorld, vm: string) {
  const watch = this.vmNoted(vm).watch;
  if (!watch) throw new Error(`${vm} was not watched in this scenario`);
  const attach = lastDiskRequest(this, 'attach');
  const detach = lastDiskRequest(this, 'detach');
  await waitForSamplesAfter(watch, detach.answeredAt, 2).finally(() => watch.stop());
  const samples = await watch.stop();
  const from = samples[0]?.startedAt ?? attach.sentAt;
  this.attach(describeSamples(samples, from, [['attach sent', attach.sentAt], ['attach answered', attach.answeredAt], ['detach sent', detach.sentAt], ['detach answered', detach.answeredAt]]),
    { mediaType: 'text/plain', fileName: `watch of ${vm}` });
  expect(watch.expired, 'the watch ran out of time before it was stopped').to.equal(false);
  expect(interruptions(samples, { from: attach.sentAt, to: attach.answeredAt }, { from: detach.sentAt, to: detach.answeredAt })).to.deep.equal([]);
});

// --- Then: what vman recorded and stored -------------------------------------------

Then('the disk {string} is recorded as attached to {string} at the device its guest reports', async function (this: VmanWorld, disk: string, vm: string) {
  const { owner, seen } = await expectRecordedAtGuestDevice(this, disk, vm);
  const answer = lastDiskRequest(this, 'attach', disk).body as DiskJson;
  expect({ state: answer.state, vm_id: answer.vm_id, mount_point: answer.mount_point }, 'vman\'s answer to the attach')
    .to.deep.equal({ state: 'attached', vm_id: owner.id, mount_point: seen.path });
});

// A disk attached while its VM was stopped learns its device at the next start.
Then('the disk {string} is recorded as attached to {string} at the device its guest now reports', async function (this: VmanWorld, disk: string, vm: string) {
  await expectRecordedAtGuestDevice(this, disk, vm);
});

async function expectRecordedAtGuestDevice(world: VmanWorld, disk: string, vm: string) {
  const recorded = await recordedDisk(world, disk);
  const owner = await recordedVm(world, vm);
  expect(recorded.state, 'disk state in the database').to.equal('attached');
  expect(recorded.vmId, 'vm_id in the database').to.equal(owner.id);
  const devices = await guestDisks(owner.dir);
  const seen = devices.find((d) => d.serial === recorded.id);
  expect(seen, `a guest device with serial ${recorded.id}; the guest sees ${describeGuestDisks(devices)}`).to.not.equal(undefined);
  expect(recorded.mountPoint, 'mount_point in the database').to.equal(seen!.path);
  return { owner, seen: seen! };
}

Then('the disk {string} is recorded as available with no mount point', async function (this: VmanWorld, disk: string) {
  const recorded = await recordedDisk(this, disk);
  expect({ state: recorded.state, vm_id: recorded.vmId, mount_point: recorded.mountPoint }, 'the disk in the database')
    .to.deep.equal({ state: 'available', vm_id: null, mount_point: null });
  const answer = lastDiskRequest(this, 'detach', disk).body as DiskJson;
  expect({ state: answer.state, vm_id: answer.vm_id, mount_point: answer.mount_point }, 'vman\'s answer to the detach')
    .to.deep.equal({ state: 'available', vm_id: null, mount_point: null });
});

Then('the disk {string} is recorded as an available qcow2 disk of {int} GB at its file', async function (this: VmanWorld, disk: string, sizeGb: number) {
  const recorded = await recordedDisk(this, disk);
  expect(recorded, 'the disk in the database').to.deep.include({
    sizeGb, format: 'qcow2', state: 'available', vmId: null, mountPoint: null, path: expectedDiskFile(this, this.idOf(disk)),
  });
});

Then('the file of the disk {string} is a qcow2 image of {int} GB', async function (this: VmanWorld, disk: string, sizeGb: number) {
  const info = await imageFacts(expectedDiskFile(this, this.idOf(disk)));
  expect(info.format, 'qemu-img format').to.equal('qcow2');
  expect(info.virtualSizeBytes, 'qemu-img virtual size in bytes').to.equal(sizeGb * GIB);
});

Then('the file of the disk {string} is sparse', async function (this: VmanWorld, disk: string) {
  const info = await imageFacts(expectedDiskFile(this, this.idOf(disk)));
  expect(info.actualSizeBytes, `bytes the file occupies on disk, for a virtual size of ${info.virtualSizeBytes}`)
    .to.be.below(info.virtualSizeBytes / 100);
});

Then('the file of the disk {string} is gone', async function (this: VmanWorld, disk: string) {
  const id = this.idOf(disk);
  const file = expectedDiskFile(this, id);
  expect(await access(file).then(() => true, () => false), `${file} exists`).to.equal(false);
  expect((await diskFiles(this)).map((f) => f.name).filter((n) => n.includes(id)), 'files in the disk folder named for the disk').to.deep.equal([]);
});

Then('the database has no record of the disk {string}', async function (this: VmanWorld, disk: string) {
  expect(await recordedDiskOrNone(this, disk), 'the disk row by name').to.equal(undefined);
  expect(await this.db().one('SELECT id FROM disks WHERE id = ?', [this.idOf(disk)]), 'the disk row by id').to.equal(undefined);
});

/** A size as the Examples table writes it: 0, -1, 1.5, "ten"; anything else is sent as text. */
function jsonValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describeSamples(samples: readonly VmSample[], from: number, marks: Array<[string, number]>): string {
  const t = (ms: number): string => `${((ms - from) / 1000).toFixed(3)} s`;
  const lines = samples.map((s) =>
    `${t(s.startedAt)}–${t(s.endedAt)}  ${s.error ? `NO ANSWER: ${s.error}` : `uptime ${s.uptimeSeconds} s, QMP ${s.status}`}`);
  return [...marks.map(([what, at]) => `${what} at ${t(at)}`), '', ...lines].join('\n');
}

When('the guest of {string} makes a file system on the disk {string}, writes a note to it and unmounts it', GUEST_STEP, async function (this: VmanWorld, vm: string, disk: string) {
  this.diskNoted(disk).guestMarker = await guestFormatsAndWrites((await recordedVm(this, vm)).dir, this.idOf(disk));
});

Then('the guest of {string} mounts the disk {string} and finds the note on it', GUEST_STEP, async function (this: VmanWorld, vm: string, disk: string) {
  const note = this.diskNoted(disk).guestMarker;
  if (note === undefined) throw new Error(`no note was written to ${disk} in this scenario`);
  expect(await guestReadsNote((await recordedVm(this, vm)).dir, this.idOf(disk)), `the note the guest of ${vm} reads from ${disk}`).to.equal(note);
});

Then('the root file system of {string} was cleanly unmounted', async function (this: VmanWorld, vm: string) {
  expect(await rootFsState(this.vmNoted(vm).dir, this.storage), 'the ext4 superblock of its root disk').to.deep.equal({ valid: true, needsRecovery: false });
});
