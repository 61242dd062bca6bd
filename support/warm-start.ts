// Warm starts for the suite. A scenario that needs "a running VM" and is not
// about booting gets it as a clone of a warm snapshot: each worker boots one
// origin VM once, through vman's own API, snapshots it with its memory, and
// stops it. A scenario that will clone starts its vman on a copy of that
// storage (the origin's row and folder, its snapshot's row and files, at the
// same path), and its clones resume from the snapshot instead of booting.
// Scenarios about booting, starting and stopping are tagged @cold and boot as
// before; VMAN_SUITE_COLD=1 boots everything cold, so that a clone that
// behaves differently from a cold boot cannot hide.
import { copyFile, link as linkFile, mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Pickle } from '@cucumber/messages';
import { startInProcessVman } from '../world/vman-service.ts';
import { runContext } from './run-context.ts';
import { expectStatus } from './vm-tasks.ts';
import type { VmanWorld } from '../world/vman-world.ts';

/** The worker's origin VM, its snapshot, and the template clones may stand in for. */
export const WARM_ORIGIN = 'suite-warm';
export const WARM_SNAPSHOT = 'warm';
export const WARM_TEMPLATE = 'small';

/** Where the scenario's VMs came up from: for the report, and for steps that must know. */
export interface WarmSource {
  vm: string;
  snapshot: string;
  /** How long the worker took to make it (once, in the first scenario that cloned). */
  madeInMs: number;
}

export function suiteRunsCold(): boolean {
  return process.env.VMAN_SUITE_COLD === '1';
}

// A step that asks for a running VM of the warm template, and the crash
// outline's operations whose set-up starts a VM that is not itself the subject.
const CLONING_STEP = new RegExp(`^a running VM "[^"]+" from the ${WARM_TEMPLATE} template$`);

/**
 * Whether a scenario gets clones: not when everything runs cold, not @cold,
 * and only when one of its steps asks for a running VM (or, in the crash
 * outline, a set-up the caller says starts a VM warm). Every other scenario's
 * vman starts on empty storage as before, with no origin in its lists.
 */
export function scenarioClones(pickle: Pick<Pickle, 'tags' | 'steps'>, crashSetupClones: (stepText: string) => boolean): boolean {
  if (suiteRunsCold()) return false;
  if (pickle.tags.some((t) => t.name === '@cold')) return false;
  return pickle.steps.some((s) => CLONING_STEP.test(s.text) || crashSetupClones(s.text));
}

interface Golden {
  /** The warm storage as vman left it, to be laid out again at warmStoragePath() for each scenario. */
  dir: string;
  ms: number;
}

/**
 * Where a cloning scenario's vman keeps its storage: one path per worker, so
 * the paths vman recorded when it made the warm snapshot hold in every copy.
 * A worker runs one scenario at a time; each teardown empties it.
 */
export function warmStoragePath(): string {
  return path.join(runContext().root, 'warm', 'vman');
}

let golden: Promise<Golden> | undefined;

/**
 * The worker's warm snapshot, made once: an in-process vman on the warm
 * storage boots the origin VM cold, snapshots it with its memory and stops it
 * with force (its QEMU is done with; the snapshot stands), then closes. What
 * it left is moved aside as the worker's golden copy.
 */
export function warmSnapshot(imageDirs: string[]): Promise<Golden> {
  golden ??= makeWarmSnapshot(imageDirs).catch((err: unknown) => {
    golden = undefined;
    throw err;
  });
  return golden;
}

async function makeWarmSnapshot(imageDirs: string[]): Promise<Golden> {
  const started = Date.now();
  const storagePath = warmStoragePath();
  const dir = path.join(runContext().root, 'warm-golden');
  await rm(storagePath, { recursive: true, force: true });
  // Passable, as every folder above a VM's (its QEMU runs as a user of its own).
  await mkdir(path.dirname(storagePath), { recursive: true, mode: 0o711 });
  const vman = await startInProcessVman({ storagePath, imageDirs });
  try {
    const created = expectStatus<{ id: string }>(await vman.http.post('api/v1/vms', { json: { name: WARM_ORIGIN, template: WARM_TEMPLATE } }), 201, `create the warm origin ${WARM_ORIGIN}`);
    expectStatus(await vman.http.post(`api/v1/vms/${created.id}/start`), 200, `start the warm origin ${WARM_ORIGIN}`);
    expectStatus(await vman.http.post(`api/v1/vms/${created.id}/snapshots`, { json: { name: WARM_SNAPSHOT } }), 201, `snapshot ${WARM_SNAPSHOT} of ${WARM_ORIGIN}`);
    expectStatus(await vman.http.post(`api/v1/vms/${created.id}/stop`, { json: { force: true } }), 200, `stop the warm origin ${WARM_ORIGIN}`);
  } catch (err) {
    const log = vman.log().slice(-2000);
    await vman.stop();
    throw new Error(`the worker's warm snapshot could not be made: ${err instanceof Error ? err.message : String(err)}\n${log}`, { cause: err });
  }
  await vman.stop();
  await rm(dir, { recursive: true, force: true });
  await rename(storagePath, dir);
  return { dir, ms: Date.now() - started };
}

/**
 * Lays the worker's warm storage out again for a scenario's vman, before it
 * first starts: the database and every other small file copied (vman writes
 * them), the VM folders hard-linked (the origin's saved memory is only read:
 * QEMU loads it from a descriptor vman opens read-only).
 */
export async function seedWarmStorage(imageDirs: string[]): Promise<WarmSource> {
  const { dir, ms } = await warmSnapshot(imageDirs);
  const target = warmStoragePath();
  await rm(target, { recursive: true, force: true });
  await layOut(dir, target, false);
  return { vm: WARM_ORIGIN, snapshot: WARM_SNAPSHOT, madeInMs: ms };
}

/** Copies a tree; below the top-level `vms/` folder, files are hard-linked instead. */
async function layOut(from: string, to: string, link: boolean, top = true): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o711 });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) await layOut(src, dst, link || (top && entry.name === 'vms'), false);
    else if (link) await linkFile(src, dst);
    else await copyFile(src, dst);
  }
}

/** The VM folders under vman's storage that the scenario made: every one but the worker's warm origin's, which its clones stand on. */
export async function scenarioVmFolders(world: VmanWorld): Promise<string[]> {
  const storage = world.api().storagePath;
  const origin = world.warmSource ? (await world.db().one('SELECT id FROM vms WHERE name = ?', [world.warmSource.vm]))?.id : undefined;
  return (await readdir(path.join(storage, 'vms')).catch(() => [] as string[])).filter((f) => f !== origin).sort();
}
