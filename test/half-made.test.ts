import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/db/database.ts';
import { removeHalfMade } from '../src/services/half-made.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'vman-halfmade-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('removing what an interrupted vman left half-made', () => {
  it('removes qemu-img temp files and VM folders without a row, and nothing else', async () => {
    const s = path.join(root, 'a');
    for (const d of ['disks', 'vms/vm-000000000001', 'vms/vm-000000000002', 'vms/not an id']) mkdirSync(path.join(s, d), { recursive: true });
    writeFileSync(path.join(s, 'disks', '.disk-aaaaaaaaaaaa.qcow2.0123456789ab.tmp'), '');
    writeFileSync(path.join(s, 'disks', 'disk-aaaaaaaaaaaa.qcow2'), '');
    writeFileSync(path.join(s, 'disks', 'notes.txt'), '');
    const db = openDatabase(path.join(s, 'vman.db'));
    try {
      db.templates.insert({ id: 't', name: 't', cpus: 1, memoryMb: 64, kernelPath: '/k', initrdPath: null, cmdline: null, baseImagePath: null, baseImageFormat: null, builtin: false });
      db.vms.insert({ id: 'vm-000000000001', name: 'kept', templateId: 't', state: 'created', stateReason: null, pid: null, mac: '52:54:00:00:00:01', storageDir: path.join(s, 'vms/vm-000000000001') });
      const removed = await removeHalfMade(db, s);
      assert.deepEqual(removed.sort(), [
        path.join(s, 'disks', '.disk-aaaaaaaaaaaa.qcow2.0123456789ab.tmp'),
        path.join(s, 'vms', 'vm-000000000002'),
      ]);
      assert.ok(existsSync(path.join(s, 'disks', 'disk-aaaaaaaaaaaa.qcow2')), 'a finished disk file stays (the observer judges it)');
      assert.ok(existsSync(path.join(s, 'disks', 'notes.txt')));
      assert.ok(existsSync(path.join(s, 'vms', 'vm-000000000001')), 'a VM with a row keeps its folder');
      assert.ok(existsSync(path.join(s, 'vms', 'not an id')), 'only folders named like vman ids are vman\'s');
    } finally {
      db.close();
    }
  });

  it('finishes a disk whose row was written but whose file was not yet moved into place', async () => {
    const s = path.join(root, 'b');
    mkdirSync(path.join(s, 'disks'), { recursive: true });
    mkdirSync(path.join(s, 'vms'), { recursive: true });
    const file = path.join(s, 'disks', 'disk-bbbbbbbbbbbb.qcow2');
    writeFileSync(path.join(s, 'disks', '.disk-bbbbbbbbbbbb.qcow2.0123456789ab.tmp'), 'image');
    const db = openDatabase(path.join(s, 'vman.db'));
    try {
      db.disks.insert({ id: 'disk-bbbbbbbbbbbb', name: 'b', sizeGb: 1, format: 'qcow2', path: file, state: 'available', vmId: null, mountPoint: null });
      assert.deepEqual(await removeHalfMade(db, s), []);
      assert.ok(existsSync(file), 'the disk file is in place');
      assert.ok(!existsSync(path.join(s, 'disks', '.disk-bbbbbbbbbbbb.qcow2.0123456789ab.tmp')));
    } finally {
      db.close();
    }
  });
});
