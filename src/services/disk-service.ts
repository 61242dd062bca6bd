// Disks: qcow2 files under storage/disks, attached to running VMs by hot-plug
// and to stopped VMs at their next start. A disk action holds the disk's lock
// and its VM's lock, so it never races a start, a stop or another attach.
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { DiskRecord } from '../db/types.ts';
import { conflict, invalid, notFound, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import { createQcow2 } from '../operator/qemu-img.ts';
import { pendingName } from './half-made.ts';
import { assertActionAllowed } from './vm-states.ts';
import type { VmHandle } from '../operator/operator.ts';
import { QmpTimeoutError } from '../operator/qmp-client.ts';
import type { VmService } from './vm-service.ts';

export interface DiskServiceOptions {
  db: VmanDb;
  vms: VmService;
  storagePath: string;
  qemuImg: string;
  maxDiskGb: number;
  qmpTimeoutMs: number;
  log?: (msg: string) => void;
}

export class DiskService {
  private readonly log: (msg: string) => void;

  constructor(private readonly o: DiskServiceOptions) {
    this.log = o.log ?? (() => undefined);
  }

  get disksDir(): string {
    return path.join(this.o.storagePath, 'disks');
  }

  async create(input: { name: string; sizeGb: number; format?: 'qcow2' }): Promise<DiskRecord> {
    try {
      assertName('disk name', input.name);
    } catch (err) {
      throw invalid('invalid-name', (err as InvalidNameError).message, err);
    }
    if (!Number.isInteger(input.sizeGb) || input.sizeGb < 1 || input.sizeGb > this.o.maxDiskGb) {
      throw invalid('invalid-size', `size_gb must be a whole number from 1 to ${this.o.maxDiskGb}, not ${input.sizeGb}`);
    }
    if (this.o.db.disks.getByName(input.name)) throw conflict('disk-name-taken', `a disk named ${input.name} already exists`);
    // 12 hex digits: "disk-" + 12 = 17 characters, within virtio-blk's 20-byte serial.
    const id = `disk-${randomBytes(6).toString('hex')}`;
    const file = path.join(this.disksDir, `${id}.qcow2`);
    // The image is made under a temporary name, the row written, then the image
    // moved into place: a vman killed at any point leaves either a complete
    // disk or, after its next start-up (half-made.ts), nothing.
    const pending = pendingName(file);
    try {
      await createQcow2(pending, input.sizeGb, { qemuImg: this.o.qemuImg });
    } catch (err) {
      const msg = (err as Error).message;
      if (/No space left on device|ENOSPC/i.test(msg)) {
        throw new VmanError('insufficient-storage', 'storage-full', `no space left for disk ${input.name} in ${this.disksDir}: ${msg}`, { cause: err });
      }
      throw new VmanError('internal', 'disk-create-failed', `qemu-img could not create the disk: ${msg}`, { cause: err });
    }
    let disk: DiskRecord;
    try {
      disk = this.o.db.disks.insert({
        id, name: input.name, sizeGb: input.sizeGb, format: input.format ?? 'qcow2', path: file,
        state: 'available', vmId: null, mountPoint: null,
      });
    } catch (err) {
      await rm(pending, { force: true });
      if (/UNIQUE constraint failed: disks.name/.test((err as Error).message)) throw conflict('disk-name-taken', `a disk named ${input.name} already exists`);
      throw err;
    }
    try {
      await rename(pending, file);
    } catch (err) {
      this.o.db.disks.delete(id);
      await rm(pending, { force: true });
      throw err;
    }
    this.log(`disk ${id} (${input.name}, ${input.sizeGb} GB) created`);
    return disk;
  }

  list(): DiskRecord[] {
    return this.o.db.disks.list();
  }

  get(id: string): DiskRecord {
    const d = this.o.db.disks.get(id);
    if (!d) throw notFound('disk', id);
    return d;
  }

  delete(id: string): Promise<void> {
    return this.o.vms.locks.run(id, async () => {
      const disk = this.get(id);
      if (disk.state === 'attached') throw conflict('disk-attached', `disk ${id} is attached to VM ${disk.vmId}; detach it first`);
      // Moved aside, row deleted, then removed: interrupted before the row goes,
      // start-up puts the file back (not deleted); after, it removes it (deleted).
      const pending = pendingName(disk.path);
      await rename(disk.path, pending).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      this.o.db.disks.delete(id);
      await rm(pending, { force: true });
      this.log(`disk ${id} deleted`);
    });
  }

  async attach(id: string, vmId: string): Promise<DiskRecord> {
    this.get(id);
    this.o.vms.record(vmId);
    return this.o.vms.locks.runAll([id, vmId], async () => {
      const disk = this.get(id);
      const vm = this.o.vms.record(vmId);
      if (disk.state === 'attached') throw conflict('disk-attached', `disk ${id} is already attached to VM ${disk.vmId}`);
      assertActionAllowed('attach-disk', vmId, vm.state);
      if (vm.state === 'running') {
        const handle = this.o.vms.handles.get(vmId);
        if (!handle) throw conflict('vm-not-controllable', `VM ${vmId} is recorded running but vman holds no QEMU connection for it`);
        let device: string;
        try {
          device = await handle.attachDisk({ id, path: disk.path, format: disk.format }, { timeoutMs: this.o.qmpTimeoutMs });
        } catch (err) {
          throw await this.hotplugFailure('hot-plug', id, vmId, handle, err);
        }
        this.log(`disk ${id} hot-plugged into ${vmId} as ${device}`);
        return this.o.db.disks.attach(id, vmId, device);
      }
      // Stopped: QEMU's command line carries it at the next start.
      this.log(`disk ${id} attached to stopped VM ${vmId}`);
      return this.o.db.disks.attach(id, vmId, null);
    });
  }

  /**
   * What a failed hot-plug or unplug means for the VM. QEMU gone: the VM is no
   * longer running (its exit is recorded by the VM service) — 409. QEMU not
   * answering QMP: it cannot be trusted with the disk, so it is ended and the
   * VM recorded as failed — 503. Anything else (the guest never saw the disk,
   * the guest refused the unplug): the operation was rolled back or left as it
   * was, the VM keeps running — 500.
   */
  private async hotplugFailure(what: string, diskId: string, vmId: string, handle: VmHandle, err: unknown): Promise<VmanError> {
    const detail = `${what} of disk ${diskId} ${what === 'hot-plug' ? 'into' : 'from'} VM ${vmId} failed: ${(err as Error).message}`;
    if (!(await handle.isRunning())) {
      return new VmanError('conflict', 'vm-stopped-during-hotplug', `${detail} (the VM's QEMU process ended meanwhile)`, { cause: err });
    }
    if (qmpCommandTimedOut(err)) {
      await this.o.vms.failLocked(vmId, `QEMU did not answer QMP within ${this.o.qmpTimeoutMs} ms during a disk ${what}`);
      return new VmanError('unavailable', 'qemu-unresponsive', `${detail}; QEMU stopped answering, so VM ${vmId} was stopped and marked failed`, { cause: err });
    }
    return new VmanError('internal', `${what === 'hot-plug' ? 'hotplug' : 'unplug'}-failed`, detail, { cause: err });
  }

  async detach(id: string): Promise<DiskRecord> {
    const first = this.get(id);
    const keys = first.vmId ? [id, first.vmId] : [id];
    return this.o.vms.locks.runAll(keys, async () => {
      const disk = this.get(id);
      if (disk.state !== 'attached' || !disk.vmId) throw conflict('disk-not-attached', `disk ${id} is not attached`);
      if (disk.vmId !== first.vmId) throw conflict('disk-state-changed', `disk ${id} changed while detaching; try again`);
      const vm = this.o.vms.record(disk.vmId);
      if (vm.state === 'running') {
        const handle = this.o.vms.handles.get(vm.id);
        if (!handle) throw conflict('vm-not-controllable', `VM ${vm.id} is recorded running but vman holds no QEMU connection for it`);
        try {
          await handle.detachDisk(id, { timeoutMs: Math.max(this.o.qmpTimeoutMs, 15_000) });
        } catch (err) {
          throw await this.hotplugFailure('unplug', id, vm.id, handle, err);
        }
        this.log(`disk ${id} unplugged from ${vm.id}`);
      }
      // Not running (actions are serialised, so never mid-start): a database change.
      return this.o.db.disks.detach(id);
    });
  }
}

/** A QMP command (not an awaited event: a slow guest is not a hung QEMU) got no answer in time. */
function qmpCommandTimedOut(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof QmpTimeoutError && !e.command.startsWith('event ')) return true;
    e = (e as Error).cause;
  }
  return false;
}
