import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openDatabase } from '../src/db/database.ts';
import type { VmanDb } from '../src/db/database.ts';
import type { VmState } from '../src/db/types.ts';
import type { Finding, ObserverReport } from '../src/observer/findings.ts';
import { reconcile } from '../src/observer/reconcile.ts';

let dir = '';
let db: VmanDb;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-reconcile-'));
  db = openDatabase(path.join(dir, 'vman.db'));
  db.templates.insert({
    id: 't1', name: 'tiny', cpus: 1, memoryMb: 256, kernelPath: '/k/vmlinuz', initrdPath: null, cmdline: null,
    baseImagePath: null, baseImageFormat: null, builtin: false,
  });
});
afterEach(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

let macs = 0;
function addVm(id: string, state: VmState, pid: number | null = null, address?: string): void {
  macs++;
  db.vms.insert({
    id, name: `n-${id}`, templateId: 't1', state, stateReason: null, pid,
    mac: `52:54:00:00:00:${macs.toString(16).padStart(2, '0')}`, storageDir: path.join(dir, 'vms', id),
  });
  if (address) db.addresses.allocate(address, id);
}

function report(...findings: Finding[]): ObserverReport {
  return { checkedAt: new Date().toISOString(), durationMs: 1, findings, counts: { vms: 0, disks: 0, processes: 0, diskFiles: 0 } };
}

const notRunning = (vmId: string, observed = 'no QEMU process', pid?: number): Finding => ({
  kind: 'vm-not-running', resourceType: 'vm', resourceId: vmId, recorded: 'running', observed, ...(pid !== undefined && { pid }),
});

/** Every row of the tables reconcile may touch, for before/after comparison. */
function dump() {
  return { vms: db.vms.list(), disks: db.disks.list(), addresses: db.addresses.list(), templates: db.templates.list() };
}

describe('reconcile', () => {
  it('marks a VM whose QEMU is gone as error and releases its address; nothing else changes', () => {
    addVm('gone', 'running', 4242, '10.0.2.15');
    addVm('fine', 'running', 4243, '10.0.2.16');
    addVm('off', 'stopped');
    db.disks.insert({ id: 'd1', name: 'data', sizeGb: 1, format: 'qcow2', path: path.join(dir, 'disks', 'd1.qcow2'), state: 'attached', vmId: 'gone', mountPoint: '/dev/vdb' });
    const before = dump();

    const result = reconcile(db, report(notRunning('gone')), { now: () => '2030-01-01T00:00:00.000Z' });

    const reason = 'observer: QEMU process gone (no QEMU process)';
    assert.deepEqual(result, { changed: [{ vmId: 'gone', from: 'running', to: 'error', reason }], releasedAddresses: ['10.0.2.15'] });
    const gone = db.vms.get('gone');
    assert.equal(gone?.state, 'error');
    assert.equal(gone?.stateReason, reason);
    assert.equal(gone?.pid, null);
    assert.equal(gone?.updatedAt, '2030-01-01T00:00:00.000Z');
    assert.equal(db.addresses.getByVm('gone'), undefined);

    // Everything else, including the disk still attached to the failed VM, is as it was.
    const after = dump();
    assert.deepEqual(after.vms.filter((v) => v.id !== 'gone'), before.vms.filter((v) => v.id !== 'gone'));
    assert.deepEqual(after.addresses, before.addresses.filter((a) => a.vmId !== 'gone'));
    assert.deepEqual(after.disks, before.disks);
    assert.deepEqual(after.templates, before.templates);
  });

  it('keeps the pid of a QEMU that is alive but not running', () => {
    addVm('halted', 'running', 77, '10.0.2.20');
    const result = reconcile(db, report(notRunning('halted', 'QEMU is shutdown', 77)));
    assert.equal(result.changed[0]?.reason, 'observer: QEMU process gone (QEMU is shutdown)');
    assert.equal(db.vms.get('halted')?.state, 'error');
    assert.equal(db.vms.get('halted')?.pid, 77);
  });

  it('releases an address whose VM is not running', () => {
    addVm('off', 'stopped', null, '10.0.2.30');
    addVm('on', 'running', 5, '10.0.2.31');
    const f: Finding = { kind: 'address-without-running-vm', resourceType: 'address', resourceId: '10.0.2.30', recorded: '', observed: '' };
    const result = reconcile(db, report(f));
    assert.deepEqual(result, { changed: [], releasedAddresses: ['10.0.2.30'] });
    assert.equal(db.addresses.getByVm('off'), undefined);
    assert.equal(db.vms.get('off')?.state, 'stopped');
    assert.equal(db.addresses.getByVm('on')?.address, '10.0.2.31');
  });

  it('leaves rows that changed since the report alone', () => {
    addVm('restarted', 'stopped', null, '10.0.2.40');
    addVm('stopped-meanwhile', 'stopped');
    db.vms.setState('restarted', 'running', { pid: 9 });
    const addrFinding: Finding = { kind: 'address-without-running-vm', resourceType: 'address', resourceId: '10.0.2.40', recorded: '', observed: '' };
    const before = dump();
    const result = reconcile(db, report(notRunning('stopped-meanwhile'), addrFinding, notRunning('no-such-vm')));
    assert.deepEqual(result, { changed: [], releasedAddresses: [] });
    assert.deepEqual(dump(), before);
  });

  it('ignores orphans and missing files: it never kills or deletes', () => {
    addVm('x', 'running', 1, '10.0.2.50');
    const file = path.join(dir, 'stray.qcow2');
    fs.writeFileSync(file, '');
    const before = dump();
    const result = reconcile(db, report(
      { kind: 'orphan-process', resourceType: 'process', resourceId: String(process.pid), recorded: '', observed: '', pid: process.pid },
      { kind: 'orphan-disk-file', resourceType: 'file', resourceId: file, recorded: '', observed: '', path: file },
      { kind: 'vm-process-unexpected', resourceType: 'vm', resourceId: 'x', recorded: '', observed: '', pid: process.pid },
    ));
    assert.deepEqual(result, { changed: [], releasedAddresses: [] });
    assert.deepEqual(dump(), before);
    assert.ok(fs.existsSync(file));
  });

  it('writes nothing at all when one change fails', () => {
    addVm('a', 'running', 1, '10.0.2.60');
    addVm('b', 'running', 2, '10.0.2.61');
    const before = dump();
    // A trigger standing in for a failure half-way: the second VM's update aborts.
    db.db.exec(`CREATE TRIGGER fail_b BEFORE UPDATE ON vms WHEN NEW.id = 'b' BEGIN SELECT RAISE(ABORT, 'boom'); END`);
    assert.throws(() => reconcile(db, report(notRunning('a'), notRunning('b'))), /boom/);
    assert.deepEqual(dump(), before);
  });
});
