// The places an id would reach if vman joined it to one of its folders as a
// name: <storage>/vms/<id> (a VM's folder, which a delete removes) and
// <storage>/disks/<id>.qcow2 (a disk's file). Before a request with that id,
// each place is prepared: a marker file where nothing is (only inside the
// scenario's own folder), or a fingerprint of what is there already (the
// storage folder itself, for ".."); after it, each must be exactly as it was.
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { treeOf, type StorageEntry } from './validation-state.ts';

export interface Place {
  /** What vman would take the place for. */
  what: string;
  path: string;
}

/** What is at a place: a file, a folder (with everything under it), nothing, or nothing that could be. */
export type PlaceState =
  | { state: 'file'; bytes: number; sha256: string }
  | { state: 'folder'; tree: StorageEntry[] }
  | { state: 'absent' }
  | { state: 'cannot exist'; why: string };

/** Where the id would lead from vman's folders. */
export function placesOf(world: VmanWorld, id: string): Place[] {
  const storage = world.api().storagePath;
  return [
    { what: 'the folder of a VM with that id', path: path.resolve(storage, 'vms', id) },
    { what: 'the file of a disk with that id', path: path.resolve(storage, 'disks', `${id}.qcow2`) },
  ];
}

export async function stateOf(place: string): Promise<PlaceState> {
  let st;
  try {
    st = await lstat(place);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { state: 'absent' };
    if (e.code === 'ENAMETOOLONG') return { state: 'cannot exist', why: 'the name is longer than a file name may be' };
    if (e.code === 'ERR_INVALID_ARG_VALUE' || e.code === 'ERR_INVALID_ARG_TYPE') return { state: 'cannot exist', why: 'a file name cannot hold NUL' };
    if (e.code === 'ENOTDIR') return { state: 'cannot exist', why: 'a file stands where a folder would have to be' };
    throw err;
  }
  if (st.isDirectory()) return { state: 'folder', tree: await treeOf(place) };
  if (st.isFile()) {
    const content = await readFile(place);
    return { state: 'file', bytes: content.length, sha256: createHash('sha256').update(content).digest('hex') };
  }
  throw new Error(`${place} is neither a file nor a folder`);
}

/** A place an id would lead to, and what it held before the request. */
export interface PreparedPlace { place: Place; before: PlaceState }

/**
 * Puts a marker file at each place where nothing is (never outside the
 * scenario's folder), then notes what every place holds.
 */
export async function preparePlaces(world: VmanWorld, id: string): Promise<PreparedPlace[]> {
  const scenario = path.resolve(world.storage);
  const places = placesOf(world, id);
  for (const place of places) {
    if ((await stateOf(place.path)).state !== 'absent') continue;
    if (!place.path.startsWith(`${scenario}/`)) {
      throw new Error(`the id ${JSON.stringify(id)} leads to ${place.path}, outside this scenario's folder ${scenario}: the suite writes nothing there; choose an id that stays inside`);
    }
    await mkdir(path.dirname(place.path), { recursive: true });
    await writeFile(place.path, `where the id ${JSON.stringify(id)} would lead: ${place.what}\n`);
  }
  const noted: PreparedPlace[] = [];
  for (const place of places) noted.push({ place, before: await stateOf(place.path) });
  (world.notes.preparedPlaces ??= Object.create(null) as Record<string, PreparedPlace[]>)[id] = noted;
  world.attach(noted.map((n) => `${n.place.what}: ${n.place.path} — ${n.before.state}${n.before.state === 'cannot exist' ? ` (${n.before.why})` : ''}`).join('\n'),
    { mediaType: 'text/plain', fileName: `where ${JSON.stringify(id).slice(0, 60)} would lead` });
  return noted;
}

/** The places whose content is no longer what it was before the request, in words. */
export async function disturbedPlaces(world: VmanWorld, id: string): Promise<string[]> {
  const noted = world.notes.preparedPlaces?.[id];
  if (!noted) throw new Error(`the places where the id ${JSON.stringify(id)} would lead were not prepared in this scenario`);
  const out: string[] = [];
  for (const { place, before } of noted) {
    const now = await stateOf(place.path);
    if (JSON.stringify(now) !== JSON.stringify(before)) {
      out.push(`${place.what} (${place.path}) was ${describe(before)} and is now ${describe(now)}`);
    }
  }
  return out;
}

function describe(s: PlaceState): string {
  switch (s.state) {
    case 'file': return `a file of ${s.bytes} bytes (sha256 ${s.sha256.slice(0, 12)}…)`;
    case 'folder': return `a folder of ${s.tree.length} entries`;
    case 'absent': return 'nothing';
    case 'cannot exist': return `impossible (${s.why})`;
  }
}
