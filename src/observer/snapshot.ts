// One picture of the database, the QEMU processes and the disk files, taken so
// that vman's own transitions (start, stop, hot-plug) are not mistaken for faults.
import { readdir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import type { Rows, VmanDb } from '../db/database.ts';
import type { AddressRecord, DiskRecord, IntentRecord, SnapshotRecord, VmRecord } from '../db/types.ts';
import type { NetworkInventory } from '../network/backend.ts';
import { isQemuSystem, listProcesses, qemuNameOf } from '../operator/proc.ts';
import type { ProcessInfo } from '../operator/proc.ts';
import { vmPaths } from '../operator/qemu-command.ts';
import { QmpClient } from '../operator/qmp-client.ts';
import { SNAPSHOTS_DIR } from '../model/snapshot-files.ts';

export interface QemuProcessView {
  pid: number;
  /** From `-name vman-<id>`. */
  vmId?: string;
  argv: string[];
}

export interface VmRuntimeView {
  vmId: string;
  /** query-status .status via qmp-aux.sock; undefined if the monitor was not reachable. */
  qmpStatus?: string;
  /** Device ids from query-block; undefined if not known. */
  diskDevices?: string[];
  /** Named block nodes from query-named-block-nodes; undefined if not known. */
  blockNodes?: string[];
}

/** A folder under <storage>/vms/<vm folder>/snapshots/, as found on disk. */
export interface SnapshotFolderView {
  /** The name of the VM folder it is in (a VM id, when a record names it). */
  vmFolder: string;
  /** Its absolute path. */
  path: string;
  /** The names of the entries in it. */
  files: string[];
}

export interface ObserverSnapshot {
  storagePath: string;
  vms: VmRecord[];
  disks: DiskRecord[];
  addresses: AddressRecord[];
  intents: IntentRecord[];
  /** The VM snapshots recorded (the snapshots table; not this picture, which the observer also calls a snapshot). */
  snapshots: SnapshotRecord[];
  /** The vman instance taking the snapshot: its own intents are operations in flight. */
  owner: string;
  /** Only the QEMU processes of this vman (see vmanQemuProcesses). */
  processes: QemuProcessView[];
  /** Absolute paths of the files in <storage>/disks. */
  diskFiles: string[];
  /** Names of the entries in <storage>/vms. */
  vmFolders: string[];
  /** The folders under each VM folder's snapshots/, with what each holds. */
  snapshotFolders: SnapshotFolderView[];
  runtime: Map<string, VmRuntimeView>;
  /** Tap devices and DHCP reservations, where the network mode has them. */
  network?: NetworkInventory;
}

export type { Rows };

export interface SnapshotSources {
  /** The vman instance whose intents are in flight (see IntentJournal.owner). */
  owner: string;
  /** Synchronous, in one read transaction. */
  readRows(): Rows;
  listProcesses(): Promise<ProcessInfo[]>;
  listDiskFiles(): Promise<string[]>;
  listVmFolders(): Promise<string[]>;
  listSnapshotFolders(): Promise<SnapshotFolderView[]>;
  inspectVm(vm: VmRecord, pid: number): Promise<VmRuntimeView>;
  /** Bridge mode: the taps on the bridge and dnsmasq's reservations. */
  networkInventory?(): Promise<NetworkInventory>;
  /**
   * Optional: a value that changes whenever any row is written. When it is the
   * same after the observations as before, the rows are not read a second time.
   */
  changeToken?(): string;
}

/** QEMU writes a literal ',' as ',,' inside an option string. */
function optionValues(arg: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < arg.length; i++) {
    const ch = arg[i];
    if (ch === ',' && arg[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (ch === ',') {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  // `path=/x` and `/x` both name a path; the key is never one.
  return parts.map((p) => (p.startsWith('/') ? p : p.slice(p.indexOf('=') + 1)));
}

function pointsInside(argv: readonly string[], prefix: string): boolean {
  const escaped = prefix.replaceAll(',', ',,');
  // Cheap pre-filter: most arguments mention no path at all.
  return argv.some((a) => (a.includes(prefix) || a.includes(escaped)) && optionValues(a).some((v) => v.startsWith(prefix)));
}

/**
 * The QEMU system processes of the vman whose storage is `storagePath`: an argument
 * (a pidfile, a socket, a disk) must point inside that storage. `-name vman-<id>`
 * only names the VM: a vman QEMU whose paths lie in another storage folder belongs
 * to another vman instance, and an executable name alone proves nothing.
 */
export function vmanQemuProcesses(all: ProcessInfo[], storagePath: string): QemuProcessView[] {
  const prefix = path.resolve(storagePath) + '/';
  const out: QemuProcessView[] = [];
  for (const p of all) {
    if (p.state === 'Z' || p.state === 'X' || !isQemuSystem(p.argv)) continue;
    if (!pointsInside(p.argv, prefix)) continue;
    const name = qemuNameOf(p.argv);
    const vmId = name?.startsWith('vman-') && name.length > 'vman-'.length ? name.slice('vman-'.length) : undefined;
    out.push(vmId === undefined ? { pid: p.pid, argv: p.argv } : { pid: p.pid, vmId, argv: p.argv });
  }
  return out;
}

/**
 * Which process each VM row owns: the one named vman-<id> (the recorded pid wins
 * among duplicates), else an unnamed process at the recorded pid. Unclaimed
 * processes are orphans.
 */
export function claimProcesses(vms: readonly VmRecord[], processes: readonly QemuProcessView[]): Map<string, QemuProcessView> {
  const byName = new Map<string, QemuProcessView[]>();
  const unnamedByPid = new Map<number, QemuProcessView>();
  for (const p of processes) {
    if (p.vmId === undefined) unnamedByPid.set(p.pid, p);
    else {
      const list = byName.get(p.vmId);
      if (list) list.push(p);
      else byName.set(p.vmId, [p]);
    }
  }
  const claimed = new Map<string, QemuProcessView>();
  for (const vm of vms) {
    const named = byName.get(vm.id);
    const proc = named
      ? (named.find((p) => p.pid === vm.pid) ?? named[0])
      : vm.pid !== null ? unnamedByPid.get(vm.pid) : undefined;
    if (proc) claimed.set(vm.id, proc);
  }
  return claimed;
}

/**
 * True when no row changed between two reads. Every repository write bumps
 * updatedAt, and the lists come in a fixed order, so an index-by-index walk
 * suffices: a row that moved, appeared or vanished shows up as a difference.
 */
export function sameRows(a: Rows, b: Rows): boolean {
  const sameList = <T>(x: readonly T[], y: readonly T[], eq: (p: T, q: T) => boolean): boolean =>
    x.length === y.length && x.every((p, i) => eq(p, y[i] as T));
  return (
    sameList(a.vms, b.vms, (p, q) => p.id === q.id && p.state === q.state && p.pid === q.pid && p.updatedAt === q.updatedAt) &&
    sameList(a.disks, b.disks, (p, q) => p.id === q.id && p.state === q.state && p.vmId === q.vmId && p.path === q.path && p.updatedAt === q.updatedAt) &&
    sameList(a.addresses, b.addresses, (p, q) => p.address === q.address && p.vmId === q.vmId && p.allocatedAt === q.allocatedAt) &&
    sameList(a.intents, b.intents, (p, q) => p.id === q.id) &&
    // A snapshot row is never updated, only inserted and deleted.
    sameList(a.snapshots, b.snapshots, (p, q) => p.id === q.id)
  );
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface TakeSnapshotOptions {
  /** Attempts at a window in which no row changed; the last attempt is used regardless. */
  maxAttempts?: number;
  /** QMP inspections run at most this many at a time. */
  inspectConcurrency?: number;
}

/**
 * Reads the rows before and after looking at processes, files and monitors. If a
 * row changed meanwhile (a VM starting or stopping, a disk being attached) the
 * picture is mixed, so it is taken again; with rows unchanged across the window,
 * any disagreement is not one of vman's own transitions in flight.
 */
export async function takeSnapshot(storagePath: string, src: SnapshotSources, opts: TakeSnapshotOptions = {}): Promise<ObserverSnapshot> {
  const attempts = Math.max(1, opts.maxAttempts ?? 3);
  for (let attempt = 1; ; attempt++) {
    const token = src.changeToken?.();
    const before = src.readRows();
    const [all, diskFiles, vmFolders, snapshotFolders, network] = await Promise.all([
      src.listProcesses(), src.listDiskFiles(), src.listVmFolders(), src.listSnapshotFolders(), src.networkInventory?.(),
    ]);
    const processes = vmanQemuProcesses(all, storagePath);
    const claimed = claimProcesses(before.vms, processes);
    const targets = before.vms.flatMap((vm) => {
      const p = claimed.get(vm.id);
      return p ? [{ vm, pid: p.pid }] : [];
    });
    const views = await mapLimited(targets, opts.inspectConcurrency ?? 8, (t) => src.inspectVm(t.vm, t.pid));
    const untouched = token !== undefined && src.changeToken?.() === token;
    const after = untouched ? before : src.readRows();
    if (untouched || attempt >= attempts || sameRows(before, after)) {
      const runtime = new Map<string, VmRuntimeView>(views.map((v) => [v.vmId, v]));
      return { storagePath, ...after, owner: src.owner, processes, diskFiles, vmFolders, snapshotFolders, runtime, ...(network ? { network } : {}) };
    }
  }
}

const QMP_TIMEOUT_MS = 2000;

interface BlockInfo { device?: string; qdev?: string }

/** query-block names a -device by its qdev id, or by a QOM path under /machine/peripheral/<id>/. */
export function blockDeviceIds(blocks: readonly BlockInfo[]): string[] {
  const ids = new Set<string>();
  for (const b of blocks) {
    if (b.device) ids.add(b.device);
    const qdev = b.qdev ?? '';
    const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
    if (m?.[1]) ids.add(m[1]);
    else if (qdev !== '' && !qdev.startsWith('/')) ids.add(qdev);
  }
  return [...ids];
}

/** Asks QEMU over the observers' monitor (qmp-aux.sock); the operator holds qmp.sock. */
export async function inspectOverQmp(vm: VmRecord): Promise<VmRuntimeView> {
  let client: QmpClient | undefined;
  try {
    client = await QmpClient.connect(vmPaths(vm.storageDir).qmpAux, { timeoutMs: QMP_TIMEOUT_MS });
    const status = await client.execute<{ status: string }>('query-status', undefined, { timeoutMs: QMP_TIMEOUT_MS });
    const view: VmRuntimeView = { vmId: vm.id, qmpStatus: status.status };
    // Unknown (left out) when QEMU does not answer: the disk checks stay silent for this VM.
    try {
      const blocks = await client.execute<BlockInfo[]>('query-block', undefined, { timeoutMs: QMP_TIMEOUT_MS });
      view.diskDevices = blockDeviceIds(blocks);
      const nodes = await client.execute<Array<{ 'node-name'?: string }>>('query-named-block-nodes', { flat: true }, { timeoutMs: QMP_TIMEOUT_MS });
      // '#block123' names are QEMU's own for anonymous nodes; vman names every node it makes.
      view.blockNodes = nodes.flatMap((n) => (typeof n['node-name'] === 'string' && !n['node-name'].startsWith('#') ? [n['node-name']] : []));
    } catch {
      delete view.blockNodes;
    }
    return view;
  } catch {
    return { vmId: vm.id };
  } finally {
    await client?.close();
  }
}

export async function listDiskFilesIn(storagePath: string): Promise<string[]> {
  const dir = path.join(path.resolve(storagePath), 'disks');
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => !e.isDirectory()).map((e) => path.join(dir, e.name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function listVmFoldersIn(storagePath: string): Promise<string[]> {
  try {
    return (await readdir(path.join(path.resolve(storagePath), 'vms'), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Entries of a folder, or none when it is not there (or is not a folder). */
async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

/** Every folder under <storage>/vms/<vm folder>/snapshots/, with the names of what it holds. */
export async function listSnapshotFoldersIn(storagePath: string): Promise<SnapshotFolderView[]> {
  const vmsDir = path.join(path.resolve(storagePath), 'vms');
  const perVm = await mapLimited(await listVmFoldersIn(storagePath), 16, async (vmFolder) => {
    const root = path.join(vmsDir, vmFolder, SNAPSHOTS_DIR);
    const folders = (await entriesOf(root)).filter((e) => e.isDirectory()).map((e) => path.join(root, e.name));
    return mapLimited(folders, 4, async (folder) => ({ vmFolder, path: folder, files: (await entriesOf(folder)).map((e) => e.name).sort() }));
  });
  return perVm.flat();
}

export function defaultSources(db: VmanDb, storagePath: string, opts: { owner: string; networkInventory?: () => Promise<NetworkInventory> }): SnapshotSources {
  return {
    owner: opts.owner,
    readRows: () => db.readRows(),
    changeToken: () => db.changeToken(),
    listProcesses,
    listDiskFiles: () => listDiskFilesIn(storagePath),
    listVmFolders: () => listVmFoldersIn(storagePath),
    listSnapshotFolders: () => listSnapshotFoldersIn(storagePath),
    inspectVm: (vm) => inspectOverQmp(vm),
    ...(opts.networkInventory ? { networkInventory: opts.networkInventory } : {}),
  };
}
