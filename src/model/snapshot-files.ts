// Where a snapshot's files sit in its VM's folder, named once for the VM
// service, the snapshot service, recovery and the observer.
import path from 'node:path';

/** Every snapshot of a VM has a folder here, named by its id. */
export const SNAPSHOTS_DIR = 'snapshots';
/** The guest's memory and device state (a snapshot taken while it ran). */
export const MEMORY_STATE_FILE = 'memory.state';
/** The console up to the snapshot: a resumed guest's goes on from it. */
export const SERIAL_LOG_FILE = 'serial.log';

export function snapshotDir(vmDir: string, snapshotId: string): string {
  return path.join(vmDir, SNAPSHOTS_DIR, snapshotId);
}

/** The copy of a disk's image in a snapshot's folder. */
export function snapshotImage(dir: string, diskId: string): string {
  return path.join(dir, `${diskId}.qcow2`);
}
