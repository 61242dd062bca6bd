// Record types returned by the repositories (camelCase views of the SQLite rows).

export type VmState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'error';
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

export type NewTemplate = Omit<TemplateRecord, 'createdAt'>;
export type NewVm = Omit<VmRecord, 'createdAt' | 'updatedAt'>;
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
