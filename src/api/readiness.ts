// Whether VMs can start here now: what GET /ready answers. QEMU and qemu-img
// come from the host probe at start-up; the storage folder is checked on each
// call (it can fill up or be remounted read-only while vman runs).
import { randomBytes } from 'node:crypto';
import { rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MIN_FREE_BYTES } from '../host/probe.ts';
import type { HostSummary } from './routes/system.ts';

export interface ReadinessInput {
  host: HostSummary;
  /** vman's storage folder; unset (some unit tests): not checked. */
  storagePath?: string | undefined;
}

/** Why no VM can start now, or undefined when they can. */
export async function notReadyReason({ host, storagePath }: ReadinessInput): Promise<string | undefined> {
  // Dry run: processes are simulated, nothing on the host is needed.
  if (host.dry_run) return undefined;
  if (!host.qemu_path || !host.qemu_img_path) return host.accelerator_reason || 'QEMU or qemu-img is not usable on this host';
  if (host.confinement?.refusal) return host.confinement.refusal;
  if (storagePath === undefined) return undefined;
  const probe = path.join(storagePath, `.ready-${randomBytes(4).toString('hex')}`);
  try {
    // Written, not merely access()-checked: root passes access() on a read-only file system.
    await writeFile(probe, 'ready?\n', { mode: 0o600 });
  } catch (err) {
    return `the storage folder ${storagePath} is not writable: ${(err as Error).message}`;
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
  const fs = await statfs(storagePath);
  const free = fs.bavail * fs.bsize;
  if (free < MIN_FREE_BYTES) {
    return `only ${(free / 1024 ** 2).toFixed(0)} MB free in the storage folder ${storagePath}; VMs need at least ${MIN_FREE_BYTES / 1024 ** 2} MB there`;
  }
  return undefined;
}
