// At start-up, before anything else: remove what a vman killed in the middle
// of a request left half-made, so every resource is either complete or absent.
// Only vman's own leftovers, found by their names: a qemu-img temp file in the
// disk folder, a VM folder that no row owns and no QEMU uses.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { VmanDb } from '../db/database.ts';
import { listProcesses } from '../operator/proc.ts';
import { ID_PATTERN } from '../names.ts';

/** qemu-img writes `.<name>.<random>.tmp` and links it into place when done (see operator/qemu-img.ts). */
const DISK_TEMP = /^\..+\.[0-9a-f]{12}\.tmp$/;

export async function removeHalfMade(db: VmanDb, storagePath: string): Promise<string[]> {
  const removed: string[] = [];
  const disksDir = path.join(storagePath, 'disks');
  for (const name of await readdir(disksDir).catch(() => [] as string[])) {
    if (!DISK_TEMP.test(name)) continue;
    await rm(path.join(disksDir, name), { force: true });
    removed.push(path.join(disksDir, name));
  }

  const vmsDir = path.join(storagePath, 'vms');
  const owned = new Set(db.vms.list().map((v) => v.id));
  const orphans = (await readdir(vmsDir).catch(() => [] as string[])).filter((id) => ID_PATTERN.test(id) && !owned.has(id));
  if (orphans.length === 0) return removed;
  // A folder a QEMU still uses is the observer's to report, never vman's to delete.
  const inUse = new Set<string>();
  for (const p of await listProcesses()) {
    for (const id of orphans) if (p.argv.some((a) => a.includes(`${path.join(vmsDir, id)}/`))) inUse.add(id);
  }
  for (const id of orphans) {
    if (inUse.has(id)) continue;
    await rm(path.join(vmsDir, id), { recursive: true, force: true });
    removed.push(path.join(vmsDir, id));
  }
  return removed;
}
