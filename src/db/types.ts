import type { DeviceModel } from '../model/device-model.ts';
// Record types returned by the repositories (camelCase views of the SQLite rows).

export type VmState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'error' | 'saving' | 'restoring';
/** How a template's guest shows it is ready: its agent answers and reports an address; SSH answers; a line on the serial console; QEMU runs. */
export type Readiness = 'agent' | 'ssh' | 'serial' | 'none';
/** How a VM was last stopped: its guest agent powered it off, the ACPI power button, QMP quit, SIGKILL. */
export type StopMethod = 'agent' | 'acpi' | 'quit' | 'kill';
export type DiskState = 'available' | 'attached';

export interface TemplateRecord {
  id: string;
  name: string;
  cpus: number;
  memoryMb: number;
  kernelPath: string | null;
  initrdPath: string | null;
  cmdline: string | null;
  baseImagePath: string | null;
  baseImageFormat: 'qcow2' | 'raw' | null;
  builtin: boolean;
  readiness: Readiness;
  /** For `serial` readiness: a regular expression a console line must match. */
  readyPattern: string | null;
  /** SSH public keys every VM of this template gets through cloud-init. */
  sshKeys: string[];
  createdAt: string;
}

export interface VmRecord {
  id: string;
  name: string;
  templateId: string;
  state: VmState;
  stateReason: string | null;
  pid: number | null;
  mac: string;
  storageDir: string;
  /** SSH public keys given when the VM was created (beside its template's). */
  sshKeys: string[];
  /** cloud-init user-data, passed through as given. */
  userData: string | null;
  /** The host port forwarded to the guest's SSH (127.0.0.1), while it runs in user mode. */
  sshPort: number | null;
  /** The address the guest itself reported, once it did. */
  guestAddress: string | null;
  stopMethod: StopMethod | null;
  /** Its hardware: machine type, device ids and PCI slots (null for a VM made before they were recorded, until it starts). */
  deviceModel: DeviceModel | null;
  /** The snapshot its next start resumes instead of booting (a clone before its first start). */
  resumeFrom: string | null;
  /** The snapshot it was cloned from, whose images its disks are overlays over. */
  originSnapshotId: string | null;
  /** The unprivileged uid and gid its QEMU runs as, when vman runs as root (null until its first start). */
  qemuIdentity: { uid: number; gid: number } | null;
  createdAt: string;
  updatedAt: string;
}

/** A disk as a snapshot holds it: which disk it was and the copy of its image. */
export interface SnapshotDisk {
  /** The root overlay or a data disk. */
  role: 'root' | 'data';
  /** The disk id (the device model's root id for the root). */
  diskId: string;
  /** Where the disk's image was when the snapshot was taken. */
  source: string;
  /** The point-in-time copy, in the snapshot's folder. */
  image: string;
}

/** What a saved state resumes only into: the same CPUs, memory and devices. */
export interface SnapshotHardware {
  cpus: number;
  memoryMb: number;
  deviceModel: DeviceModel;
}

export interface SnapshotRecord {
  id: string;
  vmId: string;
  name: string;
  /** True when it holds the guest's memory and device state (taken while it ran). */
  withMemory: boolean;
  dir: string;
  hardware: SnapshotHardware;
  disks: SnapshotDisk[];
  /** The address the guest had when it was saved (a memory snapshot). */
  guestAddress: string | null;
  /** How long the guest was paused while it was taken. */
  pauseMs: number | null;
  /** Size of the saved memory and device state. */
  stateBytes: number | null;
  createdAt: string;
}

export interface DiskRecord {
  id: string;
  name: string;
  sizeGb: number;
  format: 'qcow2';
  path: string;
  state: DiskState;
  vmId: string | null;
  mountPoint: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface AddressRecord {
  address: string;
  vmId: string;
  allocatedAt: string;
}

/** A template to insert; readiness `agent`, no serial pattern and no keys unless given. */
export type NewTemplate = Omit<TemplateRecord, 'createdAt' | 'readiness' | 'readyPattern' | 'sshKeys'> &
  Partial<Pick<TemplateRecord, 'readiness' | 'readyPattern' | 'sshKeys'>>;
/** A VM to insert; no keys and no user-data unless given. */
export type NewVm = Omit<VmRecord, 'createdAt' | 'updatedAt' | 'sshPort' | 'guestAddress' | 'stopMethod' | 'sshKeys' | 'userData' | 'deviceModel' | 'resumeFrom' | 'originSnapshotId' | 'qemuIdentity'> &
  Partial<Pick<VmRecord, 'sshKeys' | 'userData' | 'deviceModel' | 'resumeFrom' | 'originSnapshotId'>>;
export type NewSnapshot = Omit<SnapshotRecord, 'createdAt'>;
export type NewDisk = Omit<DiskRecord, 'createdAt' | 'updatedAt'>;

/** A VM state in which no QEMU runs for it. */
export type AtRestState = 'created' | 'stopped' | 'error';

/**
 * What a multi-step operation is about to do, with what recovery needs to
 * finish or undo it: ids, files, the state to go back to.
 */
export type Intent =
  | { op: 'vm.create'; vmId: string; dir: string }
  /** `from.qemuIdentity`: the QEMU user it had (null: none; this start chose one, and an undo gives it back). */
  | { op: 'vm.start'; vmId: string; from: { state: AtRestState; reason: string | null; qemuIdentity?: { uid: number; gid: number } | null } }
  | { op: 'vm.stop'; vmId: string }
  | { op: 'vm.delete'; vmId: string; dir: string }
  | { op: 'vm.snapshot'; vmId: string; snapshotId: string; dir: string; running: boolean }
  | { op: 'vm.revert'; vmId: string; snapshotId: string; from: { state: AtRestState | 'running' } }
  | { op: 'vm.snapshot-delete'; vmId: string; snapshotId: string; dir: string }
  | { op: 'disk.create'; diskId: string; file: string; pending: string }
  | { op: 'disk.attach'; diskId: string; vmId: string; hot: boolean }
  | { op: 'disk.detach'; diskId: string; vmId: string; hot: boolean }
  | { op: 'disk.delete'; diskId: string; file: string; pending: string };

export type IntentOp = Intent['op'];

export interface IntentRecord {
  id: number;
  intent: Intent;
  /** The vman instance that wrote it: another instance's intent is unfinished work. */
  owner: string;
  startedAt: string;
}
