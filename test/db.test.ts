import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openDatabase } from '../src/db/database.ts';
import type { VmanDb } from '../src/db/database.ts';
import { MIGRATIONS, applyMigrations, currentSchemaVersion } from '../src/db/migrations.ts';
import type { NewDisk, NewTemplate, NewVm, VmState } from '../src/db/types.ts';

let tmpDir: string;
let counter = 0;

before(() => {
  tmpDir = fs.mkdtempSync(os.tmpdir() + '/vman-db-test-');
});
after(() => {
  fs.rmSync(tmpDir, { recursive: true, force: true });
});

function freshPath(): string {
  counter++;
  return path.join(tmpDir, `vman-${counter}.db`);
}

function tpl(over: Partial<NewTemplate> = {}): NewTemplate {
  return {
    id: 't1', name: 'tiny', cpus: 1, memoryMb: 256, kernelPath: '/k/vmlinuz', initrdPath: '/k/initrd',
    cmdline: 'console=ttyS0', baseImagePath: null, baseImageFormat: null, builtin: true, ...over,
  };
}

function vm(over: Partial<NewVm> = {}): NewVm {
  return {
    id: 'v1', name: 'web', templateId: 't1', state: 'created', stateReason: null, pid: null,
    mac: '52:54:00:00:00:01', storageDir: '/var/lib/vman/vms/v1', ...over,
  };
}

function disk(over: Partial<NewDisk> = {}): NewDisk {
  return {
    id: 'd1', name: 'data', sizeGb: 10, format: 'qcow2', path: '/var/lib/vman/disks/d1.qcow2',
    state: 'available', vmId: null, mountPoint: null, ...over,
  };
}

function sqliteCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof Database.SqliteError && err.code === code;
}

// SQLite reports RESTRICT violations as SQLITE_CONSTRAINT_TRIGGER, missing parents as _FOREIGNKEY.
function fkViolation(err: unknown): boolean {
  return err instanceof Database.SqliteError && err.code.startsWith('SQLITE_CONSTRAINT') &&
    /FOREIGN KEY constraint failed/.test(err.message);
}

describe('openDatabase and migrations', () => {
  it('applies migrations once and records them', () => {
    const file = freshPath();
    const v = openDatabase(file);
    const rows = v.db.prepare('SELECT version, name, applied_at FROM schema_migrations').all() as {
      version: number; name: string; applied_at: string;
    }[];
    assert.deepEqual(rows.map((r) => [r.version, r.name]), MIGRATIONS.map((m) => [m.version, m.name]));
    assert.ok(!Number.isNaN(Date.parse(rows[0]?.applied_at ?? '')));
    assert.equal(applyMigrations(v.db), 0);
    v.close();

    const again = openDatabase(file);
    assert.equal(applyMigrations(again.db), 0);
    assert.equal(currentSchemaVersion(again.db), MIGRATIONS.at(-1)?.version);
    const count = again.db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number };
    assert.equal(count.n, MIGRATIONS.length);
    again.close();
    again.close(); // idempotent
  });

  it('sets WAL, foreign keys, busy timeout and synchronous', () => {
    const v = openDatabase(freshPath());
    assert.equal(v.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(v.db.pragma('foreign_keys', { simple: true }), 1);
    assert.equal(v.db.pragma('busy_timeout', { simple: true }), 5000);
    assert.equal(v.db.pragma('synchronous', { simple: true }), 1); // NORMAL
    v.close();
  });

  it('refuses a database with a newer schema version', () => {
    const file = freshPath();
    const v = openDatabase(file);
    v.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
      .run(999, 'from-the-future', new Date().toISOString());
    v.close();
    assert.throws(() => openDatabase(file), /schema version 999 is newer/);
  });

  it('applies only missing migrations in order', () => {
    const db = new Database(freshPath());
    const first = MIGRATIONS.slice(0, 1);
    assert.equal(applyMigrations(db, first), 1);
    const extra = [...first, { version: 2, name: 'extra', up: 'CREATE TABLE extra (x INTEGER)' }];
    assert.equal(applyMigrations(db, extra), 1);
    assert.equal(currentSchemaVersion(db), 2);
    assert.throws(() => applyMigrations(db, first), /newer/);
    db.close();
  });

  it('rolls back a failing migration and records nothing', () => {
    const db = new Database(freshPath());
    const bad = [{ version: 1, name: 'bad', up: 'CREATE TABLE ok (x INTEGER); CREATE TABLE broken (' }];
    assert.throws(() => applyMigrations(db, bad));
    assert.equal(currentSchemaVersion(db), 0);
    const t = db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'ok'").get() as { n: number };
    assert.equal(t.n, 0);
    db.close();
  });

  it('rejects unordered migration lists', () => {
    const db = new Database(':memory:');
    const m = { name: 'x', up: 'SELECT 1' };
    assert.throws(() => applyMigrations(db, [{ version: 2, ...m }, { version: 1, ...m }]), /increasing/);
    db.close();
  });
});

describe('migration 4 (snapshots) over a database of version 3', () => {
  const tables = ['templates', 'vms', 'disks', 'address_allocations', 'intents'] as const;
  const dump = (db: Database.Database) => Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all()])) as Record<typeof tables[number], unknown[]>;

  /** A version-3 database, as a vman before snapshots left it: a template, a VM running with an attached disk and an address, an unfinished intent. */
  function version3(file: string): Database.Database {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    assert.equal(applyMigrations(db, MIGRATIONS.slice(0, 3)), 3);
    const now = '2026-01-05T10:00:00.000Z';
    db.prepare(`INSERT INTO templates (id, name, cpus, memory_mb, kernel_path, builtin, created_at, readiness, ssh_keys)
      VALUES ('tpl-1', 'tiny', 1, 256, '/k/vmlinuz', 0, ?, 'ssh', '["ssh-ed25519 AAAA k"]')`).run(now);
    db.prepare(`INSERT INTO vms (id, name, template_id, state, pid, mac, storage_dir, created_at, updated_at, ssh_keys, user_data, ssh_port, guest_address, stop_method)
      VALUES ('vm-1', 'web', 'tpl-1', 'running', 4242, '52:54:00:00:00:01', '/srv/vms/vm-1', ?, ?, '[]', '#cloud-config', 40022, '10.0.2.15', 'agent')`).run(now, now);
    db.prepare(`INSERT INTO vms (id, name, template_id, state, state_reason, mac, storage_dir, created_at, updated_at)
      VALUES ('vm-2', 'db', 'tpl-1', 'error', 'it crashed', '52:54:00:00:00:02', '/srv/vms/vm-2', ?, ?)`).run(now, now);
    db.prepare(`INSERT INTO disks (id, name, size_gb, format, path, state, vm_id, mount_point, created_at, updated_at)
      VALUES ('disk-1', 'data', 1, 'qcow2', '/srv/disks/disk-1.qcow2', 'attached', 'vm-1', '/dev/vdb', ?, ?)`).run(now, now);
    db.prepare("INSERT INTO address_allocations (address, vm_id, allocated_at) VALUES ('10.0.2.15', 'vm-1', ?)").run(now);
    db.prepare(`INSERT INTO intents (op, vm_id, disk_id, detail, owner, started_at)
      VALUES ('disk.attach', 'vm-1', 'disk-1', '{"op":"disk.attach","diskId":"disk-1","vmId":"vm-1","hot":true}', 'a-vman-that-died', ?)`).run(now);
    return db;
  }

  it('keeps every row (no cascade while vms is rebuilt), and foreign keys are on and hold afterwards', () => {
    const db = version3(freshPath());
    const before = dump(db);
    assert.equal(applyMigrations(db, MIGRATIONS.filter((m) => m.version <= 4)), 1);
    assert.equal(currentSchemaVersion(db), 4);
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys on again');
    assert.deepEqual(db.pragma('foreign_key_check'), []);
    const after = dump(db);
    // The VMs keep every column, and have the new ones empty.
    assert.deepEqual(after.vms, before.vms.map((r) => ({ ...(r as object), device_model: null, resume_from: null, origin_snapshot_id: null })));
    for (const t of ['templates', 'disks', 'address_allocations', 'intents'] as const) assert.deepEqual(after[t], before[t], t);
    // The indexes are back.
    const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'vms' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all();
    assert.deepEqual(indexes, ['vms_origin_idx', 'vms_state_idx', 'vms_template_id_idx']);
    db.close();
  });

  it('the rebuilt tables refer and are referred to as before; the new states and intents pass their CHECKs', () => {
    const db = version3(freshPath());
    applyMigrations(db);
    const v = (sql: string, ...params: unknown[]) => db.prepare(sql).run(...params);
    for (const state of ['saving', 'restoring']) v('UPDATE vms SET state = ? WHERE id = ?', state, 'vm-1');
    assert.throws(() => v("UPDATE vms SET state = 'paused' WHERE id = 'vm-1'"), sqliteCode('SQLITE_CONSTRAINT_CHECK'));
    for (const op of ['vm.snapshot', 'vm.revert', 'vm.snapshot-delete']) v("INSERT INTO intents (op, vm_id, detail, owner, started_at) VALUES (?, 'vm-1', '{}', 'x', 'now')", op);
    assert.throws(() => v("INSERT INTO intents (op, detail, owner, started_at) VALUES ('vm.pause', '{}', 'x', 'now')"), sqliteCode('SQLITE_CONSTRAINT_CHECK'));
    // disks → vms: RESTRICT still holds; address_allocations → vms: CASCADE still holds; vms → templates: RESTRICT.
    assert.throws(() => v("DELETE FROM vms WHERE id = 'vm-1'"), fkViolation);
    assert.throws(() => v("DELETE FROM templates WHERE id = 'tpl-1'"), fkViolation);
    v("INSERT INTO address_allocations (address, vm_id, allocated_at) VALUES ('10.0.2.16', 'vm-2', 'now')");
    v("DELETE FROM vms WHERE id = 'vm-2'");
    assert.deepEqual(db.prepare('SELECT address FROM address_allocations').pluck().all(), ['10.0.2.15']);
    // snapshots → vms, and vms → snapshots (a clone's origin): RESTRICT both ways.
    v("INSERT INTO snapshots (id, vm_id, name, with_memory, dir, hardware, disks, created_at) VALUES ('snap-1', 'vm-1', 'warm', 1, '/srv/vms/vm-1/snapshots/snap-1', '{}', '[]', 'now')");
    assert.throws(() => v("INSERT INTO snapshots (id, vm_id, name, with_memory, dir, hardware, disks, created_at) VALUES ('snap-2', 'ghost', 'x', 0, '/d', '{}', '[]', 'now')"), fkViolation);
    v(`INSERT INTO vms (id, name, template_id, state, mac, storage_dir, created_at, updated_at, resume_from, origin_snapshot_id)
      VALUES ('vm-3', 'web-2', 'tpl-1', 'created', '52:54:00:00:00:03', '/srv/vms/vm-3', 'now', 'now', 'snap-1', 'snap-1')`);
    assert.throws(() => v("DELETE FROM snapshots WHERE id = 'snap-1'"), fkViolation);
    assert.throws(() => v("UPDATE vms SET origin_snapshot_id = 'snap-gone' WHERE id = 'vm-3'"), fkViolation);
    assert.deepEqual(db.pragma('foreign_key_check'), []);
    db.close();
  });

  it('a version-3 file opened by openDatabase is upgraded the same way, its rows read through the repositories', () => {
    const file = freshPath();
    version3(file).close();
    const v = openDatabase(file);
    assert.equal(currentSchemaVersion(v.db), MIGRATIONS.at(-1)!.version);
    assert.equal(v.db.pragma('foreign_keys', { simple: true }), 1);
    const web = v.vms.get('vm-1');
    assert.deepEqual({ state: web?.state, pid: web?.pid, sshPort: web?.sshPort, deviceModel: web?.deviceModel, resumeFrom: web?.resumeFrom, origin: web?.originSnapshotId },
      { state: 'running', pid: 4242, sshPort: 40022, deviceModel: null, resumeFrom: null, origin: null });
    assert.equal(v.disks.get('disk-1')?.vmId, 'vm-1');
    assert.equal(v.addresses.getByVm('vm-1')?.address, '10.0.2.15');
    assert.deepEqual(v.intents.list().map((r) => r.intent), [{ op: 'disk.attach', diskId: 'disk-1', vmId: 'vm-1', hot: true }]);
    v.close();
  });
});

describe('repositories', () => {
  let v: VmanDb;
  beforeEach(() => {
    v = openDatabase(freshPath());
  });
  afterEach(() => {
    v.close();
  });

  it('TemplateRepo: insert, get, getByName, list, countVms, delete', () => {
    const t = v.templates.insert(tpl());
    assert.equal(t.builtin, true);
    assert.equal(t.memoryMb, 256);
    assert.equal(t.kernelPath, '/k/vmlinuz');
    assert.ok(t.createdAt.endsWith('Z'));
    assert.deepEqual(v.templates.get('t1'), t);
    assert.deepEqual(v.templates.getByName('tiny'), t);
    assert.equal(v.templates.get('nope'), undefined);
    assert.equal(v.templates.getByName('nope'), undefined);

    const img = v.templates.insert(tpl({
      id: 't2', name: 'alpine', kernelPath: null, initrdPath: null, cmdline: null,
      baseImagePath: '/img/alpine.qcow2', baseImageFormat: 'qcow2', builtin: false,
    }));
    assert.equal(img.builtin, false);
    assert.equal(img.baseImageFormat, 'qcow2');
    // Same created_at millisecond is possible, so the tie-break is by name.
    const names = v.templates.list().map((x) => x.name);
    assert.equal(names.length, 2);
    if (t.createdAt === img.createdAt) assert.deepEqual(names, ['alpine', 'tiny']);

    assert.equal(v.templates.countVms('t1'), 0);
    v.vms.insert(vm());
    assert.equal(v.templates.countVms('t1'), 1);
    assert.equal(v.templates.delete('t2'), true);
    assert.equal(v.templates.delete('t2'), false);
  });

  it('TemplateRepo: CHECK constraints', () => {
    const check = sqliteCode('SQLITE_CONSTRAINT_CHECK');
    assert.throws(() => v.templates.insert(tpl({ cpus: 0 })), check);
    assert.throws(() => v.templates.insert(tpl({ cpus: 65 })), check);
    assert.throws(() => v.templates.insert(tpl({ memoryMb: 8 })), check);
    assert.throws(() => v.templates.insert(tpl({ kernelPath: null, baseImagePath: null })), check);
    assert.throws(() => v.templates.insert(tpl({ baseImageFormat: 'vmdk' as 'raw' })), check);
    v.templates.insert(tpl());
    assert.throws(() => v.templates.insert(tpl({ id: 'other' })), sqliteCode('SQLITE_CONSTRAINT_UNIQUE'));
  });

  it('VmRepo: insert, get, getByName, list, listByState, count, delete', () => {
    v.templates.insert(tpl());
    const a = v.vms.insert(vm());
    const b = v.vms.insert(vm({ id: 'v2', name: 'db', mac: '52:54:00:00:00:02', state: 'running', pid: 42 }));
    assert.equal(a.templateId, 't1');
    assert.equal(a.createdAt, a.updatedAt);
    assert.deepEqual(v.vms.get('v1'), a);
    assert.deepEqual(v.vms.getByName('db'), b);
    assert.equal(v.vms.get('zzz'), undefined);
    assert.deepEqual(v.vms.list().map((x) => x.id), ['v1', 'v2']);
    assert.deepEqual(v.vms.listByState('running').map((x) => x.id), ['v2']);
    assert.deepEqual(v.vms.listByState('created', 'running').map((x) => x.id), ['v1', 'v2']);
    assert.deepEqual(v.vms.listByState('error'), []);
    assert.deepEqual(v.vms.listByState(), []);
    assert.equal(v.vms.count(), 2);
    assert.equal(v.vms.delete('v1'), true);
    assert.equal(v.vms.delete('v1'), false);
    assert.equal(v.vms.count(), 1);
  });

  it('VmRepo: CHECK, UNIQUE and foreign key constraints', () => {
    v.templates.insert(tpl());
    assert.throws(() => v.vms.insert(vm({ state: 'bogus' as VmState })), sqliteCode('SQLITE_CONSTRAINT_CHECK'));
    assert.throws(() => v.vms.insert(vm({ templateId: 'missing' })), sqliteCode('SQLITE_CONSTRAINT_FOREIGNKEY'));
    v.vms.insert(vm());
    assert.throws(() => v.vms.insert(vm({ id: 'v2', name: 'x' })), sqliteCode('SQLITE_CONSTRAINT_UNIQUE')); // mac
    assert.throws(() => v.vms.setState('v1', 'paused' as VmState), sqliteCode('SQLITE_CONSTRAINT_CHECK'));
    // RESTRICT: a template in use cannot be deleted.
    assert.throws(() => v.templates.delete('t1'), fkViolation);
    assert.ok(v.templates.get('t1'));
  });

  it('VmRepo: setState handles reason and pid', () => {
    v.templates.insert(tpl());
    v.vms.insert(vm());
    let r = v.vms.setState('v1', 'running', { pid: 1234 });
    assert.equal(r.state, 'running');
    assert.equal(r.pid, 1234);
    assert.equal(r.stateReason, null);
    r = v.vms.setState('v1', 'error', { reason: 'qemu crashed' });
    assert.equal(r.stateReason, 'qemu crashed');
    assert.equal(r.pid, 1234, 'pid is kept when the key is absent');
    r = v.vms.setState('v1', 'stopped');
    assert.equal(r.stateReason, null, 'reason is cleared unless given');
    assert.equal(r.pid, 1234);
    r = v.vms.setState('v1', 'stopped', { pid: null });
    assert.equal(r.pid, null);
    r = v.vms.setState('v1', 'starting', { pid: undefined });
    assert.equal(r.pid, null, 'present-but-undefined pid writes null');
    assert.ok(r.updatedAt >= r.createdAt);
    assert.deepEqual(v.vms.get('v1'), r);
    assert.throws(() => v.vms.setState('missing', 'running'), /vm missing not found/);
  });

  it('VmRepo: compareAndSetState refuses from a wrong state', () => {
    v.templates.insert(tpl());
    v.vms.insert(vm());
    assert.equal(v.vms.compareAndSetState('v1', ['running'], 'stopping'), undefined);
    assert.equal(v.vms.get('v1')?.state, 'created');
    const r = v.vms.compareAndSetState('v1', ['created', 'stopped'], 'starting', { pid: 99, reason: 'boot' });
    assert.equal(r?.state, 'starting');
    assert.equal(r?.pid, 99);
    assert.equal(r?.stateReason, 'boot');
    assert.equal(v.vms.compareAndSetState('v1', ['created', 'stopped'], 'starting'), undefined);
    assert.equal(v.vms.compareAndSetState('v1', [], 'running'), undefined);
    assert.equal(v.vms.compareAndSetState('missing', ['created'], 'running'), undefined);
    assert.equal(v.vms.get('v1')?.pid, 99);
  });

  it('DiskRepo: insert, get, list, attach, setMountPoint, detach, delete, count', () => {
    v.templates.insert(tpl());
    v.vms.insert(vm());
    const d = v.disks.insert(disk());
    assert.equal(d.state, 'available');
    assert.equal(d.sizeGb, 10);
    assert.deepEqual(v.disks.get('d1'), d);
    assert.deepEqual(v.disks.getByName('data'), d);
    assert.equal(v.disks.get('nope'), undefined);
    v.disks.insert(disk({ id: 'd2', name: 'logs', path: '/d/d2.qcow2', state: 'attached', vmId: 'v1', mountPoint: '/logs' }));
    assert.deepEqual(v.disks.list().map((x) => x.id), ['d1', 'd2']);
    assert.deepEqual(v.disks.listByVm('v1').map((x) => x.id), ['d2']);

    const a = v.disks.attach('d1', 'v1', '/data');
    assert.equal(a.state, 'attached');
    assert.equal(a.vmId, 'v1');
    assert.equal(a.mountPoint, '/data');
    assert.deepEqual(v.disks.listByVm('v1').map((x) => x.id), ['d1', 'd2']);
    assert.throws(() => v.disks.attach('d1', 'v1', null), /already attached to vm v1/);
    assert.throws(() => v.disks.attach('nope', 'v1', null), /disk nope not found/);

    assert.equal(v.disks.setMountPoint('d1', '/mnt/data').mountPoint, '/mnt/data');
    assert.equal(v.disks.setMountPoint('d1', null).mountPoint, null);
    assert.throws(() => v.disks.setMountPoint('nope', '/x'), /not found/);

    const det = v.disks.detach('d1');
    assert.equal(det.state, 'available');
    assert.equal(det.vmId, null);
    assert.equal(det.mountPoint, null);
    assert.equal(v.disks.detach('d1').state, 'available');
    assert.throws(() => v.disks.detach('nope'), /not found/);

    assert.equal(v.disks.count(), 2);
    assert.equal(v.disks.delete('d1'), true);
    assert.equal(v.disks.delete('d1'), false);
    assert.equal(v.disks.count(), 1);
  });

  it('DiskRepo: constraints and RESTRICT on the attached VM', () => {
    v.templates.insert(tpl());
    v.vms.insert(vm());
    const check = sqliteCode('SQLITE_CONSTRAINT_CHECK');
    assert.throws(() => v.disks.insert(disk({ state: 'attached', vmId: null })), check);
    assert.throws(() => v.disks.insert(disk({ state: 'available', vmId: 'v1' })), check);
    assert.throws(() => v.disks.insert(disk({ sizeGb: 0 })), check);
    assert.throws(() => v.disks.insert(disk({ format: 'raw' as 'qcow2' })), check);
    assert.throws(() => v.disks.insert(disk({ state: 'attached', vmId: 'ghost' })), sqliteCode('SQLITE_CONSTRAINT_FOREIGNKEY'));
    v.disks.insert(disk());
    assert.throws(() => v.disks.attach('d1', 'ghost', null), sqliteCode('SQLITE_CONSTRAINT_FOREIGNKEY'));
    v.disks.attach('d1', 'v1', null);
    assert.throws(() => v.vms.delete('v1'), fkViolation);
    assert.ok(v.vms.get('v1'));
    v.disks.detach('d1');
    assert.equal(v.vms.delete('v1'), true);
  });

  it('AddressRepo: allocate, uniqueness, release, list order, cascade', () => {
    v.templates.insert(tpl());
    for (let i = 1; i <= 5; i++) v.vms.insert(vm({ id: `v${i}`, name: `vm${i}`, mac: `52:54:00:00:00:0${i}` }));
    const a = v.addresses.allocate('10.0.0.10', 'v1');
    assert.equal(a.vmId, 'v1');
    assert.ok(a.allocatedAt.endsWith('Z'));
    v.addresses.allocate('10.0.0.2', 'v2');
    v.addresses.allocate('192.168.0.1', 'v3');
    v.addresses.allocate('9.255.255.255', 'v4');
    assert.throws(() => v.addresses.allocate('10.0.0.10', 'v5'), sqliteCode('SQLITE_CONSTRAINT_PRIMARYKEY'));
    assert.throws(() => v.addresses.allocate('10.0.0.99', 'v1'), sqliteCode('SQLITE_CONSTRAINT_UNIQUE'));
    assert.throws(() => v.addresses.allocate('10.0.0.98', 'ghost'), sqliteCode('SQLITE_CONSTRAINT_FOREIGNKEY'));
    assert.deepEqual(v.addresses.list().map((x) => x.address), ['9.255.255.255', '10.0.0.2', '10.0.0.10', '192.168.0.1']);
    assert.deepEqual(v.addresses.getByVm('v1'), a);
    assert.equal(v.addresses.getByVm('ghost'), undefined);
    assert.equal(v.addresses.isAllocated('10.0.0.2'), true);
    assert.equal(v.addresses.isAllocated('10.0.0.3'), false);

    assert.equal(v.addresses.release('v2'), true);
    assert.equal(v.addresses.release('v2'), false);
    assert.equal(v.addresses.isAllocated('10.0.0.2'), false);

    // Deleting the VM cascades to its allocation.
    assert.equal(v.vms.delete('v1'), true);
    assert.equal(v.addresses.isAllocated('10.0.0.10'), false);
    assert.equal(v.addresses.list().length, 2);
  });

  it('transaction commits on success and rolls back every row on throw', () => {
    const id = v.transaction(() => {
      v.templates.insert(tpl());
      return v.vms.insert(vm()).id;
    });
    assert.equal(id, 'v1');
    assert.equal(v.vms.count(), 1);

    assert.throws(() => v.transaction(() => {
      v.vms.insert(vm({ id: 'v2', name: 'two', mac: 'm2' }));
      v.disks.insert(disk({ state: 'attached', vmId: 'v2' }));
      v.addresses.allocate('10.0.0.5', 'v2');
      v.vms.setState('v1', 'running');
      throw new Error('boom');
    }), /boom/);
    assert.equal(v.vms.count(), 1);
    assert.equal(v.disks.count(), 0);
    assert.equal(v.addresses.list().length, 0);
    assert.equal(v.vms.get('v1')?.state, 'created');
    assert.equal(v.db.inTransaction, false);

    // Nested transactions become savepoints: the inner failure is contained.
    v.transaction(() => {
      v.vms.setState('v1', 'stopped');
      assert.throws(() => v.transaction(() => {
        v.vms.setState('v1', 'error');
        throw new Error('inner');
      }), /inner/);
    });
    assert.equal(v.vms.get('v1')?.state, 'stopped');
  });

  it('transaction rejects async functions', () => {
    assert.throws(() => v.transaction(() => Promise.resolve(1)), /synchronous/);
  });

  it('handles 1,000 VMs and 10,000 disks in one transaction', () => {
    v.templates.insert(tpl());
    v.transaction(() => {
      for (let i = 0; i < 1000; i++) {
        const vmId = `vm-${i}`;
        v.vms.insert(vm({ id: vmId, name: vmId, mac: `mac-${i}`, storageDir: `/s/${vmId}` }));
        for (let j = 0; j < 10; j++) {
          const diskId = `disk-${i}-${j}`;
          const attached = j % 2 === 0;
          v.disks.insert(disk({
            id: diskId, name: diskId, path: `/d/${diskId}.qcow2`,
            state: attached ? 'attached' : 'available', vmId: attached ? vmId : null,
          }));
        }
      }
    });
    assert.equal(v.vms.count(), 1000);
    assert.equal(v.disks.count(), 10000);
    assert.equal(v.disks.listByVm('vm-500').length, 5);
    assert.equal(v.templates.countVms('t1'), 1000);
  });
});

describe('migration 5 (qemu identity) over a database of version 4', () => {
  it('adds the uid and gid of each VM\'s QEMU, empty for the VMs there, and no two VMs may hold one uid', (t) => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vman-m5-')), 'vman.db');
    t.after(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
    const db = new Database(file);
    applyMigrations(db, MIGRATIONS.filter((m) => m.version <= 4));
    const now = new Date().toISOString();
    db.prepare("INSERT INTO templates (id, name, cpus, memory_mb, kernel_path, builtin, created_at) VALUES ('tpl-1', 'small', 1, 512, '/k', 1, ?)").run(now);
    for (const [id, mac] of [['vm-1', '52:54:00:00:00:01'], ['vm-2', '52:54:00:00:00:02']]) {
      db.prepare(`INSERT INTO vms (id, name, template_id, state, mac, storage_dir, created_at, updated_at) VALUES (?, ?, 'tpl-1', 'stopped', ?, ?, ?, ?)`).run(id, id, mac, `/srv/vms/${id}`, now, now);
    }
    assert.equal(applyMigrations(db), 1);
    assert.deepEqual(db.prepare('SELECT qemu_uid, qemu_gid FROM vms ORDER BY id').all(), [{ qemu_uid: null, qemu_gid: null }, { qemu_uid: null, qemu_gid: null }]);
    db.prepare("UPDATE vms SET qemu_uid = 1879048192, qemu_gid = 1879048192 WHERE id = 'vm-1'").run();
    assert.throws(() => db.prepare("UPDATE vms SET qemu_uid = 1879048192, qemu_gid = 1879048192 WHERE id = 'vm-2'").run(), /UNIQUE/);
    db.close();
  });
});
