// The coherence checks: each a pure function of one snapshot, O(rows + processes
// + files) through Maps and Sets, so a host with thousands of VMs stays cheap.
import path from 'node:path';
import type { DiskRecord, VmRecord } from '../db/types.ts';
import { deviceModelOf, diskIdOfBlockName, diskNodeNames, expectedBlockNames } from '../model/device-model.ts';
import { describeIntent } from '../model/intents.ts';
import { AT_REST, HOLDS_ADDRESS } from '../model/vm-states.ts';
import { MEMORY_STATE_FILE } from '../model/snapshot-files.ts';
import type { Finding } from './findings.ts';
import { claimProcesses } from './snapshot.ts';
import type { ObserverSnapshot, QemuProcessView } from './snapshot.ts';

export type Check = (s: ObserverSnapshot) => Finding[];

// Several checks need the same indexes; build them once per snapshot.
const claimCache = new WeakMap<ObserverSnapshot, Map<string, QemuProcessView>>();
function claimed(s: ObserverSnapshot): Map<string, QemuProcessView> {
  let m = claimCache.get(s);
  if (!m) {
    m = claimProcesses(s.vms, s.processes);
    claimCache.set(s, m);
  }
  return m;
}

const vmCache = new WeakMap<ObserverSnapshot, Map<string, VmRecord>>();
function vmsById(s: ObserverSnapshot): Map<string, VmRecord> {
  let m = vmCache.get(s);
  if (!m) {
    m = new Map(s.vms.map((v) => [v.id, v]));
    vmCache.set(s, m);
  }
  return m;
}

interface InFlight {
  vms: Set<string>;
  disks: Set<string>;
  files: Set<string>;
  /** Snapshots being taken or deleted: their folder and their record come and go one after the other. */
  snapshots: Set<string>;
}

/** What this vman's own operations in flight are changing: not a disagreement, only a moment. */
const inFlightCache = new WeakMap<ObserverSnapshot, InFlight>();
function inFlight(s: ObserverSnapshot): InFlight {
  let f = inFlightCache.get(s);
  if (!f) {
    f = { vms: new Set(), disks: new Set(), files: new Set(), snapshots: new Set() };
    for (const r of s.intents) {
      if (r.owner !== s.owner) continue;
      const i = r.intent;
      if ('vmId' in i) f.vms.add(i.vmId);
      if ('diskId' in i) f.disks.add(i.diskId);
      if (i.op === 'disk.create' || i.op === 'disk.delete') f.files.add(normalPath(i.file));
      if (i.op === 'vm.snapshot' || i.op === 'vm.snapshot-delete') f.snapshots.add(i.snapshotId);
    }
    inFlightCache.set(s, f);
  }
  return f;
}

/** path.resolve only where needed: it dominates the disk checks on 100k rows. */
function normalPath(p: string): string {
  const plain = p.startsWith('/') && !p.includes('//') && !p.includes('/./') && !p.includes('/../') && !p.endsWith('/') && !p.endsWith('/.') && !p.endsWith('/..');
  return plain ? p : path.resolve(p);
}

const MAX_HEAD = 160;
/** The start of a command line, enough for a person to recognise the process. */
export function commandHead(argv: readonly string[]): string {
  const head = argv.join(' ');
  return head.length > MAX_HEAD ? `${head.slice(0, MAX_HEAD)}…` : head;
}

function recordedVm(vm: VmRecord): string {
  return `VM ${vm.name} is ${vm.state}${vm.pid !== null ? ` (pid ${vm.pid})` : ''}`;
}

export const checkRunningVmsHaveProcess: Check = (s) => {
  const owners = claimed(s);
  const out: Finding[] = [];
  for (const vm of s.vms) {
    // Only `running`: starting and stopping are vman's own transitions in flight.
    if (vm.state !== 'running') continue;
    const proc = owners.get(vm.id);
    const base = { kind: 'vm-not-running', resourceType: 'vm', resourceId: vm.id, recorded: recordedVm(vm) } as const;
    if (!proc) {
      out.push({ ...base, observed: 'no QEMU process' });
      continue;
    }
    // An unreachable monitor says nothing about the guest: stay silent rather than guess.
    const status = s.runtime.get(vm.id)?.qmpStatus;
    if (status !== undefined && status !== 'running') {
      out.push({ ...base, observed: `QEMU is ${status}`, pid: proc.pid });
    }
  }
  return out;
};

export const checkStoppedVmsHaveNoProcess: Check = (s) => {
  const owners = claimed(s);
  const busy = inFlight(s).vms;
  const out: Finding[] = [];
  for (const vm of s.vms) {
    if (!AT_REST.has(vm.state) || busy.has(vm.id)) continue;
    const proc = owners.get(vm.id);
    if (!proc) continue;
    out.push({
      kind: 'vm-process-unexpected',
      resourceType: 'vm',
      resourceId: vm.id,
      recorded: recordedVm(vm),
      observed: `QEMU process ${proc.pid} is alive: ${commandHead(proc.argv)}`,
      pid: proc.pid,
    });
  }
  return out;
};

export const checkOrphanProcesses: Check = (s) => {
  const owners = claimed(s);
  const ownedPids = new Set<number>();
  for (const p of owners.values()) ownedPids.add(p.pid);
  const vms = vmsById(s);
  const out: Finding[] = [];
  for (const p of s.processes) {
    if (ownedPids.has(p.pid)) continue;
    const recorded =
      p.vmId === undefined
        ? 'no VM row owns this process (it has no -name vman-<id>)'
        : vms.has(p.vmId)
          ? `VM ${p.vmId} owns another process (pid ${owners.get(p.vmId)?.pid ?? '?'})`
          : `no VM row with id ${p.vmId}`;
    out.push({
      kind: 'orphan-process',
      resourceType: 'process',
      resourceId: String(p.pid),
      recorded,
      observed: `QEMU process ${p.pid}: ${commandHead(p.argv)}`,
      pid: p.pid,
    });
  }
  return out;
};

export const checkDiskFilesExist: Check = (s) => {
  const files = new Set(s.diskFiles.map(normalPath));
  const busy = inFlight(s).disks;
  const out: Finding[] = [];
  for (const d of s.disks) {
    if (files.has(normalPath(d.path)) || busy.has(d.id)) continue;
    out.push({
      kind: 'disk-file-missing',
      resourceType: 'disk',
      resourceId: d.id,
      recorded: `disk ${d.name} is ${d.state}${d.vmId !== null ? ` to VM ${d.vmId}` : ''}, file ${d.path}`,
      observed: 'no such file',
      path: d.path,
    });
  }
  return out;
};

export const checkOrphanDiskFiles: Check = (s) => {
  const owned = new Set(s.disks.map((d) => normalPath(d.path)));
  const busy = inFlight(s).files;
  const out: Finding[] = [];
  for (const f of s.diskFiles) {
    // Dot files are temporaries (a qemu-img create in progress, an editor's swap file).
    if (path.basename(f).startsWith('.')) continue;
    if (owned.has(normalPath(f)) || busy.has(normalPath(f))) continue;
    out.push({
      kind: 'orphan-disk-file',
      resourceType: 'file',
      resourceId: f,
      recorded: 'no disk row has this path',
      observed: 'file exists',
      path: f,
    });
  }
  return out;
};

function deviceIdOf(diskId: string): string | undefined {
  try {
    return diskNodeNames(diskId).device;
  } catch {
    return undefined; // An id vman could never have plugged; nothing to compare.
  }
}

export const checkAttachedDisksPresent: Check = (s) => {
  const vms = vmsById(s);
  const deviceSets = new Map<string, Set<string>>();
  for (const [vmId, rt] of s.runtime) if (rt.diskDevices) deviceSets.set(vmId, new Set(rt.diskDevices));
  const busy = inFlight(s);
  const out: Finding[] = [];
  for (const d of s.disks) {
    if (d.state !== 'attached' || d.vmId === null || busy.disks.has(d.id) || busy.vms.has(d.vmId)) continue;
    if (vms.get(d.vmId)?.state !== 'running') continue;
    const devices = deviceSets.get(d.vmId);
    const device = deviceIdOf(d.id);
    if (!devices || device === undefined || devices.has(device)) continue;
    out.push({
      kind: 'disk-device-missing',
      resourceType: 'disk',
      resourceId: d.id,
      recorded: `disk ${d.name} attached to VM ${d.vmId}${d.mountPoint ? ` as ${d.mountPoint}` : ''}`,
      observed: `QEMU of VM ${d.vmId} has no device ${device}`,
      path: d.path,
    });
  }
  return out;
};

export const checkAddressesOwnedByRunningVms: Check = (s) => {
  const vms = vmsById(s);
  const out: Finding[] = [];
  for (const a of s.addresses) {
    const vm = vms.get(a.vmId);
    if (vm && HOLDS_ADDRESS.has(vm.state)) continue;
    out.push({
      kind: 'address-without-running-vm',
      resourceType: 'address',
      resourceId: a.address,
      recorded: `${a.address} allocated to VM ${a.vmId}`,
      observed: vm ? `VM ${a.vmId} is ${vm.state}` : `VM ${a.vmId} does not exist`,
    });
  }
  return out;
};

/** Failed VMs are reported too, so a person sees them in the same place as every other problem. */
export const checkFailedVms: Check = (s) => {
  const owners = claimed(s);
  const out: Finding[] = [];
  for (const vm of s.vms) {
    // With a live QEMU, checkStoppedVmsHaveNoProcess reports it as a disagreement instead.
    if (vm.state !== 'error' || owners.has(vm.id)) continue;
    out.push({
      kind: 'vm-failed', resourceType: 'vm', resourceId: vm.id,
      recorded: `VM ${vm.name} is error: ${vm.stateReason ?? 'no reason recorded'}`,
      observed: 'no QEMU process',
    });
  }
  return out;
};

/**
 * From QEMU back to the database: every block device and named node a running
 * VM's QEMU holds must belong to its root disk or to a disk recorded attached
 * to it. One finding per disk (its device and nodes together), or per name
 * that follows no scheme of vman's.
 */
export const checkQemuBlockAccountedFor: Check = (s) => {
  const vms = vmsById(s);
  const disksById = new Map(s.disks.map((d) => [d.id, d]));
  const attachedTo = new Map<string, DiskRecord[]>();
  for (const d of s.disks) if (d.vmId !== null && d.state === 'attached') attachedTo.set(d.vmId, [...(attachedTo.get(d.vmId) ?? []), d]);
  const owners = claimed(s);
  const busy = inFlight(s);
  const out: Finding[] = [];
  for (const [vmId, rt] of s.runtime) {
    const vm = vms.get(vmId);
    if (!vm || busy.vms.has(vmId) || rt.diskDevices === undefined || rt.blockNodes === undefined) continue;
    const expected = expectedBlockNames(deviceModelOf(vm, true), (attachedTo.get(vmId) ?? []).map((d) => d.id));
    const strays = new Map<string, string[]>();
    for (const name of [...rt.diskDevices, ...rt.blockNodes]) {
      if (expected.has(name)) continue;
      const key = diskIdOfBlockName(name) ?? name;
      if (busy.disks.has(key)) continue;
      strays.set(key, [...(strays.get(key) ?? []), name]);
    }
    const pid = owners.get(vmId)?.pid;
    for (const [key, names] of strays) {
      const disk = disksById.get(key);
      out.push({
        kind: 'qemu-block-unrecorded',
        resourceType: disk ? 'disk' : 'block',
        resourceId: key,
        vmId,
        recorded: disk
          ? `disk ${disk.name} is ${disk.state}${disk.vmId ? ` to VM ${disk.vmId}` : ''}, not attached to VM ${vm.name}`
          : `no disk of VM ${vm.name} is named ${key}`,
        observed: `QEMU of VM ${vm.name}${pid !== undefined ? ` (pid ${pid})` : ''} holds ${names.join(', ')}`,
        ...(pid !== undefined ? { pid } : {}),
        ...(disk ? { path: disk.path } : {}),
      });
    }
  }
  return out;
};

/** From the folders back: every folder under <storage>/vms belongs to a VM record. */
export const checkVmFoldersOwned: Check = (s) => {
  const vms = vmsById(s);
  const busy = inFlight(s).vms;
  const out: Finding[] = [];
  for (const name of s.vmFolders) {
    if (vms.has(name) || busy.has(name)) continue;
    const folder = path.join(s.storagePath, 'vms', name);
    out.push({
      kind: 'orphan-vm-folder', resourceType: 'folder', resourceId: folder, path: folder,
      recorded: `no VM record with id ${name}`, observed: 'the folder exists',
    });
  }
  return out;
};

/**
 * From the snapshot folders back: every folder under the snapshots/ folder of a
 * recorded VM belongs to a snapshot record. Under a folder no VM record names,
 * the whole VM folder is the orphan (checkVmFoldersOwned). Never removed by
 * repair: a person decides.
 */
export const checkSnapshotFoldersOwned: Check = (s) => {
  const vms = vmsById(s);
  const owned = new Set(s.snapshots.map((r) => normalPath(r.dir)));
  const busy = inFlight(s).snapshots;
  const out: Finding[] = [];
  for (const f of s.snapshotFolders) {
    const vm = vms.get(f.vmFolder);
    const id = path.basename(f.path);
    if (!vm || owned.has(normalPath(f.path)) || busy.has(id)) continue;
    out.push({
      kind: 'orphan-snapshot-files', resourceType: 'folder', resourceId: f.path, vmId: vm.id, path: f.path,
      recorded: `no snapshot record of VM ${vm.name} with id ${id}`,
      observed: f.files.length > 0 ? `the folder exists, holding ${f.files.join(', ')}` : 'the folder exists, empty',
    });
  }
  return out;
};

/**
 * From the snapshot records to their files: its folder, its saved memory (a
 * snapshot taken while the VM ran) and the copy of each disk it holds. Without
 * them a revert or a clone from it fails. Left to a person, as every missing file is.
 */
export const checkSnapshotFilesExist: Check = (s) => {
  const vms = vmsById(s);
  const folders = new Map(s.snapshotFolders.map((f) => [normalPath(f.path), f]));
  const busy = inFlight(s).snapshots;
  const out: Finding[] = [];
  for (const r of s.snapshots) {
    if (busy.has(r.id)) continue;
    const dir = normalPath(r.dir);
    const folder = folders.get(dir);
    let observed: string;
    if (!folder) {
      observed = 'no such folder';
    } else {
      const held = new Set(folder.files.map((name) => path.join(dir, name)));
      const wanted = [...(r.withMemory ? [path.join(dir, MEMORY_STATE_FILE)] : []), ...r.disks.map((d) => normalPath(d.image))];
      const missing = wanted.filter((file) => !held.has(file));
      if (missing.length === 0) continue;
      observed = `the folder holds no ${missing.map((file) => (path.dirname(file) === dir ? path.basename(file) : file)).join(', ')}`;
    }
    out.push({
      kind: 'snapshot-files-missing', resourceType: 'snapshot', resourceId: r.id, vmId: r.vmId, path: r.dir,
      recorded: `snapshot ${r.name} of VM ${vms.get(r.vmId)?.name ?? r.vmId}, ${r.withMemory ? 'with memory' : 'disks only'}${r.disks.length > 0 ? ` (${r.disks.map((d) => d.diskId).join(', ')})` : ''}, in ${r.dir}`,
      observed,
    });
  }
  return out;
};

/** From the host's network back: every tap on vman's bridge and every DHCP reservation belongs to an allocation. */
export const checkNetworkOwned: Check = (s) => {
  if (!s.network) return [];
  const vms = vmsById(s);
  const busy = inFlight(s).vms;
  const allocated = new Map(s.addresses.map((a) => [a.vmId, a.address]));
  const reservedBy = new Map(s.addresses.flatMap((a) => {
    const vm = vms.get(a.vmId);
    return vm ? [[`${vm.mac.toLowerCase()} ${a.address}`, vm] as const] : [];
  }));
  const out: Finding[] = [];
  for (const t of s.network.taps) {
    if (allocated.has(t.vmId) || busy.has(t.vmId)) continue;
    const vm = vms.get(t.vmId);
    out.push({
      kind: 'orphan-tap', resourceType: 'tap', resourceId: t.tap, vmId: t.vmId,
      recorded: vm ? `VM ${vm.name} is ${vm.state} and holds no address` : `no VM record with id ${t.vmId}`,
      observed: `tap device ${t.tap} is on the bridge`,
    });
  }
  for (const r of s.network.reservations) {
    const owner = reservedBy.get(`${r.mac} ${r.address}`);
    if (owner || [...busy].some((id) => vms.get(id)?.mac.toLowerCase() === r.mac)) continue;
    out.push({
      kind: 'orphan-reservation', resourceType: 'reservation', resourceId: `${r.mac} ${r.address}`,
      recorded: `no VM with MAC ${r.mac} holds ${r.address}`,
      observed: `dnsmasq reserves ${r.address} for ${r.mac}`,
    });
  }
  return out;
};

/** Operations a vman that is no longer running began and did not finish (recovery failed or has not run). */
export const checkIntentsFinished: Check = (s) =>
  s.intents
    .filter((r) => r.owner !== s.owner)
    .map((r) => ({
      kind: 'intent-unfinished' as const,
      resourceType: 'intent' as const,
      resourceId: String(r.id),
      ...('vmId' in r.intent ? { vmId: r.intent.vmId } : {}),
      recorded: `${describeIntent(r.intent)} began at ${r.startedAt}`,
      observed: `vman ${r.owner}, which began it, is not running`,
    }));

export const ALL_CHECKS: readonly Check[] = [
  checkRunningVmsHaveProcess,
  checkStoppedVmsHaveNoProcess,
  checkOrphanProcesses,
  checkDiskFilesExist,
  checkOrphanDiskFiles,
  checkAttachedDisksPresent,
  checkAddressesOwnedByRunningVms,
  checkFailedVms,
  checkQemuBlockAccountedFor,
  checkVmFoldersOwned,
  checkSnapshotFoldersOwned,
  checkSnapshotFilesExist,
  checkNetworkOwned,
  checkIntentsFinished,
];

export function runChecks(s: ObserverSnapshot): Finding[] {
  return ALL_CHECKS.flatMap((check) => check(s));
}
