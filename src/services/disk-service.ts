// Disks: qcow2 files under storage/disks, attached to running VMs by hot-plug
// and to stopped VMs at their next start. A disk action holds the disk's lock
// and its VM's lock, so it never races a start, a stop or another attach; each
// runs under an intent, so a vman killed half-way is finished or undone at its
// next start.
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { DiskRecord, VmRecord } from '../db/types.ts';
import { crashPoint } from '../crash-points.ts';
import { conflict, invalid, notFoundByRef, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import { createQcow2, temporaryName as pendingName } from '../operator/qemu-img.ts';
import { diskNodeNames, pciAddr, withDataDisk, withoutDataDisk } from '../model/device-model.ts';
import { assertActionAllowed } from '../model/vm-states.ts';
import type { VmHandle } from '../operator/operator.ts';
import { QmpTimeoutError } from '../operator/qmp-client.ts';
import type { IntentJournal } from './intent-journal.ts';
import type { VmRuntime } from './vm-runtime.ts';
import type { LogFields } from './vm-service.ts';

export interface DiskServiceOptions {
  db: VmanDb;
  runtime: VmRuntime;
  journal: IntentJournal;
  storagePath: string;
  qemuImg: string;
  maxDiskGb: number;
  qmpTimeoutMs: number;
  log?: (msg: string, fields?: LogFields) => void;
}

export class DiskService {
  private readonly log: (msg: string, fields?: LogFields) => void;

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
    // The image is made under a temporary name, moved into place, then recorded
    // (with the intent cleared in the same commit): cut short, recovery removes
    // whichever file there is, and the disk was never there.
    const pending = pendingName(file);
    const disk = await this.o.journal.run({ op: 'disk.create', diskId: id, file, pending }, async (intent) => {
      try {
        await createQcow2(pending, input.sizeGb, { qemuImg: this.o.qemuImg });
        // No VM's yet: vman's alone (qemu-img makes it 0644).
        await this.o.runtime.operator.returnFile(pending);
      } catch (err) {
        await rm(pending, { force: true });
        const msg = (err as Error).message;
        if (/No space left on device|ENOSPC/i.test(msg)) {
          throw new VmanError('insufficient-storage', 'storage-full', `no space left for disk ${input.name} in ${this.disksDir}: ${msg}`, { cause: err });
        }
        throw new VmanError('internal', 'disk-create-failed', `qemu-img could not create the disk: ${msg}`, { cause: err });
      }
      try {
        crashPoint('disk.create.after-image');
        await rename(pending, file);
        crashPoint('disk.create.after-rename');
        return this.o.db.transaction(() => {
          const row = this.o.db.disks.insert({
            id, name: input.name, sizeGb: input.sizeGb, format: input.format ?? 'qcow2', path: file,
            state: 'available', vmId: null, mountPoint: null,
          });
          this.o.journal.clear(intent);
          return row;
        });
      } catch (err) {
        await Promise.all([rm(pending, { force: true }), rm(file, { force: true })]);
        if (/UNIQUE constraint failed: disks.name/.test((err as Error).message)) throw conflict('disk-name-taken', `a disk named ${input.name} already exists`);
        throw err;
      }
    });
    this.log(`disk ${id} (${input.name}, ${input.sizeGb} GB) created`, { disk_id: id, disk_name: input.name });
    return disk;
  }

  /** Every disk, or those in `filter.state` and/or whose name contains `filter.name`. */
  list(filter: { state?: string; name?: string } = {}): DiskRecord[] {
    return this.o.db.disks.list()
      .filter((d) => (filter.state === undefined || d.state === filter.state) && (filter.name === undefined || d.name.includes(filter.name)));
  }

  /** The disk with this id or name, if there is one. */
  find(ref: string): DiskRecord | undefined {
    return this.o.db.disks.get(ref) ?? this.o.db.disks.getByName(ref);
  }

  /** By id, then by name (ids look like `disk-<hex>`). */
  get(ref: string): DiskRecord {
    const d = this.find(ref);
    if (!d) throw notFoundByRef('disk', 'disk', ref);
    return d;
  }

  delete(ref: string): Promise<void> {
    const id = this.get(ref).id;
    return this.o.runtime.locks.run(id, async () => {
      const disk = this.get(id);
      if (disk.state === 'attached') throw conflict('disk-attached', `disk ${id} is attached to VM ${disk.vmId}; detach it first`);
      // Moved aside, row deleted, then removed: cut short at any point, recovery finishes it.
      const pending = pendingName(disk.path);
      await this.o.journal.run({ op: 'disk.delete', diskId: id, file: disk.path, pending }, async () => {
        await rename(disk.path, pending).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        crashPoint('disk.delete.after-move');
        this.o.db.disks.delete(id);
        crashPoint('disk.delete.after-record');
        await rm(pending, { force: true });
      });
      this.log(`disk ${id} deleted`, { disk_id: id, disk_name: disk.name });
    });
  }

  /** `ref` and `vmRef` are ids or names. */
  async attach(ref: string, vmRef: string): Promise<DiskRecord> {
    const id = this.get(ref).id;
    const vmId = this.vmRecord(vmRef).id;
    return this.o.runtime.locks.runAll([id, vmId], async () => {
      const disk = this.get(id);
      const vm = this.vmRecord(vmId);
      if (disk.state === 'attached') throw conflict('disk-attached', `disk ${id} is already attached to VM ${disk.vmId}`);
      assertActionAllowed('attach-disk', vmId, vm.state);
      const hot = vm.state === 'running';
      const handle = hot ? this.o.runtime.requireHandle(vmId) : undefined;
      return this.o.journal.run({ op: 'disk.attach', diskId: id, vmId, hot }, async (intent) => {
        // Stopped: QEMU's command line carries it at the next start.
        let device: string | null = null;
        if (handle) {
          try {
            // In the slot its device model gives it, so a snapshot's state finds it there again.
            const addr = vm.deviceModel ? pciAddr(withDataDisk(vm.deviceModel, id), diskNodeNames(id).device) : undefined;
            device = await handle.attachDisk({ id, path: disk.path, format: disk.format, ...(addr ? { addr } : {}) }, { timeoutMs: this.o.qmpTimeoutMs });
          } catch (err) {
            // Not the VM's disk after all: vman's again (a descriptor QEMU still holds is the observer's to report).
            await this.o.runtime.operator.returnFile(disk.path);
            throw await this.hotplugFailure('hot-plug', id, vmId, handle, err);
          }
        }
        crashPoint('disk.attach.before-record');
        const row = this.o.db.transaction(() => {
          const attached = this.o.db.disks.attach(id, vmId, device);
          if (vm.deviceModel) this.o.db.vms.setDeviceModel(vmId, withDataDisk(vm.deviceModel, id));
          this.o.journal.clear(intent);
          return attached;
        });
        this.log(handle ? `disk ${id} hot-plugged into ${vmId} as ${device}` : `disk ${id} attached to stopped VM ${vmId}`, { disk_id: id, vm_id: vmId, vm_name: vm.name });
        return row;
      });
    });
  }

  /**
   * What a failed hot-plug or unplug means for the VM. QEMU gone: the VM is no
   * longer running (its exit is recorded by the VM service) — 502. QEMU not
   * answering QMP: it cannot be trusted with the disk, so it is ended and the
   * VM recorded as failed — 503. Anything else (the guest never saw the disk,
   * the guest refused the unplug): the operation was rolled back or left as it
   * was, the VM keeps running — 500.
   */
  private async hotplugFailure(what: string, diskId: string, vmId: string, handle: VmHandle, err: unknown): Promise<VmanError> {
    const detail = `${what} of disk ${diskId} ${what === 'hot-plug' ? 'into' : 'from'} VM ${vmId} failed: ${(err as Error).message}`;
    if (!(await handle.isRunning())) {
      // QEMU died under the request: a failure of what vman fronts (502), not a state conflict.
      return new VmanError('bad-gateway', 'vm-stopped-during-hotplug', `${detail} (the VM's QEMU process ended meanwhile)`, { cause: err });
    }
    if (qmpCommandTimedOut(err)) {
      await this.o.runtime.failLocked(vmId, `QEMU did not answer QMP within ${this.o.qmpTimeoutMs} ms during a disk ${what}`);
      return new VmanError('unavailable', 'qemu-unresponsive', `${detail}; QEMU stopped answering, so VM ${vmId} was stopped and marked failed`, { cause: err });
    }
    return new VmanError('internal', `${what === 'hot-plug' ? 'hotplug' : 'unplug'}-failed`, detail, { cause: err });
  }

  async detach(ref: string): Promise<DiskRecord> {
    const first = this.get(ref);
    const id = first.id;
    const keys = first.vmId ? [id, first.vmId] : [id];
    return this.o.runtime.locks.runAll(keys, async () => {
      const disk = this.get(id);
      if (disk.state !== 'attached' || !disk.vmId) throw conflict('disk-not-attached', `disk ${id} is not attached`);
      if (disk.vmId !== first.vmId) throw conflict('disk-state-changed', `disk ${id} changed while detaching; try again`);
      const vm = this.vmRecord(disk.vmId);
      // Not running (actions are serialised, so never mid-start): only a database change.
      const handle = vm.state === 'running' ? this.o.runtime.requireHandle(vm.id) : undefined;
      return this.o.journal.run({ op: 'disk.detach', diskId: id, vmId: vm.id, hot: handle !== undefined }, async (intent) => {
        if (handle) {
          try {
            await handle.detachDisk(id, { timeoutMs: Math.max(this.o.qmpTimeoutMs, 15_000) });
          } catch (err) {
            throw await this.hotplugFailure('unplug', id, vm.id, handle, err);
          }
          this.log(`disk ${id} unplugged from ${vm.id}`, { disk_id: id, vm_id: vm.id, vm_name: vm.name });
        }
        crashPoint('disk.detach.before-record');
        // Detached, it is no VM's: vman's file again, out of reach of the VM's user.
        await this.o.runtime.operator.returnFile(disk.path);
        return this.o.db.transaction(() => {
          const row = this.o.db.disks.detach(id);
          if (vm.deviceModel) this.o.db.vms.setDeviceModel(vm.id, withoutDataDisk(vm.deviceModel, id));
          this.o.journal.clear(intent);
          return row;
        });
      });
    });
  }

  /** By id, then by name. */
  private vmRecord(ref: string): VmRecord {
    const vm = this.o.db.vms.get(ref) ?? this.o.db.vms.getByName(ref);
    if (!vm) throw notFoundByRef('vm', 'VM', ref);
    return vm;
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
