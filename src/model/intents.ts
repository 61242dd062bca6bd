// Intents in words: the one vocabulary the journal's log lines, recovery and
// the observer's findings share.
import type { Intent } from '../db/types.ts';

/** An intent in words, for logs and the observer's findings. */
export function describeIntent(i: Intent): string {
  switch (i.op) {
    case 'vm.create': case 'vm.start': case 'vm.stop': case 'vm.delete':
      return `${i.op} of ${i.vmId}`;
    case 'vm.snapshot': case 'vm.revert': case 'vm.snapshot-delete':
      return `${i.op} of ${i.vmId} (snapshot ${i.snapshotId})`;
    case 'disk.attach': case 'disk.detach':
      return `${i.op} of ${i.diskId} ${i.op === 'disk.attach' ? 'to' : 'from'} ${i.vmId} (${i.hot ? 'hot' : 'cold'})`;
    default:
      return `${i.op} of ${i.diskId}`;
  }
}
