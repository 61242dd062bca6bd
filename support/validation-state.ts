// Everything vman holds, read by the suite's own means, to prove that a
// refused request changed nothing: every table of its SQLite file (through
// sqlite3 in a process of its own, not vman's driver), every file under its
// storage folder (relative path, kind, size and SHA-256), and the QEMU
// processes under the scenario's folder (from /proc). What is not compared
// byte for byte is listed with the reason, never left out silently.
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import type { Row } from './db-reader.ts';
import { sha256File } from './file-digest.ts';
import { qemusUnder } from './proc-reader.ts';
import { auxSocketOf, qemuBlockView } from './qmp-reader.ts';

/** The tables vman's schema has (migrations 1 and 2 and their bookkeeping): each must be there to be compared. */
export const VMAN_TABLES = ['templates', 'vms', 'disks', 'address_allocations', 'intents', 'schema_migrations'] as const;

export interface StorageEntry {
  /** Relative to the storage folder. */
  path: string;
  kind: 'folder' | 'file' | 'socket' | 'symlink' | 'other';
  bytes?: number;
  sha256?: string;
  /** A symlink's target. */
  target?: string;
  /** Why the content is not compared, when it is not. */
  notCompared?: string;
}

export interface Holdings {
  /** Every table by name, rows in a stable order; sqlite_master (the schema itself) among them. */
  tables: Record<string, Row[]>;
  storage: StorageEntry[];
  qemus: Array<{ pid: number; argv: string[] }>;
  /** What each running QEMU holds, asked over its second monitor: devices and block nodes, by VM folder. */
  blocks: Record<string, { devices: string[]; nodes: string[] } | string>;
}

/** What a comparison leaves out on purpose, each said where it is used (a restart of vman touches updated_at and writes its database). */
export interface Leeway {
  columns?: readonly string[];
  files?: readonly string[];
  /** Whole tables left out: sqlite_sequence, where an operation that began (its intent written, then removed) leaves its number. */
  tables?: readonly string[];
}

/** Files whose content changes without vman changing anything, by name, with the reason. */
const NOT_COMPARED: Record<string, string> = {
  'vman.db-shm': "SQLite's shared-memory index of the WAL, which every reader (the suite's included) writes",
};

/** A file a running QEMU appends to: it may grow, but what was there must stay. */
const APPEND_ONLY = 'serial.log';

const stable = (rows: Row[]): Row[] => [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

/** Every table of vman's database file, and its schema, through the suite's sqlite3 reader. */
export async function databaseTables(world: VmanWorld): Promise<Record<string, Row[]>> {
  const db = world.db();
  const schema = await db.all('SELECT type, name, tbl_name, sql FROM sqlite_master');
  const tables: Record<string, Row[]> = { sqlite_master: stable(schema) };
  for (const t of schema.filter((r) => r.type === 'table')) {
    const name = String(t.name);
    tables[name] = stable(await db.all(`SELECT * FROM "${name.replace(/"/g, '""')}"`));
  }
  const missing = VMAN_TABLES.filter((t) => !(t in tables));
  if (missing.length > 0) throw new Error(`vman's database has no table ${missing.join(', ')}: there is nothing to compare it with`);
  return tables;
}

/**
 * Every entry under `root`, depth first, by relative path. A missing root is
 * an error, not an empty listing: a folder that is not there was not "unchanged".
 */
export async function treeOf(root: string): Promise<StorageEntry[]> {
  const st = await lstat(root).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`the folder ${root} is not there (${err.code}): there is nothing to compare`);
  });
  if (!st.isDirectory()) throw new Error(`${root} is not a folder`);
  const entries: StorageEntry[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const full = path.join(dir, name);
      const relPath = `${rel}${name}`;
      const s = await lstat(full).catch(() => undefined);
      if (!s) {
        entries.push({ path: relPath, kind: 'other', notCompared: 'it went while the folder was read' });
        continue;
      }
      if (s.isDirectory()) {
        entries.push({ path: relPath, kind: 'folder' });
        await walk(full, `${relPath}/`);
      } else if (s.isFile()) {
        const why = NOT_COMPARED[name];
        entries.push(why ? { path: relPath, kind: 'file', notCompared: why } : { path: relPath, kind: 'file', bytes: s.size, sha256: await sha256File(full) });
      } else if (s.isSymbolicLink()) {
        entries.push({ path: relPath, kind: 'symlink', target: await readlink(full) });
      } else {
        entries.push({ path: relPath, kind: s.isSocket() ? 'socket' : 'other' });
      }
    }
  };
  await walk(root, '');
  return entries;
}

/** What vman holds now. */
export async function holdings(world: VmanWorld): Promise<Holdings> {
  const [tables, storage, qemus] = await Promise.all([
    databaseTables(world),
    treeOf(world.api().storagePath),
    qemusUnder(world.storage),
  ]);
  return { tables, storage, qemus: qemus.map((p) => ({ pid: p.pid, argv: p.argv })).sort((a, b) => a.pid - b.pid), blocks: await blocksOf(world) };
}

/** The block devices and nodes of every VM folder whose QEMU answers on its second monitor. */
async function blocksOf(world: VmanWorld): Promise<Holdings['blocks']> {
  const vmsDir = path.join(world.api().storagePath, 'vms');
  const out: Holdings['blocks'] = {};
  for (const folder of (await readdir(vmsDir).catch(() => [] as string[])).sort()) {
    const dir = path.join(vmsDir, folder);
    if (!(await lstat(auxSocketOf(dir)).then(() => true, () => false))) continue;
    out[folder] = await qemuBlockView(dir).then(({ devices, nodes }) => ({ devices, nodes }), (e: Error) => `unreadable: ${e.message}`);
  }
  return out;
}

/**
 * Every difference between two looks, in words; empty when there is none. A
 * VM's serial log may have grown while its QEMU ran throughout, as long as what
 * it held before is still its beginning.
 */
export async function differences(world: VmanWorld, before: Holdings, after: Holdings, leeway: Leeway = {}): Promise<string[]> {
  const out: string[] = [];
  const tableNames = [...new Set([...Object.keys(before.tables), ...Object.keys(after.tables)])].filter((t) => !leeway.tables?.includes(t)).sort();
  const loose = (rows: Row[] | undefined): Row[] | undefined =>
    rows?.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !leeway.columns?.includes(k))));
  for (const t of tableNames) {
    const b = loose(before.tables[t]);
    const a = loose(after.tables[t]);
    if (!b) { out.push(`table ${t} appeared`); continue; }
    if (!a) { out.push(`table ${t} is gone`); continue; }
    const bs = new Set(b.map((r) => JSON.stringify(r)));
    const as = new Set(a.map((r) => JSON.stringify(r)));
    for (const r of bs) if (!as.has(r)) out.push(`table ${t}: row gone or changed: ${r.slice(0, 300)}`);
    for (const r of as) if (!bs.has(r)) out.push(`table ${t}: row new or changed: ${r.slice(0, 300)}`);
    if (b.length !== a.length && bs.size === as.size) out.push(`table ${t}: ${b.length} rows before, ${a.length} after`);
  }

  const running = (q: Holdings['qemus']) => new Map(q.map((p) => [p.pid, p.argv.join(' ')]));
  const qb = running(before.qemus);
  const qa = running(after.qemus);
  for (const [pid, argv] of qb) if (qa.get(pid) !== argv) out.push(`QEMU ${pid} (${argv.slice(0, 200)}) is gone or changed`);
  for (const [pid, argv] of qa) if (!qb.has(pid)) out.push(`QEMU ${pid} is new: ${argv.slice(0, 200)}`);
  const ranThroughout = (vmFolder: string): boolean => [...qb.entries()].some(([pid, argv]) => qa.get(pid) === argv && argv.includes(`${vmFolder}/`));

  for (const folder of [...new Set([...Object.keys(before.blocks), ...Object.keys(after.blocks)])].sort()) {
    const b = JSON.stringify(before.blocks[folder] ?? 'no QEMU');
    const a = JSON.stringify(after.blocks[folder] ?? 'no QEMU');
    if (a !== b) out.push(`QEMU of ${folder} held ${b}, now ${a}`);
  }

  const root = world.api().storagePath;
  const sb = new Map(before.storage.map((e) => [e.path, e]));
  const sa = new Map(after.storage.map((e) => [e.path, e]));
  for (const [p, e] of sb) {
    const now = sa.get(p);
    if (!now) { out.push(`storage: ${p} (${e.kind}) is gone`); continue; }
    if (JSON.stringify(e) === JSON.stringify(now)) continue;
    if (leeway.files?.includes(p)) continue;
    if (path.basename(p) === APPEND_ONLY && e.kind === 'file' && now.kind === 'file' && e.bytes !== undefined && now.bytes !== undefined
      && now.bytes >= e.bytes && ranThroughout(path.join(root, path.dirname(p)))) {
      const prefix = await sha256File(path.join(root, p), e.bytes).catch(() => 'unreadable');
      if (e.bytes === 0 || prefix === e.sha256) continue;
      out.push(`storage: ${p} was rewritten, not appended to`);
      continue;
    }
    out.push(`storage: ${p} changed: ${JSON.stringify(e)} → ${JSON.stringify(now)}`);
  }
  for (const [p, e] of sa) if (!sb.has(p)) out.push(`storage: ${p} (${e.kind}) is new`);
  return out;
}

/** Notes what vman holds, to compare after a request that must change nothing. */
export async function noteHoldings(world: VmanWorld): Promise<void> {
  world.notes.heldBefore = await holdings(world);
  world.notes.prototypesBefore = prototypesNow();
}

/** The differences since the last note; throws when nothing was noted. */
export async function changesSinceLastRequest(world: VmanWorld, leeway: Leeway = {}): Promise<string[]> {
  const before = world.noted('heldBefore', 'what vman held before a request (none was sent in this scenario), so there is nothing to compare with');
  const after = await holdings(world);
  const found = await differences(world, before, after, leeway);
  world.attach(
    `Compared: ${Object.keys(after.tables).length} tables (${Object.keys(after.tables).join(', ')}), ` +
      `${after.storage.length} entries under ${world.api().storagePath}, ${after.qemus.length} QEMU processes ` +
      `and the devices and block nodes of ${Object.keys(after.blocks).length}.\n` +
      `Left out on purpose: ${[...(leeway.tables ?? []).map((t) => `the table ${t}`), ...(leeway.columns ?? []).map((c) => `the column ${c}`), ...(leeway.files ?? [])].join(', ') || 'nothing'}\n` +
      `Not compared byte for byte:\n${after.storage.filter((e) => e.notCompared).map((e) => `  ${e.path}: ${e.notCompared}`).join('\n') || '  nothing'}\n` +
      `Differences:\n${found.map((d) => `  ${d}`).join('\n') || '  none'}`,
    { mediaType: 'text/plain', fileName: 'what vman held before and after' },
  );
  return found;
}

/** The storage entries that appeared since the last note. */
export async function storageGainedSinceLastRequest(world: VmanWorld): Promise<StorageEntry[]> {
  const before = world.noted('heldBefore', 'what vman held before a request (none was sent in this scenario), so there is nothing to compare with');
  const known = new Set(before.storage.map((e) => e.path));
  return (await treeOf(world.api().storagePath)).filter((e) => !known.has(e.path));
}

// --- the prototypes of the process vman runs in -----------------------------------

/**
 * The properties of the prototypes every object, list and function inherits
 * from, with their types. The in-process vman shares this process: a body
 * that reached Object.prototype would show here.
 */
export function prototypesNow(): Record<string, string[]> {
  const describe = (o: object): string[] => Reflect.ownKeys(o).map((k) => {
    const d = Object.getOwnPropertyDescriptor(o, k)!;
    return `${String(k)}: ${'value' in d ? typeof d.value : 'accessor'}`;
  }).sort();
  return { 'Object.prototype': describe(Object.prototype), 'Array.prototype': describe(Array.prototype), 'Function.prototype': describe(Function.prototype) };
}

/** What the prototypes gained or lost since the last request, and whether a plain object now inherits anything. */
export function prototypeChangesSinceLastRequest(world: VmanWorld): string[] {
  const before = world.noted('prototypesBefore', 'the prototypes before a request (none was sent in this scenario), so there is nothing to compare with');
  const now = prototypesNow();
  const out: string[] = [];
  for (const [proto, props] of Object.entries(now)) {
    const was = new Set(before[proto]);
    for (const p of props) if (!was.has(p)) out.push(`${proto} gained ${p}`);
    for (const p of was) if (!props.includes(p)) out.push(`${proto} lost ${p}`);
  }
  for (const key in {}) out.push(`a new empty object inherits the enumerable property ${key}`);
  return out;
}
