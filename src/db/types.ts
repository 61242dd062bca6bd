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
