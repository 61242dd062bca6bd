// Record types returned by the repositories (camelCase views of the SQLite rows).

export type VmState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'error';
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
  createdAt: string;
  updatedAt: string;
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
export type NewVm = Omit<VmRecord, 'createdAt' | 'updatedAt' | 'sshPort' | 'guestAddress' | 'stopMethod' | 'sshKeys' | 'userData'> &
  Partial<Pick<VmRecord, 'sshKeys' | 'userData'>>;
export type NewDisk = Omit<DiskRecord, 'createdAt' | 'updatedAt'>;

/** A VM state in which no QEMU runs for it. */
export type AtRestState = 'created' | 'stopped' | 'error';

/**
 * What a multi-step operation is about to do, with what recovery needs to
 * finish or undo it: ids, files, the state to go back to.
 */
export type Intent =
  | { op: 'vm.create'; vmId: string; dir: string }
  | { op: 'vm.start'; vmId: string; from: { state: AtRestState; reason: string | null } }
  | { op: 'vm.stop'; vmId: string }
  | { op: 'vm.delete'; vmId: string; dir: string }
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
