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
  /** QEMU holds a block device or node that no disk recorded attached to that VM accounts for. */
  | 'qemu-block-unrecorded'
  | 'orphan-vm-folder'
  /** A folder under a recorded VM's snapshots folder that no snapshot record names. Repair leaves it: a person decides. */
  | 'orphan-snapshot-files'
  /** A snapshot recorded whose folder, saved memory or disk copy is gone: no revert or clone from it can work. Repair leaves it: a person decides. */
  | 'snapshot-files-missing'
  | 'orphan-tap'
  | 'orphan-reservation'
  /** An operation a vman that is no longer running began and did not finish. */
  | 'intent-unfinished'
  /** Not a disagreement but a VM needing attention: recorded as failed, and indeed no QEMU runs it. */
  | 'vm-failed';

export interface Finding {
  kind: FindingKind;
  resourceType: 'vm' | 'disk' | 'process' | 'file' | 'address' | 'block' | 'folder' | 'tap' | 'reservation' | 'intent' | 'snapshot';
  /** VM id, disk id, pid as a string, file or folder path, address, node name, tap name, intent id or snapshot id, depending on resourceType. */
  resourceId: string;
  /** The VM whose QEMU or network the finding is about, when that is not the resource itself. */
  vmId?: string;
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
