// Disk hot-plug and unplug over QMP. device_del only asks the guest: a disk is
// detached when DEVICE_DELETED arrives for its device, and only then are its
// block nodes removed. Written against QmpLike so the sequences can be tested
// with a fake as well as against a real QEMU.
import type { DiskSpec } from './qemu-command.ts';
import { diskNodeNames } from '../model/device-model.ts';
import type { QmpEvent } from './qmp-client.ts';

export interface QmpLike {
  execute<T = unknown>(cmd: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>;
  eventWait(name: string, opts: { timeoutMs: number; match?: (ev: QmpEvent) => boolean }): Promise<QmpEvent>;
}

export type HotplugStep = 'blockdev-add file' | 'blockdev-add format' | 'device_add' | 'device_del' | 'blockdev-del';

/** Where a hot-plug or unplug stands after each step that changed QEMU (crash points hang off these). */
export type HotplugProgress =
  | 'file-node-added' | 'format-node-added' | 'device-added'
  | 'device-del-sent' | 'device-deleted' | 'format-node-deleted' | 'file-node-deleted';

export interface HotplugOptions {
  timeoutMs?: number;
  /** Called after each step that changed QEMU. */
  afterStep?: (progress: HotplugProgress) => void;
}

export class HotplugError extends Error {
  readonly step: HotplugStep;
  readonly diskId: string;
  /** Failures while undoing earlier steps; the original failure stays `cause`. */
  readonly rollbackErrors: readonly unknown[];
  constructor(step: HotplugStep, diskId: string, message: string, options: { cause?: unknown; rollbackErrors?: unknown[] } = {}) {
    const rollback = options.rollbackErrors ?? [];
    const suffix = rollback.length ? ` (rollback also failed: ${rollback.map(describe).join('; ')})` : '';
    super(`disk ${diskId}: ${step}: ${message}${suffix}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HotplugError';
    this.step = step;
    this.diskId = diskId;
    this.rollbackErrors = rollback;
  }
}

const DEFAULT_UNPLUG_TIMEOUT_MS = 15_000;

/** blockdev-add (file, then format) and device_add; on failure, undoes what was done, in reverse. */
export async function hotplugDisk(qmp: QmpLike, disk: DiskSpec, opts: HotplugOptions = {}): Promise<void> {
  const { node, fileNode, device } = diskNodeNames(disk.id);
  const cmdOpts = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
  const added: string[] = []; // node names to blockdev-del on rollback, newest first
  const steps: Array<[HotplugStep, string, Record<string, unknown>, HotplugProgress]> = [
    ['blockdev-add file', 'blockdev-add', { driver: 'file', 'node-name': fileNode, filename: disk.path }, 'file-node-added'],
    ['blockdev-add format', 'blockdev-add', { driver: disk.format, 'node-name': node, file: fileNode }, 'format-node-added'],
    ['device_add', 'device_add', { driver: 'virtio-blk-pci', id: device, drive: node, serial: disk.id, ...(disk.addr ? { addr: disk.addr } : {}) }, 'device-added'],
  ];
  for (const [step, cmd, args, progress] of steps) {
    try {
      await qmp.execute(cmd, args, cmdOpts);
    } catch (err) {
      const rollbackErrors: unknown[] = [];
      for (const name of added) {
        await qmp.execute('blockdev-del', { 'node-name': name }, cmdOpts).catch((e: unknown) => rollbackErrors.push(e));
      }
      throw new HotplugError(step, disk.id, describe(err), { cause: err, rollbackErrors });
    }
    if (cmd === 'blockdev-add') added.unshift(String(args['node-name']));
    opts.afterStep?.(progress);
  }
}

/**
 * device_del, wait for DEVICE_DELETED, then blockdev-del both nodes. On a guest
 * refusal or a timeout it stops there: the nodes stay, so the disk stays attached.
 */
export async function unplugDisk(qmp: QmpLike, diskId: string, opts: HotplugOptions = {}): Promise<void> {
  const { node, fileNode, device } = diskNodeNames(diskId);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_UNPLUG_TIMEOUT_MS;
  // Both waits are registered before device_del, or a fast guest's answer is missed.
  const deleted = qmp.eventWait('DEVICE_DELETED', { timeoutMs, match: (ev) => ev.data?.['device'] === device });
  const refused = qmp.eventWait('DEVICE_UNPLUG_GUEST_ERROR', { timeoutMs, match: (ev) => isEventFor(ev, device) });
  deleted.catch(() => undefined); // Observed below; this only prevents an unhandled rejection meanwhile.
  refused.catch(() => undefined);

  let alreadyGone = false;
  try {
    await qmp.execute('device_del', { id: device });
    opts.afterStep?.('device-del-sent');
  } catch (err) {
    const desc = errorDesc(err);
    if (/already in the process of unplug/i.test(desc)) {
      // An earlier device_del is still with the guest: same wait.
    } else if (/not found/i.test(desc) && !(await listDiskDevices(qmp)).includes(device)) {
      alreadyGone = true; // Unplugged earlier; only the nodes may be left.
    } else {
      throw new HotplugError('device_del', diskId, desc, { cause: err });
    }
  }

  if (!alreadyGone) {
    const outcome = await Promise.race([
      deleted.then(() => 'deleted' as const),
      // Only a refusal counts; this wait timing out is left to `deleted` to report.
      refused.then(() => 'refused' as const, () => new Promise<never>(() => undefined)),
    ]).catch((err: unknown) => {
      throw new HotplugError('device_del', diskId, `no DEVICE_DELETED for ${device} within ${timeoutMs} ms: ${describe(err)}`, { cause: err });
    });
    if (outcome === 'refused') throw new HotplugError('device_del', diskId, 'the guest refused the unplug');
    opts.afterStep?.('device-deleted');
  }

  const nodes: Array<[string, HotplugProgress]> = [[node, 'format-node-deleted'], [fileNode, 'file-node-deleted']];
  for (const [name, progress] of nodes) {
    try {
      await qmp.execute('blockdev-del', { 'node-name': name });
    } catch (err) {
      // Already gone (QEMU may drop it, or an earlier attempt got this far): fine.
      const stillThere = await listBlockNodes(qmp).then((list) => list.includes(name), () => true);
      if (stillThere) throw new HotplugError('blockdev-del', diskId, `${name}: ${describe(err)}`, { cause: err });
    }
    opts.afterStep?.(progress);
  }
}

/** What QEMU holds for block storage: device ids (query-block) and named nodes (query-named-block-nodes). */
export interface BlockInventory {
  devices: string[];
  nodes: string[];
}

export async function blockInventory(qmp: QmpLike): Promise<BlockInventory> {
  return { devices: await listDiskDevices(qmp), nodes: (await listBlockNodes(qmp)).filter((n) => !n.startsWith('#')) };
}

/**
 * Takes out of QEMU block devices and nodes that nothing accounts for: each
 * device unplugged (done on DEVICE_DELETED), then the nodes deleted, users
 * before what they use (a format node before its file node), whatever their
 * names. Returns what it removed; throws with what is left.
 */
export async function removeBlock(qmp: QmpLike, what: BlockInventory, opts: { timeoutMs?: number } = {}): Promise<BlockInventory> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_UNPLUG_TIMEOUT_MS;
  const removed: BlockInventory = { devices: [], nodes: [] };
  for (const device of what.devices) {
    const deleted = qmp.eventWait('DEVICE_DELETED', { timeoutMs, match: (ev) => ev.data?.['device'] === device });
    deleted.catch(() => undefined);
    try {
      await qmp.execute('device_del', { id: device });
      await deleted;
    } catch (err) {
      if ((await listDiskDevices(qmp)).includes(device)) throw new Error(`could not unplug ${device}: ${describe(err)}`, { cause: err });
    }
    removed.devices.push(device);
  }
  // A node in use by another cannot go first; passes until nothing more can go.
  let left = [...what.nodes];
  for (let pass = 0; left.length > 0 && pass <= what.nodes.length; pass++) {
    const failed: string[] = [];
    for (const name of left) {
      const ok = await qmp.execute('blockdev-del', { 'node-name': name }).then(() => true, async () => !(await listBlockNodes(qmp)).includes(name));
      if (ok) removed.nodes.push(name);
      else failed.push(name);
    }
    if (failed.length === left.length) break;
    left = failed;
  }
  if (left.length > 0) throw new Error(`QEMU kept the block nodes ${left.join(', ')}`);
  return removed;
}

/** Node names of every block node (flat: children too, such as file nodes). */
export async function listBlockNodes(qmp: QmpLike): Promise<string[]> {
  const nodes = await qmp.execute<unknown>('query-named-block-nodes', { flat: true });
  if (!Array.isArray(nodes)) return [];
  return nodes.flatMap((n: unknown) => {
    const name = isRecord(n) ? n['node-name'] : undefined;
    return typeof name === 'string' ? [name] : [];
  });
}

/** qdev ids of the block devices (`disk-<id>`); anonymous devices have no id and are left out. */
export async function listDiskDevices(qmp: QmpLike): Promise<string[]> {
  const blocks = await qmp.execute<unknown>('query-block');
  if (!Array.isArray(blocks)) return [];
  return blocks.flatMap((b: unknown) => {
    const qdev = isRecord(b) ? b['qdev'] : undefined;
    const id = typeof qdev === 'string' ? qdevId(qdev) : undefined;
    return id ? [id] : [];
  });
}

/** "/machine/peripheral/disk-x/virtio-backend" → "disk-x"; a bare id is returned as is. */
export function qdevId(qdev: string): string | undefined {
  if (!qdev.startsWith('/')) return qdev || undefined;
  const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
  return m?.[1];
}

/** DEVICE_UNPLUG_GUEST_ERROR names the device by id or by its QOM path. */
function isEventFor(ev: QmpEvent, device: string): boolean {
  const data = ev.data ?? {};
  if (data['device'] === device) return true;
  const p = data['path'];
  return typeof p === 'string' && (p === device || p.endsWith(`/${device}`) || qdevId(p) === device);
}

/** QmpError carries QEMU's text in `desc`; other errors only have a message. */
function errorDesc(err: unknown): string {
  if (isRecord(err) && typeof err['desc'] === 'string') return err['desc'];
  return describe(err);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}
