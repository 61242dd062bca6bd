// What QEMU counted for each disk a VM holds (QMP `query-blockstats`): bytes and
// operations read and written, and operations that failed. vman names a disk's
// format node `drive-<disk id>` (model/device-model.ts): that is how a figure is
// told to belong to a disk.
import type { QmpLike } from './hotplug.ts';

export interface DiskIoStats {
  diskId: string;
  readBytes: number;
  writtenBytes: number;
  reads: number;
  writes: number;
  flushes: number;
  failedReads: number;
  failedWrites: number;
  failedFlushes: number;
}

interface BlockStatsEntry {
  'node-name'?: string;
  stats?: Record<string, unknown>;
}

const NODE_PREFIX = 'drive-';

/** One entry per disk vman attached; nodes vman did not name (none, normally) are left out. */
export function parseBlockStats(reply: unknown): DiskIoStats[] {
  if (!Array.isArray(reply)) throw new Error(`query-blockstats answered ${JSON.stringify(reply)?.slice(0, 200)}, not a list`);
  const out: DiskIoStats[] = [];
  for (const entry of reply as BlockStatsEntry[]) {
    const node = entry['node-name'];
    if (typeof node !== 'string' || !node.startsWith(NODE_PREFIX) || !entry.stats) continue;
    const s = entry.stats;
    const n = (key: string): number => (typeof s[key] === 'number' ? s[key] as number : 0);
    out.push({
      diskId: node.slice(NODE_PREFIX.length),
      readBytes: n('rd_bytes'), writtenBytes: n('wr_bytes'),
      reads: n('rd_operations'), writes: n('wr_operations'), flushes: n('flush_operations'),
      failedReads: n('failed_rd_operations'), failedWrites: n('failed_wr_operations'), failedFlushes: n('failed_flush_operations'),
    });
  }
  return out;
}

export async function queryBlockStats(qmp: QmpLike, timeoutMs: number): Promise<DiskIoStats[]> {
  return parseBlockStats(await qmp.execute('query-blockstats', undefined, { timeoutMs }));
}
