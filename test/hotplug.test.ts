import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QmpError, QmpTimeoutError } from '../src/operator/qmp-client.ts';
import type { QmpEvent } from '../src/operator/qmp-client.ts';
import { HotplugError, hotplugDisk, listBlockNodes, listDiskDevices, unplugDisk } from '../src/operator/hotplug.ts';
import type { QmpLike } from '../src/operator/hotplug.ts';

type Args = Record<string, unknown> | undefined;
interface Call { cmd: string; args: Args }
interface Waiter { name: string; match: ((ev: QmpEvent) => boolean) | undefined; resolve: (ev: QmpEvent) => void; timer: NodeJS.Timeout }

const fakes: FakeQmp[] = [];
afterEach(() => fakes.splice(0).forEach((f) => f.dispose()));

/** A tiny QEMU: records commands, keeps nodes and devices, and can be told to fail or to emit events. */
class FakeQmp implements QmpLike {
  readonly calls: Call[] = [];
  readonly nodes = new Set<string>();
  readonly devices = new Set<string>();
  readonly waiters = new Set<Waiter>();
  /** Return an error to make that call fail; undefined lets it run. */
  failWith: (cmd: string, args: Args) => Error | undefined = () => undefined;
  constructor() {
    fakes.push(this);
  }

  /** What the guest does on device_del. */
  onDeviceDel: (id: string) => void = (id) => queueMicrotask(() => this.deleteDevice(id));

  async execute<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
    this.calls.push({ cmd, args });
    const err = this.failWith(cmd, args);
    if (err) throw err;
    return this.run(cmd, args ?? {}) as T;
  }

  eventWait(name: string, opts: { timeoutMs: number; match?: (ev: QmpEvent) => boolean }): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        name,
        match: opts.match,
        resolve: (ev) => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          resolve(ev);
        },
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new QmpTimeoutError(`event ${name}`, opts.timeoutMs, 'fake'));
        }, opts.timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Drops leftover waits (e.g. for a refusal that never came) so they do not hold the process. */
  dispose(): void {
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters.clear();
  }

  emit(event: string, data: Record<string, unknown>): void {
    const ev: QmpEvent = { event, data, timestamp: { seconds: 0, microseconds: 0 } };
    for (const w of [...this.waiters]) if (w.name === event && (!w.match || w.match(ev))) w.resolve(ev);
  }

  deleteDevice(id: string): void {
    this.devices.delete(id);
    this.emit('DEVICE_DELETED', { device: id, path: `/machine/peripheral/${id}` });
  }

  commands(): string[] {
    return this.calls.map((c) => (c.args && 'node-name' in c.args && c.cmd !== 'blockdev-add' ? `${c.cmd} ${String(c.args['node-name'])}` : c.cmd));
  }

  private run(cmd: string, args: Record<string, unknown>): unknown {
    switch (cmd) {
      case 'blockdev-add': this.nodes.add(String(args['node-name'])); return {};
      case 'blockdev-del':
        if (!this.nodes.delete(String(args['node-name']))) throw new QmpError(cmd, 'GenericError', `Failed to find node with node-name='${String(args['node-name'])}'`);
        return {};
      case 'device_add': this.devices.add(String(args['id'])); return {};
      case 'device_del':
        if (!this.devices.has(String(args['id']))) throw new QmpError(cmd, 'DeviceNotFound', `Device '${String(args['id'])}' not found`);
        this.onDeviceDel(String(args['id']));
        return {};
      case 'query-named-block-nodes': return [...this.nodes].map((n) => ({ 'node-name': n, drv: 'file' }));
      case 'query-block': return [...this.devices].map((d) => ({ device: '', qdev: `/machine/peripheral/${d}/virtio-backend` }));
      default: throw new QmpError(cmd, 'CommandNotFound', `The command ${cmd} has not been found`);
    }
  }
}

const disk = { id: 'd1', path: '/srv/vman/disks/d1.qcow2', format: 'qcow2' as const };
const boom = (cmd: string): QmpError => new QmpError(cmd, 'GenericError', `${cmd} exploded`);

async function attached(): Promise<FakeQmp> {
  const qmp = new FakeQmp();
  await hotplugDisk(qmp, disk);
  qmp.calls.length = 0;
  return qmp;
}

describe('hotplugDisk', () => {
  it('adds the file node, the format node, then the device, with exact arguments', async () => {
    const qmp = new FakeQmp();
    await hotplugDisk(qmp, disk);
    assert.deepEqual(qmp.calls, [
      { cmd: 'blockdev-add', args: { driver: 'file', 'node-name': 'file-d1', filename: '/srv/vman/disks/d1.qcow2' } },
      { cmd: 'blockdev-add', args: { driver: 'qcow2', 'node-name': 'drive-d1', file: 'file-d1' } },
      { cmd: 'device_add', args: { driver: 'virtio-blk-pci', id: 'disk-d1', drive: 'drive-d1', serial: 'd1' } },
    ]);
    assert.deepEqual(await listDiskDevices(qmp), ['disk-d1']);
    assert.deepEqual((await listBlockNodes(qmp)).sort(), ['drive-d1', 'file-d1']);
  });

  it('removes nothing when the first blockdev-add fails', async () => {
    const qmp = new FakeQmp();
    qmp.failWith = (cmd) => (cmd === 'blockdev-add' ? boom(cmd) : undefined);
    const err = await hotplugDisk(qmp, disk).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError);
    assert.equal(err.step, 'blockdev-add file');
    assert.equal(err.diskId, 'd1');
    assert.ok(err.cause instanceof QmpError);
    assert.deepEqual(qmp.commands(), ['blockdev-add']);
  });

  it('deletes the file node when the format blockdev-add fails', async () => {
    const qmp = new FakeQmp();
    qmp.failWith = (cmd, args) => (cmd === 'blockdev-add' && args?.['driver'] === 'qcow2' ? boom(cmd) : undefined);
    const err = await hotplugDisk(qmp, disk).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError && err.step === 'blockdev-add format');
    assert.deepEqual(qmp.commands(), ['blockdev-add', 'blockdev-add', 'blockdev-del file-d1']);
    assert.equal(qmp.nodes.size, 0);
  });

  it('deletes the format node then the file node when device_add fails', async () => {
    const qmp = new FakeQmp();
    qmp.failWith = (cmd) => (cmd === 'device_add' ? boom(cmd) : undefined);
    const err = await hotplugDisk(qmp, disk).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError && err.step === 'device_add');
    assert.deepEqual(err.rollbackErrors, []);
    assert.deepEqual(qmp.commands(), ['blockdev-add', 'blockdev-add', 'device_add', 'blockdev-del drive-d1', 'blockdev-del file-d1']);
    assert.equal(qmp.nodes.size, 0);
  });

  it('keeps the original error as cause and attaches rollback failures', async () => {
    const qmp = new FakeQmp();
    const original = boom('device_add');
    const rollback = boom('blockdev-del');
    qmp.failWith = (cmd, args) => (cmd === 'device_add' ? original : cmd === 'blockdev-del' && args?.['node-name'] === 'drive-d1' ? rollback : undefined);
    const err = await hotplugDisk(qmp, disk).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError);
    assert.equal(err.cause, original);
    assert.deepEqual(err.rollbackErrors, [rollback]);
    assert.match(err.message, /device_add exploded.*rollback also failed.*blockdev-del exploded/);
    // The rollback still tried the file node after the format node failed.
    assert.deepEqual(qmp.commands().slice(-2), ['blockdev-del drive-d1', 'blockdev-del file-d1']);
  });
});

describe('unplugDisk', () => {
  it('waits for DEVICE_DELETED before deleting the nodes, format node first', async () => {
    const qmp = await attached();
    let release: () => void = () => undefined;
    qmp.onDeviceDel = (id) => {
      release = () => qmp.deleteDevice(id);
    };
    const done = unplugDisk(qmp, 'd1', { timeoutMs: 2000 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(qmp.commands(), ['device_del'], 'nothing is deleted before the event');
    assert.deepEqual(qmp.calls[0]?.args, { id: 'disk-d1' });
    release();
    await done;
    assert.deepEqual(qmp.commands(), ['device_del', 'blockdev-del drive-d1', 'blockdev-del file-d1']);
    assert.equal(qmp.nodes.size, 0);
  });

  it('registers the event waits before device_del, so an instant event is not missed', async () => {
    const qmp = await attached();
    qmp.onDeviceDel = (id) => qmp.deleteDevice(id); // Synchronously, inside device_del.
    await unplugDisk(qmp, 'd1', { timeoutMs: 500 });
    assert.equal(qmp.nodes.size, 0);
  });

  it('ignores DEVICE_DELETED and guest errors for other devices', async () => {
    const qmp = await attached();
    qmp.onDeviceDel = () => {
      qmp.emit('DEVICE_DELETED', { device: 'disk-other', path: '/machine/peripheral/disk-other' });
      qmp.emit('DEVICE_UNPLUG_GUEST_ERROR', { path: '/machine/peripheral/disk-d10' }); // a suffix-alike
    };
    const err = await unplugDisk(qmp, 'd1', { timeoutMs: 100 }).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError && err.step === 'device_del');
    assert.match(err.message, /no DEVICE_DELETED/, 'it kept waiting for its own event');
    assert.deepEqual(qmp.commands(), ['device_del']);
  });

  it('treats "already in the process of unplug" as in progress and keeps waiting', async () => {
    const qmp = await attached();
    qmp.failWith = (cmd) => (cmd === 'device_del' ? new QmpError(cmd, 'GenericError', 'Device disk-d1 is already in the process of unplug') : undefined);
    const done = unplugDisk(qmp, 'd1', { timeoutMs: 2000 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(qmp.commands(), ['device_del']);
    qmp.deleteDevice('disk-d1');
    await done;
    assert.deepEqual(qmp.commands(), ['device_del', 'blockdev-del drive-d1', 'blockdev-del file-d1']);
  });

  it('fails with step device_del when the guest refuses, and deletes nothing', async () => {
    for (const data of [{ device: 'disk-d1' }, { path: '/machine/peripheral/disk-d1' }]) {
      const qmp = await attached();
      qmp.onDeviceDel = () => queueMicrotask(() => qmp.emit('DEVICE_UNPLUG_GUEST_ERROR', data));
      const err = await unplugDisk(qmp, 'd1', { timeoutMs: 2000 }).catch((e: unknown) => e);
      assert.ok(err instanceof HotplugError);
      assert.equal(err.step, 'device_del');
      assert.match(err.message, /the guest refused the unplug/);
      assert.deepEqual(qmp.commands(), ['device_del']);
      assert.equal(qmp.nodes.size, 2);
    }
  });

  it('on timeout names it and does not blockdev-del', async () => {
    const qmp = await attached();
    qmp.onDeviceDel = () => undefined; // The guest never answers.
    const started = Date.now();
    const err = await unplugDisk(qmp, 'd1', { timeoutMs: 80 }).catch((e: unknown) => e);
    assert.ok(Date.now() - started >= 70);
    assert.ok(err instanceof HotplugError && err.step === 'device_del');
    assert.match(err.message, /no DEVICE_DELETED for disk-d1 within 80 ms/);
    assert.ok(err.cause instanceof QmpTimeoutError);
    assert.deepEqual(qmp.commands(), ['device_del']);
    assert.equal(qmp.nodes.size, 2);
  });

  it('treats "not found" as already unplugged only when the device is absent', async () => {
    const gone = await attached();
    gone.devices.clear();
    await unplugDisk(gone, 'd1', { timeoutMs: 2000 });
    assert.deepEqual(gone.commands(), ['device_del', 'query-block', 'blockdev-del drive-d1', 'blockdev-del file-d1']);

    const listed = await attached();
    listed.failWith = (cmd) => (cmd === 'device_del' ? new QmpError(cmd, 'DeviceNotFound', "Device 'disk-d1' not found") : undefined);
    const err = await unplugDisk(listed, 'd1', { timeoutMs: 2000 }).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError && err.step === 'device_del');
    assert.deepEqual(listed.commands(), ['device_del', 'query-block']);
  });

  it('fails on any other device_del error', async () => {
    const qmp = await attached();
    qmp.failWith = (cmd) => (cmd === 'device_del' ? boom(cmd) : undefined);
    const err = await unplugDisk(qmp, 'd1').catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError && err.step === 'device_del');
    assert.deepEqual(qmp.commands(), ['device_del']);
  });

  it('accepts nodes that QEMU already removed, but not a node that is still there', async () => {
    const qmp = await attached();
    qmp.nodes.delete('drive-d1');
    await unplugDisk(qmp, 'd1', { timeoutMs: 2000 });
    assert.deepEqual(qmp.commands(), ['device_del', 'blockdev-del drive-d1', 'query-named-block-nodes', 'blockdev-del file-d1']);

    const busy = await attached();
    busy.failWith = (cmd, args) => (cmd === 'blockdev-del' && args?.['node-name'] === 'file-d1' ? new QmpError(cmd, 'GenericError', "Node 'file-d1' is busy") : undefined);
    const err = await unplugDisk(busy, 'd1', { timeoutMs: 2000 }).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugError && err.step === 'blockdev-del');
    assert.match(err.message, /file-d1.*busy/);
  });
});

describe('listDiskDevices', () => {
  it('normalises QOM paths to qdev ids and skips anonymous devices', async () => {
    const qmp: QmpLike = {
      execute: async <T>() => [
        { device: '', qdev: '/machine/peripheral/disk-a/virtio-backend' },
        { device: '', qdev: 'disk-b' },
        { device: '', qdev: '/machine/peripheral-anon/device[0]/virtio-backend' },
        { device: 'ide0-cd0' },
      ] as T,
      eventWait: () => Promise.reject(new Error('unused')),
    };
    assert.deepEqual(await listDiskDevices(qmp), ['disk-a', 'disk-b']);
  });
});
