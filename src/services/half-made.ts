// At start-up, before anything else: remove what a vman killed in the middle
// of a request left half-made, so every resource is either complete or absent.
// Only vman's own leftovers, found by their names: a qemu-img temp file in the
// disk folder, a VM folder that no row owns and no QEMU uses.
import { randomBytes } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { VmanDb } from '../db/database.ts';
import { listProcesses } from '../operator/proc.ts';
import { ID_PATTERN } from '../names.ts';

/** Temporary names: `.<name>.<12 hex>.tmp`, for qemu-img's output and for disks being created or deleted. */
const DISK_TEMP = /^\..+\.[0-9a-f]{12}\.tmp$/;

/** Where a disk file stays while it is being created or deleted. */
export function pendingName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function removeHalfMade(db: VmanDb, storagePath: string): Promise<string[]> {
  const removed: string[] = [];
  const disksDir = path.join(storagePath, 'disks');
  const names = await readdir(disksDir).catch(() => [] as string[]);
  const present = new Set(names);
  // A row whose file is still under its pending name: the create (or the delete)
  // got past the row and no further. Finishing the move makes the disk whole.
  for (const d of db.disks.list()) {
    const base = path.basename(d.path);
    if (path.dirname(d.path) !== disksDir || present.has(base)) continue;
    const pending = names.find((n) => n.startsWith(`.${base}.`) && DISK_TEMP.test(n));
    if (!pending) continue;
    await rename(path.join(disksDir, pending), d.path);
    present.delete(pending);
  }
  for (const name of present) {
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
