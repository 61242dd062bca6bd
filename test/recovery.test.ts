// Start-up recovery over the dry-run operator: the records a dead vman left
// (its intents, the rows and files as they stood at the moment it died) are
// finished or undone when the next vman starts. The real crash points are
// proven on real QEMU by features/crash.feature; this pins the decisions.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Intent } from '../src/db/types.ts';
import { DryRunOperator, type DryRunVm } from '../src/operator/dry-run-operator.ts';
import { dryVman, type ApiResponse, type DryVman } from './helpers/dry-vman.ts';

function ok(res: ApiResponse, status = 200): any {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw}`);
  return res.body;
}

/** What a dead vman leaves: its intent, under an owner that is no longer running. */
function leaveIntent(v: DryVman, intent: Intent): void {
  v.vman.db.intents.insert(intent, 'a-vman-that-died');
}

async function restart(v: DryVman): Promise<DryVman> {
  await v.vman.close();
  return v.reopen();
}

const intents = (v: DryVman) => v.rows('SELECT op FROM intents') as Array<{ op: string }>;
const row = (v: DryVman, table: 'vms' | 'disks', id: string) => v.rows(`SELECT * FROM ${table} WHERE id = ?`, id)[0] as Record<string, any> | undefined;
const addresses = (v: DryVman) => v.rows('SELECT address, vm_id FROM address_allocations');

async function running(v: DryVman, name = 'app'): Promise<{ id: string; qemu: DryRunVm }> {
  const vm = ok(await v.api('POST', '/api/v1/vms', { name, template: 'small' }), 201);
  ok(await v.api('POST', `/api/v1/vms/${vm.id}/start`));
  return { id: vm.id, qemu: v.operator.vms.get(vm.id)! };
}

describe('recovery: what an operation had begun to add is taken back', () => {
  it('a start cut short: its QEMU ends, the address goes, the VM is back as it was', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    // As the dead vman left it: starting, with an address, its QEMU up, from `stopped`. Written as the row
    // stood (running → starting is no transition vman makes: the wrapped repository refuses it).
    v.vman.db.db.prepare("UPDATE vms SET state = 'starting', pid = ? WHERE id = ?").run(qemu.pid, id);
    leaveIntent(v, { op: 'vm.start', vmId: id, from: { state: 'stopped', reason: null } });

    const b = await restart(v);
    assert.equal(qemu.alive, false, 'the QEMU of the cut-short start was ended');
    assert.deepEqual({ state: row(b, 'vms', id)?.state, pid: row(b, 'vms', id)?.pid }, { state: 'stopped', pid: null });
    assert.deepEqual(addresses(b), []);
    assert.deepEqual(intents(b), []);
    ok(await b.api('POST', `/api/v1/vms/${id}/start`));
  });

  it('a start cut short goes back to error with its old reason, when it started from error', async (t) => {
    const v = await dryVman(t);
    const vm = ok(await v.api('POST', '/api/v1/vms', { name: 'app', template: 'small' }), 201);
    v.vman.db.vms.setState(vm.id, 'starting', {});
    v.vman.db.addresses.allocate('10.0.2.15', vm.id);
    leaveIntent(v, { op: 'vm.start', vmId: vm.id, from: { state: 'error', reason: 'it crashed before' } });
    const b = await restart(v);
    assert.deepEqual({ state: row(b, 'vms', vm.id)?.state, reason: row(b, 'vms', vm.id)?.state_reason }, { state: 'error', reason: 'it crashed before' });
    assert.deepEqual(addresses(b), []);
  });

  it('a VM create cut short: the folder it made goes', async (t) => {
    const v = await dryVman(t);
    const dir = path.join(v.config.storagePath, 'vms', 'vm-0123456789ab');
    fs.mkdirSync(dir, { recursive: true });
    leaveIntent(v, { op: 'vm.create', vmId: 'vm-0123456789ab', dir });
    const b = await restart(v);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(intents(b), []);
  });

  it('a disk create cut short: the image goes, under its temporary name or its own', async (t) => {
    const v = await dryVman(t);
    const disks = path.join(v.config.storagePath, 'disks');
    const file = path.join(disks, 'disk-0123456789ab.qcow2');
    const pending = path.join(disks, '.disk-0123456789ab.qcow2.aaaaaaaaaaaa.tmp');
    fs.writeFileSync(file, 'image');
    leaveIntent(v, { op: 'disk.create', diskId: 'disk-0123456789ab', file, pending });
    const b = await restart(v);
    assert.deepEqual(fs.readdirSync(disks), []);
    assert.equal(row(b, 'disks', 'disk-0123456789ab'), undefined);
    assert.deepEqual(intents(b), []);
  });

  it('a hot attach cut short: QEMU lets go of the disk, which stays available', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    qemu.disks.set(disk.id, '/dev/vdb'); // QEMU took it; the row was never written
    leaveIntent(v, { op: 'disk.attach', diskId: disk.id, vmId: id, hot: true });
    const b = await restart(v);
    assert.equal(qemu.disks.has(disk.id), false);
    assert.equal(row(b, 'disks', disk.id)?.state, 'available');
    assert.equal(row(b, 'vms', id)?.state, 'running', 'the VM itself was adopted, untouched');
    ok(await b.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: id }));
  });
});

describe('recovery: what an operation had begun to take away is finished', () => {
  it('a stop cut short: QEMU is stopped, the VM recorded stopped with no address', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    v.vman.db.vms.setState(id, 'stopping', {});
    leaveIntent(v, { op: 'vm.stop', vmId: id });
    const b = await restart(v);
    assert.equal(qemu.alive, false);
    assert.deepEqual({ state: row(b, 'vms', id)?.state, pid: row(b, 'vms', id)?.pid }, { state: 'stopped', pid: null });
    assert.deepEqual(addresses(b), []);
    ok(await b.api('POST', `/api/v1/vms/${id}/start`));
  });

  it('a delete cut short in its stop: the VM goes entirely, its disk stays, available', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: id }));
    const dir = row(v, 'vms', id)!.storage_dir as string;
    v.vman.db.vms.setState(id, 'stopping', {});
    leaveIntent(v, { op: 'vm.delete', vmId: id, dir });
    leaveIntent(v, { op: 'vm.stop', vmId: id });
    const b = await restart(v);
    assert.equal(qemu.alive, false);
    assert.equal(row(b, 'vms', id), undefined);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual({ state: row(b, 'disks', disk.id)?.state, vm: row(b, 'disks', disk.id)?.vm_id }, { state: 'available', vm: null });
    assert.deepEqual(intents(b), []);
  });

  it('a disk delete cut short after the file was moved aside: record and file go', async (t) => {
    const v = await dryVman(t);
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    const pending = path.join(path.dirname(disk.path), `.${path.basename(disk.path)}.aaaaaaaaaaaa.tmp`);
    fs.renameSync(disk.path, pending);
    leaveIntent(v, { op: 'disk.delete', diskId: disk.id, file: disk.path, pending });
    const b = await restart(v);
    assert.equal(row(b, 'disks', disk.id), undefined);
    assert.deepEqual(fs.readdirSync(path.dirname(disk.path)), []);
    ok(await b.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
  });

  it('a hot detach cut short: QEMU lets go, the disk is recorded available', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: id }));
    leaveIntent(v, { op: 'disk.detach', diskId: disk.id, vmId: id, hot: true });
    const b = await restart(v);
    assert.equal(qemu.disks.has(disk.id), false);
    assert.deepEqual({ state: row(b, 'disks', disk.id)?.state, mount: row(b, 'disks', disk.id)?.mount_point }, { state: 'available', mount: null });
  });
});

describe('recovery of snapshots', () => {
  const snapshotIds = (v: DryVman) => v.rows('SELECT id FROM snapshots') as Array<{ id: string }>;

  it('a snapshot of a VM at rest cut short: its folder goes, the VM is as it was', async (t) => {
    const v = await dryVman(t);
    const vm = ok(await v.api('POST', '/api/v1/vms', { name: 'app', template: 'small' }), 201);
    const dir = path.join(vm.storage_dir, 'snapshots', 'snap-0123456789ab');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'half-a-copy.qcow2'), 'partial');
    leaveIntent(v, { op: 'vm.snapshot', vmId: vm.id, snapshotId: 'snap-0123456789ab', dir, running: false });
    const b = await restart(v);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(snapshotIds(b), []);
    assert.equal(row(b, 'vms', vm.id)?.state, 'created');
    assert.deepEqual(intents(b), []);
    ok(await b.api('POST', `/api/v1/vms/${vm.id}/snapshots`, { name: 'again' }), 201);
  });

  it('a snapshot of a running VM cut short with its guest paused: the folder goes, the guest is resumed and the VM runs on', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    const dir = path.join(row(v, 'vms', id)!.storage_dir as string, 'snapshots', 'snap-0123456789ab');
    // As the dead vman left it: saving, the guest paused, half a state written.
    v.vman.db.vms.setState(id, 'saving', {});
    await qemu.pause();
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'memory.state'), '{"addr');
    leaveIntent(v, { op: 'vm.snapshot', vmId: id, snapshotId: 'snap-0123456789ab', dir, running: true });

    const b = await restart(v);
    assert.deepEqual({ alive: qemu.alive, paused: qemu.paused }, { alive: true, paused: false }, 'the same QEMU, its guest running again');
    assert.deepEqual({ state: row(b, 'vms', id)?.state, pid: row(b, 'vms', id)?.pid }, { state: 'running', pid: qemu.pid });
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(snapshotIds(b), []);
    assert.deepEqual(intents(b), []);
    // vman holds it again: a snapshot and a stop work.
    assert.equal(ok(await b.api('POST', `/api/v1/vms/${id}/snapshots`, { name: 'warm' }), 201).with_memory, true);
    ok(await b.api('POST', `/api/v1/vms/${id}/stop`));
    assert.equal(qemu.alive, false);
  });

  it('a snapshot of a running VM cut short, its QEMU gone since: the folder goes, the VM is in error', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id } = await running(v);
    const dir = path.join(row(v, 'vms', id)!.storage_dir as string, 'snapshots', 'snap-0123456789ab');
    v.vman.db.vms.setState(id, 'saving', {});
    fs.mkdirSync(dir, { recursive: true });
    leaveIntent(v, { op: 'vm.snapshot', vmId: id, snapshotId: 'snap-0123456789ab', dir, running: true });
    await v.vman.close();
    const b = await v.reopen({ operator: new DryRunOperator() });
    assert.deepEqual({ state: row(b, 'vms', id)?.state, pid: row(b, 'vms', id)?.pid }, { state: 'error', pid: null });
    assert.match(row(b, 'vms', id)?.state_reason, /snapshot/);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(addresses(b), []);
    assert.deepEqual(intents(b), []);
  });

  it('a snapshot delete cut short: its row and its folder go', async (t) => {
    const v = await dryVman(t);
    const vm = ok(await v.api('POST', '/api/v1/vms', { name: 'app', template: 'small' }), 201);
    const s = ok(await v.api('POST', `/api/v1/vms/${vm.id}/snapshots`, { name: 'cold' }), 201);
    const dir = path.join(vm.storage_dir, 'snapshots', s.id);
    assert.ok(fs.existsSync(dir));
    leaveIntent(v, { op: 'vm.snapshot-delete', vmId: vm.id, snapshotId: s.id, dir });
    const b = await restart(v);
    assert.deepEqual(snapshotIds(b), []);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(intents(b), []);
    ok(await b.api('POST', `/api/v1/vms/${vm.id}/snapshots`, { name: 'cold' }), 201);
  });

  it('a revert cut short after its disks were being put back: the disks are the snapshot\'s, the VM stopped', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id, qemu } = await running(v);
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: id }));
    const s = ok(await v.api('POST', `/api/v1/vms/${id}/snapshots`, { name: 'warm' }), 201);
    const copy = path.join(row(v, 'vms', id)!.storage_dir as string, 'snapshots', s.id, `${disk.id}.qcow2`);
    fs.appendFileSync(disk.path, 'written after the snapshot');
    // As the dead vman left it: restoring, the old QEMU not yet ended.
    v.vman.db.vms.setState(id, 'restoring', {});
    leaveIntent(v, { op: 'vm.revert', vmId: id, snapshotId: s.id, from: { state: 'running' } });
    const b = await restart(v);
    assert.equal(qemu.alive, false);
    assert.deepEqual(fs.readFileSync(disk.path), fs.readFileSync(copy));
    assert.equal(row(b, 'vms', id)?.state, 'stopped');
    assert.match(row(b, 'vms', id)?.state_reason, /revert to snapshot warm was cut short/);
    assert.deepEqual(addresses(b), []);
    assert.deepEqual(intents(b), []);
  });
});

describe('recovery and the observer', () => {
  it('the start-up report names the unfinished intent; after recovery a check finds nothing', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id } = await running(v);
    v.vman.db.vms.setState(id, 'stopping', {});
    leaveIntent(v, { op: 'vm.stop', vmId: id });
    const b = await restart(v);
    const startup = ok(await b.api('GET', '/api/v1/observer/report'));
    assert.deepEqual(startup.findings.filter((f: any) => f.kind === 'intent-unfinished').map((f: any) => f.vm_id), [id]);
    const now = ok(await b.api('POST', '/api/v1/observer/check'));
    assert.deepEqual(now.findings, []);
  });
});

describe('recovery that cannot settle an intent', () => {
  it('leaves it recorded, still serves, and the observer reports it', async (t) => {
    const v = await dryVman(t);
    const file = path.join(v.config.storagePath, 'disks', 'disk-0123456789ab.qcow2');
    fs.mkdirSync(path.join(file, 'not-a-file'), { recursive: true }); // rm cannot take a folder for a file
    leaveIntent(v, { op: 'disk.delete', diskId: 'disk-0123456789ab', file, pending: `${file}.x.tmp` });
    const b = await restart(v);
    assert.deepEqual(intents(b), [{ op: 'disk.delete' }]);
    const report = ok(await b.api('POST', '/api/v1/observer/check'));
    assert.deepEqual(report.findings.filter((f: any) => f.kind === 'intent-unfinished').map((f: any) => f.recorded.split(' began')[0]), ['disk.delete of disk-0123456789ab']);
  });
});

describe('one vman per storage folder', () => {
  it('a second vman on the same storage is refused, naming the first, and changes nothing', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const { id } = await running(v);
    const before = v.rows('SELECT * FROM vms');
    await assert.rejects(v.reopen(), (err: Error) => {
      assert.match(err.message, new RegExp(`in use by vman pid ${process.pid}`));
      return true;
    });
    assert.deepEqual(v.rows('SELECT * FROM vms'), before);
    assert.equal(ok(await v.api('GET', `/api/v1/vms/${id}`)).state, 'running');
  });
});
