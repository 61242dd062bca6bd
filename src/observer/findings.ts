// What the observer reports: one Finding per disagreement between the database,
// the QEMU processes and the disk files. Findings describe; they never repair.

export type FindingKind =
  | 'vm-not-running'
  | 'vm-process-unexpected'
  | 'orphan-process'
  | 'disk-file-missing'
  | 'orphan-disk-file'
  | 'disk-device-missing'
  | 'address-without-running-vm'
  /** Not a disagreement but a VM needing attention: recorded as failed, and indeed no QEMU runs it. */
  | 'vm-failed';

export interface Finding {
  kind: FindingKind;
  resourceType: 'vm' | 'disk' | 'process' | 'file' | 'address';
  /** VM id, disk id, pid as a string, file path or address, depending on resourceType. */
  resourceId: string;
  /** What the database says, human-readable. */
  recorded: string;
  /** What was seen instead. */
  observed: string;
  /** The live process involved, when there is one. */
  pid?: number;
  path?: string;
}

export interface ObserverReport {
  /** ISO time the check started. */
  checkedAt: string;
  durationMs: number;
  findings: Finding[];
  counts: { vms: number; disks: number; processes: number; diskFiles: number };
}
