// The coherence checks: each a pure function of one snapshot, O(rows + processes
// + files) through Maps and Sets, so a host with thousands of VMs stays cheap.
import path from 'node:path';
import type { VmRecord, VmState } from '../db/types.ts';
import { diskNodeNames } from '../operator/qemu-command.ts';
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

const STOPPED: ReadonlySet<VmState> = new Set<VmState>(['created', 'stopped', 'error']);

export const checkStoppedVmsHaveNoProcess: Check = (s) => {
  const owners = claimed(s);
  const out: Finding[] = [];
  for (const vm of s.vms) {
    if (!STOPPED.has(vm.state)) continue;
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
  const out: Finding[] = [];
  for (const d of s.disks) {
    if (files.has(normalPath(d.path))) continue;
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
  const out: Finding[] = [];
  for (const f of s.diskFiles) {
    // Dot files are temporaries (a qemu-img create in progress, an editor's swap file).
    if (path.basename(f).startsWith('.')) continue;
    if (owned.has(normalPath(f))) continue;
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
  const out: Finding[] = [];
  for (const d of s.disks) {
    if (d.state !== 'attached' || d.vmId === null) continue;
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

// A stopping VM still runs its guest on that address until it is stopped, when
// vman releases it; flagging it would invite handing the address out twice.
const HOLDS_ADDRESS: ReadonlySet<VmState> = new Set<VmState>(['starting', 'running', 'stopping']);

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

export const ALL_CHECKS: readonly Check[] = [
  checkRunningVmsHaveProcess,
  checkStoppedVmsHaveNoProcess,
  checkOrphanProcesses,
  checkDiskFilesExist,
  checkOrphanDiskFiles,
  checkAttachedDisksPresent,
  checkAddressesOwnedByRunningVms,
  checkFailedVms,
];

export function runChecks(s: ObserverSnapshot): Finding[] {
  return ALL_CHECKS.flatMap((check) => check(s));
}
