import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../src/db/database.ts';
import type { VmanDb } from '../src/db/database.ts';
import type { VmRecord } from '../src/db/types.ts';
import type { ProcessInfo } from '../src/operator/proc.ts';
import { signal, waitForExit } from '../src/operator/proc.ts';
import { runChecks } from '../src/observer/checks.ts';
import { blockDeviceIds, defaultSources, takeSnapshot, vmanQemuProcesses } from '../src/observer/snapshot.ts';
import type { SnapshotSources } from '../src/observer/snapshot.ts';
import { pollUntil } from '../src/poll.ts';

let S = '';
let db: VmanDb;

before(() => {
  S = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-obs-snap-'));
  db = openDatabase(path.join(S, 'vman.db'));
  db.templates.insert({
    id: 't1', name: 'tiny', cpus: 1, memoryMb: 256, kernelPath: '/k/vmlinuz', initrdPath: null, cmdline: null,
    baseImagePath: null, baseImageFormat: null, builtin: false,
  });
});
after(() => {
  db.close();
  fs.rmSync(S, { recursive: true, force: true });
});

function insertVm(id: string, state: VmRecord['state'], mac: string): VmRecord {
  fs.mkdirSync(path.join(S, 'vms', id), { recursive: true });
  return db.vms.insert({ id, name: `n-${id}`, templateId: 't1', state, stateReason: null, pid: null, mac, storageDir: path.join(S, 'vms', id) });
}

const proc = (pid: number, argv: string[], state = 'S'): ProcessInfo => ({ pid, argv, state });
const QEMU = '/usr/bin/qemu-system-x86_64';

describe('vmanQemuProcesses', () => {
  it('keeps QEMUs pointing inside the storage, with their VM id', () => {
    const all = [
      proc(1, [QEMU, '-name', 'vman-a', '-pidfile', `${S}/vms/a/qemu.pid`]),
      proc(2, [QEMU, '-name', 'guest=vman-b,debug-threads=on', '-chardev', `socket,id=qmp,path=${S}/vms/b/qmp.sock,server=on`]),
      proc(3, ['qemu-kvm', '-blockdev', `driver=file,node-name=f,filename=${S}/disks/d.qcow2`]),
    ];
    assert.deepEqual(vmanQemuProcesses(all, S), [
      { pid: 1, vmId: 'a', argv: all[0]?.argv },
      { pid: 2, vmId: 'b', argv: all[1]?.argv },
      { pid: 3, argv: all[2]?.argv },
    ]);
  });

  it('ignores QEMUs of another storage folder, even named vman-<id>', () => {
    const all = [
      proc(1, [QEMU, '-name', 'vman-a', '-pidfile', '/srv/other-vman/vms/a/qemu.pid']),
      proc(2, [QEMU, '-name', 'vman-a', '-pidfile', `${S}-sibling/vms/a/qemu.pid`]),
      proc(3, [QEMU, '-name', 'vman-a']), // A name alone proves nothing.
    ];
    assert.deepEqual(vmanQemuProcesses(all, S), []);
  });

  it('ignores other programs, zombies, and a trailing slash on the storage path changes nothing', () => {
    const all = [
      proc(1, ['/usr/bin/qemu-img', 'create', '-f', 'qcow2', `${S}/disks/x.qcow2`]),
      proc(2, ['/bin/sleep', '-name', 'vman-a', `${S}/vms/a/qemu.pid`]),
      proc(3, [QEMU, '-name', 'vman-a', '-pidfile', `${S}/vms/a/qemu.pid`], 'Z'),
      proc(4, [QEMU, '-name', 'vman-c', '-pidfile', `${S}/vms/c/qemu.pid`]),
    ];
    assert.deepEqual(vmanQemuProcesses(all, `${S}/`).map((p) => p.pid), [4]);
  });

  it('reads paths from option strings with escaped commas', () => {
    const weird = '/tmp/a,b';
    const all = [proc(1, [QEMU, '-chardev', `socket,id=qmp,path=${weird.replace(',', ',,')}/vms/a/qmp.sock,server=on`])];
    assert.equal(vmanQemuProcesses(all, weird).length, 1);
    assert.equal(vmanQemuProcesses(all, '/tmp/a').length, 0);
  });
});

describe('blockDeviceIds', () => {
  it('takes the qdev id from a QOM path or an id, and legacy device names', () => {
    const ids = blockDeviceIds([
      { device: '', qdev: '/machine/peripheral/disk-d1/virtio-backend' },
      { device: '', qdev: 'disk-d2' },
      { device: 'ide0-cd0', qdev: '/machine/unattached/device[23]' },
    ]);
    assert.deepEqual(ids.sort(), ['disk-d1', 'disk-d2', 'ide0-cd0']);
  });
});

describe('defaultSources', () => {
  it('lists the files in <storage>/disks as absolute paths, and none without the folder', async () => {
    const src = defaultSources(db, S, { owner: 'test' });
    assert.deepEqual(await src.listDiskFiles(), []);
    fs.mkdirSync(path.join(S, 'disks', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(S, 'disks', 'd1.qcow2'), '');
    fs.writeFileSync(path.join(S, 'disks', '.d2.tmp'), '');
    assert.deepEqual((await src.listDiskFiles()).sort(), [path.join(S, 'disks', '.d2.tmp'), path.join(S, 'disks', 'd1.qcow2')]);
  });

  it('lists each folder under a VM folder\'s snapshots/ with what it holds, and none where there is no such folder', async () => {
    const src = defaultSources(db, S, { owner: 'test' });
    fs.mkdirSync(path.join(S, 'vms', 'sv1', 'snapshots', 'snap-b'), { recursive: true });
    fs.mkdirSync(path.join(S, 'vms', 'sv1', 'snapshots', 'snap-a'), { recursive: true });
    fs.writeFileSync(path.join(S, 'vms', 'sv1', 'snapshots', 'snap-a', 'serial.log'), '');
    fs.writeFileSync(path.join(S, 'vms', 'sv1', 'snapshots', 'snap-a', 'memory.state'), '');
    fs.writeFileSync(path.join(S, 'vms', 'sv1', 'snapshots', 'stray-file'), '');
    fs.mkdirSync(path.join(S, 'vms', 'sv2'), { recursive: true });
    fs.writeFileSync(path.join(S, 'vms', 'sv2', 'snapshots'), 'not a folder');
    const listed = (await src.listSnapshotFolders()).filter((f) => f.vmFolder.startsWith('sv'));
    assert.deepEqual(listed.sort((x, y) => x.path.localeCompare(y.path)), [
      { vmFolder: 'sv1', path: path.join(S, 'vms', 'sv1', 'snapshots', 'snap-a'), files: ['memory.state', 'serial.log'] },
      { vmFolder: 'sv1', path: path.join(S, 'vms', 'sv1', 'snapshots', 'snap-b'), files: [] },
    ]);
    fs.rmSync(path.join(S, 'vms', 'sv1'), { recursive: true });
    fs.rmSync(path.join(S, 'vms', 'sv2'), { recursive: true });
  });

  it('reads the rows of all the tables the observer compares', () => {
    insertVm('r1', 'running', '52:54:00:00:01:01');
    db.disks.insert({ id: 'd1', name: 'data', sizeGb: 1, format: 'qcow2', path: path.join(S, 'disks', 'd1.qcow2'), state: 'attached', vmId: 'r1', mountPoint: '/dev/vdb' });
    db.addresses.allocate('10.0.2.15', 'r1');
    const dir = path.join(S, 'vms', 'r1', 'snapshots', 'snap-r1');
    db.snapshots.insert({
      id: 'snap-r1', vmId: 'r1', name: 'before', withMemory: false, dir, hardware: { cpus: 1, memoryMb: 256, deviceModel: { machine: 'pc', rootDiskId: null, seedDiskId: 'seed-r1', slots: {} } },
      disks: [], guestAddress: null, pauseMs: null, stateBytes: null,
    });
    const rows = defaultSources(db, S, { owner: 'test' }).readRows();
    assert.deepEqual(rows.vms.map((v) => v.id), ['r1']);
    assert.deepEqual(rows.disks.map((d) => [d.id, d.vmId]), [['d1', 'r1']]);
    assert.deepEqual(rows.addresses.map((a) => [a.address, a.vmId]), [['10.0.2.15', 'r1']]);
    assert.deepEqual(rows.snapshots.map((x) => [x.id, x.vmId, x.dir]), [['snap-r1', 'r1', dir]]);
  });

  it('has a change token that moves on writes from this connection and from others', () => {
    const src = defaultSources(db, S, { owner: 'test' });
    const t0 = src.changeToken?.();
    assert.equal(src.changeToken?.(), t0);
    insertVm('tok1', 'stopped', '52:54:00:00:01:10');
    const t1 = src.changeToken?.();
    assert.notEqual(t1, t0);
    const other = openDatabase(path.join(S, 'vman.db'));
    try {
      other.vms.setState('tok1', 'error', { reason: 'from another connection' });
    } finally {
      other.close();
    }
    assert.notEqual(src.changeToken?.(), t1);
  });

  it('asks qmp-aux.sock, never the operator\'s qmp.sock, and closes the connection', async () => {
    const vm = insertVm('q1', 'running', '52:54:00:00:01:02');
    const opened: string[] = [];
    let closed = 0;
    const servers = ['qmp.sock', 'qmp-aux.sock'].map((name) =>
      net.createServer((sock) => {
        opened.push(name);
        sock.on('close', () => closed++);
        sock.setEncoding('utf8');
        sock.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } }) + '\n');
        let buf = '';
        sock.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; id: number };
            buf = buf.slice(nl + 1);
            const ret = msg.execute === 'query-status' ? { status: 'paused', running: false }
              : msg.execute === 'query-block' ? [{ device: '', qdev: '/machine/peripheral/disk-d1/virtio-backend' }]
              : msg.execute === 'query-named-block-nodes' ? [{ 'node-name': 'drive-d1' }, { 'node-name': '#block123' }] : {};
            sock.write(JSON.stringify({ return: ret, id: msg.id }) + '\n');
          }
        });
      }).listen(path.join(vm.storageDir, name)),
    );
    try {
      const view = await defaultSources(db, S, { owner: 'test' }).inspectVm(vm, 12345);
      assert.deepEqual(view, { vmId: 'q1', qmpStatus: 'paused', diskDevices: ['disk-d1'], blockNodes: ['drive-d1'] });
      assert.deepEqual(opened, ['qmp-aux.sock']);
      await pollUntil('the connection to close', () => (closed === 1 ? { done: true, value: 1 } : { done: false, seen: `${closed}` }), { timeoutMs: 2000, intervalMs: 10 });
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
    // Nothing listening: unknown, not an error.
    assert.deepEqual(await defaultSources(db, S, { owner: 'test' }).inspectVm(vm, 12345), { vmId: 'q1' });
  });
});

describe('takeSnapshot', () => {
  const vmA = {
    id: 'a', name: 'a', templateId: 't1', state: 'running', stateReason: null, pid: 5, mac: 'm', storageDir: '/s/vms/a',
    sshKeys: [], userData: null, sshPort: null, guestAddress: null, stopMethod: null, deviceModel: null, resumeFrom: null, originSnapshotId: null, qemuIdentity: null, createdAt: 'c', updatedAt: 'u1',
  } satisfies VmRecord;
  const vmB = { ...vmA, id: 'b', name: 'b', state: 'stopped', pid: null } satisfies VmRecord;

  function fake(rows: () => { vms: VmRecord[] }, inspected: string[]): SnapshotSources {
    return {
      owner: 'test',
      readRows: () => ({ disks: [], addresses: [], intents: [], snapshots: [], ...rows() }),
      listVmFolders: async () => [],
      listSnapshotFolders: async () => [],
      listProcesses: async () => [
        proc(5, [QEMU, '-name', 'vman-a', '-pidfile', '/s/vms/a/qemu.pid']),
        proc(6, [QEMU, '-name', 'vman-zz', '-pidfile', '/s/vms/zz/qemu.pid']),
        proc(7, [QEMU, '-name', 'vman-b', '-pidfile', '/elsewhere/vms/b/qemu.pid']),
      ],
      listDiskFiles: async () => [],
      inspectVm: async (vm, pid) => {
        inspected.push(`${vm.id}:${pid}`);
        return { vmId: vm.id, qmpStatus: 'running' };
      },
    };
  }

  it('inspects only processes a VM row claims', async () => {
    const inspected: string[] = [];
    const s = await takeSnapshot('/s', fake(() => ({ vms: [vmA, vmB] }), inspected));
    assert.deepEqual(inspected, ['a:5']);
    assert.deepEqual(s.processes.map((p) => p.pid), [5, 6]);
    assert.deepEqual([...s.runtime.keys()], ['a']);
  });

  it('reads the rows once when the change token did not move, twice when it did', async () => {
    let reads = 0;
    let token = 0;
    const base = fake(() => {
      reads++;
      return { vms: [vmA] };
    }, []);
    await takeSnapshot('/s', { ...base, changeToken: () => 'same' });
    assert.equal(reads, 1);
    // A moved token (a write elsewhere) with unchanged rows: one re-read, no retry.
    await takeSnapshot('/s', { ...base, changeToken: () => String(token++) });
    assert.equal(reads, 3);
  });

  it('takes the picture again when a row changed meanwhile', async () => {
    const inspected: string[] = [];
    let reads = 0;
    // The first window sees the VM change (a stop in flight); the second is stable.
    const s = await takeSnapshot('/s', fake(() => ({ vms: [++reads === 1 ? vmA : { ...vmA, updatedAt: 'u2' }] }), inspected));
    assert.equal(reads, 4);
    assert.equal(s.vms[0]?.updatedAt, 'u2');
    assert.deepEqual(inspected, ['a:5', 'a:5']);
  });
});

describe('takeSnapshot and VM snapshot rows', () => {
  it('takes the picture again when a snapshot row came or went meanwhile, and keeps the rows and folders of the stable one', async () => {
    let reads = 0;
    const row = {
      id: 'snap-1', vmId: 'a', name: 'before', withMemory: false, dir: '/s/vms/a/snapshots/snap-1',
      hardware: { cpus: 1, memoryMb: 256, deviceModel: { machine: 'pc', rootDiskId: null, seedDiskId: 'seed-a', slots: {} } },
      disks: [], guestAddress: null, pauseMs: null, stateBytes: null, createdAt: 'c',
    };
    const folders = [{ vmFolder: 'a', path: '/s/vms/a/snapshots/snap-1', files: [] }];
    const s = await takeSnapshot('/s', {
      owner: 'test',
      // The first window sees a snapshot being recorded; the second is stable.
      readRows: () => ({ vms: [], disks: [], addresses: [], intents: [], snapshots: ++reads === 1 ? [] : [row] }),
      listProcesses: async () => [], listDiskFiles: async () => [], listVmFolders: async () => ['a'],
      listSnapshotFolders: async () => folders,
      inspectVm: async (vm) => ({ vmId: vm.id }),
    });
    assert.equal(reads, 4);
    assert.deepEqual(s.snapshots.map((x) => x.id), ['snap-1']);
    assert.deepEqual(s.snapshotFolders, folders);
  });
});

describe('against a real QEMU', () => {
  const qemuBin = '/usr/bin/qemu-system-x86_64';
  it('finds its process and asks its auxiliary monitor', { skip: !fs.existsSync(qemuBin) && 'no QEMU on this host', timeout: 20_000 }, async () => {
    const vm = insertVm('live1', 'running', '52:54:00:00:01:03');
    const aux = path.join(vm.storageDir, 'qmp-aux.sock');
    const child = spawn(qemuBin, [
      '-name', 'vman-live1', '-machine', 'pc,accel=tcg', '-S', '-nodefaults', '-display', 'none',
      '-chardev', `socket,id=qmp-aux,path=${aux},server=on,wait=off`, '-mon', 'chardev=qmp-aux,mode=control',
    ], { stdio: 'ignore' });
    const pid = child.pid ?? -1;
    try {
      await pollUntil('the QMP socket', () => (fs.existsSync(aux) ? { done: true, value: aux } : { done: false, seen: 'absent' }), { timeoutMs: 10_000 });
      const s = await takeSnapshot(S, defaultSources(db, S, { owner: 'test' }));
      assert.deepEqual(s.processes.filter((p) => p.pid === pid).map((p) => p.vmId), ['live1']);
      assert.equal(s.runtime.get('live1')?.qmpStatus, 'prelaunch');
      const mine = runChecks(s).filter((f) => f.resourceId === 'live1');
      assert.deepEqual(mine.map((f) => [f.kind, f.observed]), [['vm-not-running', 'QEMU is prelaunch']]);
    } finally {
      signal(pid, 'SIGKILL');
      await waitForExit(pid, 5000);
    }
  });
});
