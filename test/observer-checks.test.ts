import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AddressRecord, DiskRecord, VmRecord } from '../src/db/types.ts';
import {
  ALL_CHECKS,
  checkAddressesOwnedByRunningVms,
  checkAttachedDisksPresent,
  checkDiskFilesExist,
  checkFailedVms,
  checkOrphanDiskFiles,
  checkOrphanProcesses,
  checkRunningVmsHaveProcess,
  checkStoppedVmsHaveNoProcess,
  checkIntentsFinished,
  checkNetworkOwned,
  checkQemuBlockAccountedFor,
  checkSnapshotFilesExist,
  checkSnapshotFoldersOwned,
  checkVmFoldersOwned,
  runChecks,
} from '../src/observer/checks.ts';
import type { Intent, IntentRecord, SnapshotRecord } from '../src/db/types.ts';
import { vmanQemuProcesses } from '../src/observer/snapshot.ts';
import type { ObserverSnapshot, QemuProcessView, SnapshotFolderView, VmRuntimeView } from '../src/observer/snapshot.ts';

const S = '/srv/vman-a';
const T = '2024-01-01T00:00:00.000Z';

function vm(id: string, state: VmRecord['state'], pid: number | null = null): VmRecord {
  return {
    id, name: `n-${id}`, templateId: 't1', state, stateReason: null, pid, mac: '52:54:00:00:00:01',
    storageDir: `${S}/vms/${id}`, sshKeys: [], userData: null, sshPort: null, guestAddress: null, stopMethod: null, deviceModel: null, resumeFrom: null, originSnapshotId: null, qemuIdentity: null, createdAt: T, updatedAt: T,
  };
}

function disk(id: string, over: Partial<DiskRecord> = {}): DiskRecord {
  return {
    id, name: `d-${id}`, sizeGb: 1, format: 'qcow2', path: `${S}/disks/${id}.qcow2`, state: 'available',
    vmId: null, mountPoint: null, createdAt: T, updatedAt: T, ...over,
  };
}

/** A QEMU command line as vman builds it: -name plus sockets in the VM's folder. */
function qemu(pid: number, vmId: string | undefined, storage = S): QemuProcessView {
  const argv = ['/usr/bin/qemu-system-x86_64'];
  if (vmId !== undefined) argv.push('-name', `vman-${vmId}`);
  argv.push('-pidfile', `${storage}/vms/${vmId ?? 'manual'}/qemu.pid`);
  argv.push('-chardev', `socket,id=qmp,path=${storage}/vms/${vmId ?? 'manual'}/qmp.sock,server=on,wait=off`);
  return vmId === undefined ? { pid, argv } : { pid, vmId, argv };
}

function snap(over: Partial<ObserverSnapshot> = {}): ObserverSnapshot {
  return {
    storagePath: S, vms: [], disks: [], addresses: [], intents: [], snapshots: [], owner: 'this-vman', processes: [], diskFiles: [], vmFolders: [],
    snapshotFolders: [], runtime: new Map<string, VmRuntimeView>(), ...over,
  };
}

function runtime(...views: VmRuntimeView[]): Map<string, VmRuntimeView> {
  return new Map(views.map((v) => [v.vmId, v]));
}

const addr = (address: string, vmId: string): AddressRecord => ({ address, vmId, allocatedAt: T });

/** A VM snapshot as recorded: in <storage>/vms/<vm>/snapshots/<id>, with a copy of each disk named. */
function vmSnap(id: string, vmId: string, over: Partial<SnapshotRecord> & { diskIds?: string[] } = {}): SnapshotRecord {
  const { diskIds = [], ...rest } = over;
  const dir = `${S}/vms/${vmId}/snapshots/${id}`;
  return {
    id, vmId, name: `s-${id}`, withMemory: false, dir, hardware: { cpus: 1, memoryMb: 256, deviceModel: { machine: 'pc', rootDiskId: null, seedDiskId: `seed-${vmId}`, slots: {} } },
    disks: diskIds.map((d) => ({ role: 'data' as const, diskId: d, source: `${S}/disks/${d}.qcow2`, image: `${dir}/${d}.qcow2` })),
    guestAddress: null, pauseMs: null, stateBytes: null, createdAt: T, ...rest,
  };
}

/** A snapshot folder as listed on disk. */
const snapFolder = (vmFolder: string, id: string, files: string[] = []): SnapshotFolderView => ({ vmFolder, path: `${S}/vms/${vmFolder}/snapshots/${id}`, files });

describe('checkRunningVmsHaveProcess', () => {
  it('flags a running VM without a QEMU process', () => {
    const f = checkRunningVmsHaveProcess(snap({ vms: [vm('a', 'running', 123)] }));
    assert.equal(f.length, 1);
    assert.equal(f[0]?.kind, 'vm-not-running');
    assert.equal(f[0]?.resourceType, 'vm');
    assert.equal(f[0]?.resourceId, 'a');
    assert.equal(f[0]?.observed, 'no QEMU process');
    assert.match(f[0]?.recorded ?? '', /running.*123/);
  });

  it('flags a running VM whose QEMU reports another status', () => {
    const s = snap({
      vms: [vm('a', 'running', 10)], processes: [qemu(10, 'a')],
      runtime: runtime({ vmId: 'a', qmpStatus: 'shutdown' }),
    });
    const f = checkRunningVmsHaveProcess(s);
    assert.deepEqual(f.map((x) => [x.kind, x.observed, x.pid]), [['vm-not-running', 'QEMU is shutdown', 10]]);
  });

  it('accepts a running VM with a running QEMU, or one whose monitor was unreachable', () => {
    const s = snap({
      vms: [vm('a', 'running', 10), vm('b', 'running', 11)],
      processes: [qemu(10, 'a'), qemu(11, 'b')],
      runtime: runtime({ vmId: 'a', qmpStatus: 'running' }, { vmId: 'b' }),
    });
    assert.deepEqual(checkRunningVmsHaveProcess(s), []);
  });

  it('ignores starting, stopping and stopped VMs', () => {
    const s = snap({ vms: [vm('a', 'starting'), vm('b', 'stopping'), vm('c', 'stopped')] });
    assert.deepEqual(checkRunningVmsHaveProcess(s), []);
  });

  it('does not count a process of another storage with the same -name', () => {
    // What the snapshot would keep from a QEMU of another vman instance: nothing.
    const other = vmanQemuProcesses([{ pid: 10, argv: qemu(10, 'a', '/srv/vman-b').argv, state: 'S' }], S);
    const f = checkRunningVmsHaveProcess(snap({ vms: [vm('a', 'running', 10)], processes: other }));
    assert.equal(f[0]?.observed, 'no QEMU process');
  });
});

describe('checkStoppedVmsHaveNoProcess', () => {
  it('flags created, stopped and error VMs whose QEMU is alive', () => {
    const s = snap({
      vms: [vm('a', 'created'), vm('b', 'stopped'), vm('c', 'error')],
      processes: [qemu(1, 'a'), qemu(2, 'b'), qemu(3, 'c')],
    });
    const f = checkStoppedVmsHaveNoProcess(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceId, x.pid]), [
      ['vm-process-unexpected', 'a', 1], ['vm-process-unexpected', 'b', 2], ['vm-process-unexpected', 'c', 3],
    ]);
  });

  it('is silent for stopped VMs without a process and for running VMs with one', () => {
    const s = snap({ vms: [vm('a', 'stopped'), vm('b', 'running', 2)], processes: [qemu(2, 'b')] });
    assert.deepEqual(checkStoppedVmsHaveNoProcess(s), []);
  });
});

describe('checkOrphanProcesses', () => {
  it('flags a vman QEMU whose VM row does not exist', () => {
    const f = checkOrphanProcesses(snap({ processes: [qemu(42, 'gone')] }));
    assert.equal(f.length, 1);
    assert.equal(f[0]?.kind, 'orphan-process');
    assert.equal(f[0]?.resourceType, 'process');
    assert.equal(f[0]?.resourceId, '42');
    assert.equal(f[0]?.pid, 42);
    assert.match(f[0]?.observed ?? '', /qemu-system-x86_64 -name vman-gone/);
  });

  it('flags a QEMU started by hand under storage without -name', () => {
    const f = checkOrphanProcesses(snap({ processes: [qemu(7, undefined)] }));
    assert.deepEqual(f.map((x) => x.pid), [7]);
  });

  it('flags the second of two processes named for the same VM', () => {
    const s = snap({ vms: [vm('a', 'running', 2)], processes: [qemu(1, 'a'), qemu(2, 'a')] });
    assert.deepEqual(checkOrphanProcesses(s).map((x) => x.pid), [1]);
  });

  it('is silent for processes owned by a row, by -name or by recorded pid', () => {
    const s = snap({ vms: [vm('a', 'running'), vm('b', 'running', 9)], processes: [qemu(5, 'a'), qemu(9, undefined)] });
    assert.deepEqual(checkOrphanProcesses(s), []);
  });

  it('never sees a QEMU of another storage folder, even named vman-<id>', () => {
    const all = [
      { pid: 1, argv: qemu(1, 'x', '/srv/vman-b').argv, state: 'S' },
      // Prefix of a sibling folder name is not inside S.
      { pid: 2, argv: qemu(2, 'y', `${S}-old`).argv, state: 'S' },
    ];
    assert.deepEqual(checkOrphanProcesses(snap({ processes: vmanQemuProcesses(all, S) })), []);
  });
});

describe('checkDiskFilesExist', () => {
  it('flags a disk row whose file is missing', () => {
    const s = snap({ disks: [disk('d1'), disk('d2')], diskFiles: [`${S}/disks/d2.qcow2`] });
    const f = checkDiskFilesExist(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceType, x.resourceId, x.path]), [
      ['disk-file-missing', 'disk', 'd1', `${S}/disks/d1.qcow2`],
    ]);
  });

  it('is silent when every file is there', () => {
    assert.deepEqual(checkDiskFilesExist(snap({ disks: [disk('d1')], diskFiles: [`${S}/disks/d1.qcow2`] })), []);
  });
});

describe('checkOrphanDiskFiles', () => {
  it('flags a file no row references', () => {
    const s = snap({ disks: [disk('d1')], diskFiles: [`${S}/disks/d1.qcow2`, `${S}/disks/stray.qcow2`] });
    const f = checkOrphanDiskFiles(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceType, x.resourceId]), [
      ['orphan-disk-file', 'file', `${S}/disks/stray.qcow2`],
    ]);
  });

  it('ignores hidden and temporary files', () => {
    const s = snap({ diskFiles: [`${S}/disks/.d9.qcow2.tmp`, `${S}/disks/.lock`] });
    assert.deepEqual(checkOrphanDiskFiles(s), []);
  });
});

describe('checkAttachedDisksPresent', () => {
  const attached = disk('d1', { state: 'attached', vmId: 'a', mountPoint: '/dev/vdb' });

  it('flags an attached disk missing from the running VM', () => {
    const s = snap({
      vms: [vm('a', 'running', 1)], disks: [attached], processes: [qemu(1, 'a')],
      runtime: runtime({ vmId: 'a', qmpStatus: 'running', diskDevices: ['disk-other'] }),
    });
    const f = checkAttachedDisksPresent(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceId]), [['disk-device-missing', 'd1']]);
    assert.match(f[0]?.observed ?? '', /disk-d1/);
  });

  it('is silent when the device is there, when devices are unknown, or when the VM is not running', () => {
    const present = snap({
      vms: [vm('a', 'running', 1)], disks: [attached],
      runtime: runtime({ vmId: 'a', qmpStatus: 'running', diskDevices: ['disk-d1'] }),
    });
    const unknown = snap({ vms: [vm('a', 'running', 1)], disks: [attached], runtime: runtime({ vmId: 'a' }) });
    const stopped = snap({
      vms: [vm('a', 'stopped')], disks: [attached], runtime: runtime({ vmId: 'a', diskDevices: [] }),
    });
    for (const s of [present, unknown, stopped]) assert.deepEqual(checkAttachedDisksPresent(s), []);
  });
});

describe('checkAddressesOwnedByRunningVms', () => {
  it('flags an address held by a stopped or error VM', () => {
    const s = snap({
      vms: [vm('a', 'stopped'), vm('b', 'error')],
      addresses: [addr('10.0.2.15', 'a'), addr('10.0.2.16', 'b')],
    });
    const f = checkAddressesOwnedByRunningVms(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceType, x.resourceId]), [
      ['address-without-running-vm', 'address', '10.0.2.15'],
      ['address-without-running-vm', 'address', '10.0.2.16'],
    ]);
    assert.match(f[0]?.observed ?? '', /stopped/);
  });

  it('accepts starting, running and stopping VMs', () => {
    const s = snap({
      vms: [vm('a', 'starting'), vm('b', 'running'), vm('c', 'stopping')],
      addresses: [addr('10.0.2.15', 'a'), addr('10.0.2.16', 'b'), addr('10.0.2.17', 'c')],
    });
    assert.deepEqual(checkAddressesOwnedByRunningVms(s), []);
  });
});

describe('checkFailedVms', () => {
  it('reports a VM recorded as failed with no QEMU, with its reason', () => {
    const failed = { ...vm('a', 'error'), stateReason: 'the QEMU process died' };
    const [f, ...rest] = checkFailedVms(snap({ vms: [failed, vm('b', 'stopped')] }));
    assert.equal(rest.length, 0);
    assert.equal(f?.kind, 'vm-failed');
    assert.equal(f?.resourceId, 'a');
    assert.match(f?.recorded ?? '', /the QEMU process died/);
  });

  it('leaves a failed VM whose QEMU is alive to the unexpected-process check', () => {
    assert.deepEqual(checkFailedVms(snap({ vms: [vm('a', 'error', 1)], processes: [qemu(1, 'a')] })), []);
  });
});

describe('runChecks', () => {
  it('runs every check and finds nothing in a coherent snapshot', () => {
    assert.equal(ALL_CHECKS.length, 14);
    const s = snap({
      vms: [vm('a', 'running', 1), vm('b', 'stopped')],
      disks: [disk('d1', { state: 'attached', vmId: 'a' }), disk('d2')],
      addresses: [addr('10.0.2.15', 'a')],
      processes: [qemu(1, 'a')],
      diskFiles: [`${S}/disks/d1.qcow2`, `${S}/disks/d2.qcow2`],
      vmFolders: ['a', 'b'],
      snapshots: [vmSnap('snap-1', 'b', { diskIds: ['d2'] }), vmSnap('snap-2', 'a', { withMemory: true })],
      snapshotFolders: [snapFolder('b', 'snap-1', ['d2.qcow2']), snapFolder('a', 'snap-2', ['memory.state', 'serial.log'])],
      runtime: runtime({ vmId: 'a', qmpStatus: 'running', diskDevices: ['disk-d1'], blockNodes: ['drive-d1', 'file-d1'] }),
      network: { taps: [{ tap: 'vt0000000000aa', vmId: 'a' }], reservations: [{ mac: '52:54:00:00:00:01', address: '10.0.2.15' }] },
    });
    assert.deepEqual(runChecks(s), []);
  });

  it('collects findings of several kinds', () => {
    const s = snap({ vms: [vm('a', 'running')], processes: [qemu(3, 'zzz')], diskFiles: [`${S}/disks/x.qcow2`] });
    assert.deepEqual(runChecks(s).map((f) => f.kind).sort(), ['orphan-disk-file', 'orphan-process', 'vm-not-running']);
  });
});

const intent = (id: number, i: Intent, owner = 'this-vman'): IntentRecord => ({ id, intent: i, owner, startedAt: T });

describe('checkQemuBlockAccountedFor', () => {
  const running = vm('a', 'running', 1);
  const base = { vms: [running], processes: [qemu(1, 'a')] };

  it('names a disk QEMU holds that is not recorded attached to that VM, with its device and nodes', () => {
    const f = checkQemuBlockAccountedFor(snap({
      ...base,
      disks: [disk('d1')],
      runtime: runtime({ vmId: 'a', qmpStatus: 'running', diskDevices: ['disk-d1'], blockNodes: ['drive-d1', 'file-d1'] }),
    }));
    assert.deepEqual(f.map((x) => [x.kind, x.resourceType, x.resourceId, x.vmId]), [['qemu-block-unrecorded', 'disk', 'd1', 'a']]);
    assert.match(f[0]!.observed, /disk-d1, drive-d1, file-d1/);
    assert.equal(f[0]!.recorded, "disk d-d1 is available, not attached to VM n-a");
  });

  it('names nodes left without a device (an attach cut short) and names it follows no scheme of', () => {
    const f = checkQemuBlockAccountedFor(snap({
      ...base,
      runtime: runtime({ vmId: 'a', qmpStatus: 'running', diskDevices: ['odd'], blockNodes: ['file-d9'] }),
    }));
    assert.deepEqual(f.map((x) => [x.resourceType, x.resourceId]).sort(), [['block', 'd9'], ['block', 'odd']]);
  });

  it('accepts the root disk and the disks recorded attached; stays silent when QEMU did not answer', () => {
    const names = ['disk-root-a', 'drive-root-a', 'file-root-a'];
    assert.deepEqual(checkQemuBlockAccountedFor(snap({
      vms: [vm('vm-a', 'running', 1)], processes: [qemu(1, 'vm-a')],
      runtime: runtime({ vmId: 'vm-a', qmpStatus: 'running', diskDevices: [names[0]!], blockNodes: names.slice(1) }),
    })), []);
    assert.deepEqual(checkQemuBlockAccountedFor(snap({ ...base, runtime: runtime({ vmId: 'a', qmpStatus: 'running' }) })), []);
  });

  it('leaves alone what this vman is attaching or detaching right now, not what a dead vman left', () => {
    const rt = runtime({ vmId: 'a', qmpStatus: 'running', diskDevices: [], blockNodes: ['file-d1'] });
    const attaching = intent(1, { op: 'disk.attach', diskId: 'd1', vmId: 'a', hot: true });
    assert.deepEqual(checkQemuBlockAccountedFor(snap({ ...base, disks: [disk('d1')], runtime: rt, intents: [attaching] })), []);
    const left = { ...attaching, owner: 'dead-vman' };
    assert.equal(checkQemuBlockAccountedFor(snap({ ...base, disks: [disk('d1')], runtime: rt, intents: [left] })).length, 1);
  });
});

describe('checkVmFoldersOwned', () => {
  it('names a VM folder without a record, unless this vman is creating or deleting that VM', () => {
    const s = snap({ vms: [vm('a', 'stopped')], vmFolders: ['a', 'ghost', 'making'], intents: [intent(1, { op: 'vm.create', vmId: 'making', dir: `${S}/vms/making` })] });
    const f = checkVmFoldersOwned(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceId]), [['orphan-vm-folder', `${S}/vms/ghost`]]);
  });
});

describe('checkSnapshotFoldersOwned', () => {
  it('names a folder under a recorded VM\'s snapshots that no snapshot record names, with what it holds', () => {
    const s = snap({
      vms: [vm('a', 'stopped')], vmFolders: ['a'],
      snapshots: [vmSnap('snap-1', 'a')],
      snapshotFolders: [snapFolder('a', 'snap-1'), snapFolder('a', 'snap-2', ['memory.state', 'serial.log']), snapFolder('a', 'snap-3')],
    });
    const f = checkSnapshotFoldersOwned(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceType, x.resourceId, x.vmId, x.path]), [
      ['orphan-snapshot-files', 'folder', `${S}/vms/a/snapshots/snap-2`, 'a', `${S}/vms/a/snapshots/snap-2`],
      ['orphan-snapshot-files', 'folder', `${S}/vms/a/snapshots/snap-3`, 'a', `${S}/vms/a/snapshots/snap-3`],
    ]);
    assert.equal(f[0]!.recorded, 'no snapshot record of VM n-a with id snap-2');
    assert.equal(f[0]!.observed, 'the folder exists, holding memory.state, serial.log');
    assert.equal(f[1]!.observed, 'the folder exists, empty');
  });

  it('leaves a VM folder no record names to the orphan VM folder check', () => {
    const s = snap({ vmFolders: ['ghost'], snapshotFolders: [snapFolder('ghost', 'snap-1', ['memory.state'])] });
    assert.deepEqual(checkSnapshotFoldersOwned(s), []);
    assert.deepEqual(runChecks(s).map((x) => [x.kind, x.resourceId]), [['orphan-vm-folder', `${S}/vms/ghost`]]);
  });

  it('leaves alone a snapshot this vman is taking or deleting right now, not what a dead vman left', () => {
    const taking = intent(1, { op: 'vm.snapshot', vmId: 'a', snapshotId: 'snap-1', dir: `${S}/vms/a/snapshots/snap-1`, running: true });
    const deleting = intent(2, { op: 'vm.snapshot-delete', vmId: 'a', snapshotId: 'snap-2', dir: `${S}/vms/a/snapshots/snap-2` });
    const base = { vms: [vm('a', 'saving')], vmFolders: ['a'], snapshotFolders: [snapFolder('a', 'snap-1', ['memory.state']), snapFolder('a', 'snap-2')] };
    assert.deepEqual(checkSnapshotFoldersOwned(snap({ ...base, intents: [taking, deleting] })), []);
    const left = checkSnapshotFoldersOwned(snap({ ...base, intents: [{ ...taking, owner: 'dead-vman' }, deleting] }));
    assert.deepEqual(left.map((x) => x.resourceId), [`${S}/vms/a/snapshots/snap-1`]);
  });
});

describe('checkSnapshotFilesExist', () => {
  it('names a snapshot whose folder is gone', () => {
    const s = snap({ vms: [vm('a', 'stopped')], snapshots: [vmSnap('snap-1', 'a', { diskIds: ['d1'] })] });
    const f = checkSnapshotFilesExist(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceType, x.resourceId, x.vmId, x.path, x.observed]), [
      ['snapshot-files-missing', 'snapshot', 'snap-1', 'a', `${S}/vms/a/snapshots/snap-1`, 'no such folder'],
    ]);
    assert.equal(f[0]!.recorded, `snapshot s-snap-1 of VM n-a, disks only (d1), in ${S}/vms/a/snapshots/snap-1`);
  });

  it('names the saved memory and each disk copy missing from its folder', () => {
    const s = snap({
      vms: [vm('a', 'running', 1)],
      snapshots: [vmSnap('snap-1', 'a', { withMemory: true, diskIds: ['d1', 'd2'] })],
      snapshotFolders: [snapFolder('a', 'snap-1', ['d1.qcow2', 'serial.log'])],
    });
    const f = checkSnapshotFilesExist(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceId, x.observed]), [['snapshot-files-missing', 'snap-1', 'the folder holds no memory.state, d2.qcow2']]);
    assert.match(f[0]!.recorded, /with memory \(d1, d2\)/);
  });

  it('is silent when everything is there: no serial log needed, no memory without memory, an empty folder for no disks', () => {
    const s = snap({
      vms: [vm('a', 'stopped')],
      snapshots: [vmSnap('snap-1', 'a'), vmSnap('snap-2', 'a', { withMemory: true, diskIds: ['d1'] })],
      snapshotFolders: [snapFolder('a', 'snap-1'), snapFolder('a', 'snap-2', ['d1.qcow2', 'memory.state'])],
    });
    assert.deepEqual(checkSnapshotFilesExist(s), []);
  });

  it('leaves alone a snapshot this vman is deleting right now, not one a dead vman was deleting', () => {
    const deleting = intent(1, { op: 'vm.snapshot-delete', vmId: 'a', snapshotId: 'snap-1', dir: `${S}/vms/a/snapshots/snap-1` });
    const base = { vms: [vm('a', 'stopped')], snapshots: [vmSnap('snap-1', 'a')] };
    assert.deepEqual(checkSnapshotFilesExist(snap({ ...base, intents: [deleting] })), []);
    assert.equal(checkSnapshotFilesExist(snap({ ...base, intents: [{ ...deleting, owner: 'dead-vman' }] })).length, 1);
  });
});

describe('checkNetworkOwned', () => {
  it('names taps and reservations that no allocation accounts for', () => {
    const s = snap({
      vms: [{ ...vm('vm-000000000001', 'running', 1), mac: '52:54:00:00:00:01' }, { ...vm('vm-000000000002', 'stopped'), mac: '52:54:00:00:00:02' }],
      addresses: [addr('10.0.2.15', 'vm-000000000001')],
      network: {
        taps: [{ tap: 'vt000000000001', vmId: 'vm-000000000001' }, { tap: 'vt000000000002', vmId: 'vm-000000000002' }, { tap: 'vt00000000dead', vmId: 'vm-00000000dead' }],
        reservations: [{ mac: '52:54:00:00:00:01', address: '10.0.2.15' }, { mac: '52:54:00:00:00:02', address: '10.0.2.16' }],
      },
    });
    const f = checkNetworkOwned(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceId]), [
      ['orphan-tap', 'vt000000000002'], ['orphan-tap', 'vt00000000dead'], ['orphan-reservation', '52:54:00:00:00:02 10.0.2.16'],
    ]);
    assert.match(f[1]!.recorded, /no VM record/);
  });

  it('says nothing where the network mode keeps nothing on the host', () => {
    assert.deepEqual(checkNetworkOwned(snap({ vms: [vm('a', 'stopped')] })), []);
  });
});

describe('checkIntentsFinished', () => {
  it("names another vman's intents, not this one's", () => {
    const s = snap({ intents: [intent(1, { op: 'vm.stop', vmId: 'a' }, 'dead'), intent(2, { op: 'vm.stop', vmId: 'b' })] });
    const f = checkIntentsFinished(s);
    assert.deepEqual(f.map((x) => [x.kind, x.resourceId, x.vmId]), [['intent-unfinished', '1', 'a']]);
    assert.match(f[0]!.recorded, /vm\.stop of a began at/);
  });
});

describe('operations in flight', () => {
  it('a disk this vman is deleting or creating is neither missing nor an orphan file', () => {
    const f = `${S}/disks/d1.qcow2`;
    const s = snap({
      disks: [disk('d1')],
      diskFiles: [`${S}/disks/new.qcow2`],
      intents: [intent(1, { op: 'disk.delete', diskId: 'd1', file: f, pending: `${S}/disks/.d1.qcow2.x.tmp` }),
        intent(2, { op: 'disk.create', diskId: 'new', file: `${S}/disks/new.qcow2`, pending: `${S}/disks/.new.tmp` })],
    });
    assert.deepEqual(runChecks(s), []);
  });
});
