// One picture of the database, the QEMU processes and the disk files, taken so
// that vman's own transitions (start, stop, hot-plug) are not mistaken for faults.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { VmanDb } from '../db/database.ts';
import type { AddressRecord, DiskRecord, VmRecord } from '../db/types.ts';
import { isQemuSystem, listProcesses, qemuNameOf } from '../operator/proc.ts';
import type { ProcessInfo } from '../operator/proc.ts';
import { vmPaths } from '../operator/qemu-command.ts';
import { QmpClient } from '../operator/qmp-client.ts';

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
}

export interface ObserverSnapshot {
  storagePath: string;
  vms: VmRecord[];
  disks: DiskRecord[];
  addresses: AddressRecord[];
  /** Only the QEMU processes of this vman (see vmanQemuProcesses). */
  processes: QemuProcessView[];
  /** Absolute paths of the files in <storage>/disks. */
  diskFiles: string[];
  runtime: Map<string, VmRuntimeView>;
}

export interface Rows {
  vms: VmRecord[];
  disks: DiskRecord[];
  addresses: AddressRecord[];
}

export interface SnapshotSources {
  /** Synchronous, in one read transaction. */
  readRows(): Rows;
  listProcesses(): Promise<ProcessInfo[]>;
  listDiskFiles(): Promise<string[]>;
  inspectVm(vm: VmRecord, pid: number): Promise<VmRuntimeView>;
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
    sameList(a.addresses, b.addresses, (p, q) => p.address === q.address && p.vmId === q.vmId && p.allocatedAt === q.allocatedAt)
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
    const [all, diskFiles] = await Promise.all([src.listProcesses(), src.listDiskFiles()]);
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
      return { storagePath, ...after, processes, diskFiles, runtime };
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
    let diskDevices: string[] | undefined;
    try {
      const blocks = await client.execute<BlockInfo[]>('query-block', undefined, { timeoutMs: QMP_TIMEOUT_MS });
      diskDevices = blockDeviceIds(blocks);
    } catch {
      diskDevices = undefined; // Unknown, so the disk check stays silent for this VM.
    }
    return diskDevices === undefined ? { vmId: vm.id, qmpStatus: status.status } : { vmId: vm.id, qmpStatus: status.status, diskDevices };
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

export function defaultSources(db: VmanDb, storagePath: string): SnapshotSources {
  // Deferred (read) transaction: one consistent view in WAL mode, without taking the write lock.
  const read = db.db.transaction((): Rows => ({
    vms: db.vms.list(),
    disks: db.disks.list(),
    addresses: db.addresses.list(),
  }));
  // data_version moves on another connection's commit, total_changes() on this one's writes.
  const totalChanges = db.db.prepare<[], number>('SELECT total_changes()').pluck();
  return {
    readRows: () => read(),
    changeToken: () => `${String(db.db.pragma('data_version', { simple: true }))}:${totalChanges.get() ?? 0}`,
    listProcesses,
    listDiskFiles: () => listDiskFilesIn(storagePath),
    inspectVm: (vm) => inspectOverQmp(vm),
  };
}
