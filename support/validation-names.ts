// Names that differ only in case, created one after another: what each create
// answered, the rows of each name, and what the storage folder gained.
import type { VmanWorld } from '../world/vman-world.ts';
import { noteHoldings, storageGainedSinceLastRequest } from './validation-state.ts';
import { createBody } from './validation-requests.ts';
import type { Kind } from './validation-tables.ts';

/** What one create of a name answered. */
export interface CreateAnswer { name: string; statusCode: number; body: unknown }

/** Creates (well-formed) of one kind with these names, one after the other, after noting what vman holds. */
export async function createOneAfterAnother(world: VmanWorld, kind: Kind, names: string[]): Promise<void> {
  await noteHoldings(world);
  const answers: CreateAnswer[] = [];
  for (const name of names) {
    const { path: at, json } = await createBody(world, kind, name);
    const res = await world.api().http.post(at, { json });
    answers.push({ name, statusCode: res.statusCode, body: res.body });
  }
  world.notes.createdOneAfterAnother = answers;
}

export function createdOneAfterAnother(world: VmanWorld): CreateAnswer[] {
  return world.noted('createdOneAfterAnother', 'creates one after another in this scenario');
}

/** The rows of a kind with exactly this name (SQLite compares text byte for byte). */
export function rowsNamed(world: VmanWorld, kind: Kind, name: string): Promise<Array<Record<string, unknown>>> {
  const table = { template: 'templates', VM: 'vms', disk: 'disks' }[kind];
  return world.db().all(`SELECT * FROM ${table} WHERE name = ?`, [name]);
}

/**
 * What the storage folder gained since the last note that is not what the
 * records with these ids have: a VM has its folder vms/<id> (and what is in
 * it), a disk its file disks/<id>.qcow2, a template nothing. Also names what
 * they should have and do not.
 */
export async function storageGainedBeyond(world: VmanWorld, kind: Kind, ids: string[]): Promise<string[]> {
  const gained = await storageGainedSinceLastRequest(world);
  const own = (p: string): boolean => ids.some((id) => (kind === 'VM' ? p === `vms/${id}` || p.startsWith(`vms/${id}/`) : kind === 'disk' ? p === `disks/${id}.qcow2` : false));
  const flaws = gained.filter((e) => !own(e.path)).map((e) => `${e.path} (${e.kind}) is new, and belongs to none of ${ids.join(', ')}`);
  const expected = kind === 'VM' ? ids.map((id) => `vms/${id}`) : kind === 'disk' ? ids.map((id) => `disks/${id}.qcow2`) : [];
  for (const p of expected) if (!gained.some((e) => e.path === p)) flaws.push(`${p} is not there`);
  return flaws;
}

