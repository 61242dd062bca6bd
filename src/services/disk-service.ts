// Disks: qcow2 files under storage/disks, attached to running VMs by hot-plug
// and to stopped VMs at their next start. A disk action holds the disk's lock
// and its VM's lock, so it never races a start, a stop or another attach.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { DiskRecord } from '../db/types.ts';
import { conflict, invalid, notFound, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import { createQcow2 } from '../operator/qemu-img.ts';
import { assertActionAllowed } from './vm-states.ts';
import type { VmService } from './vm-service.ts';

export interface DiskServiceOptions {
  db: VmanDb;
  vms: VmService;
  storagePath: string;
  qemuImg: string;
  maxDiskGb: number;
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
    try {
      await createQcow2(file, input.sizeGb, { qemuImg: this.o.qemuImg });
    } catch (err) {
      throw new VmanError('internal', 'disk-create-failed', `qemu-img could not create the disk: ${(err as Error).message}`, { cause: err });
    }
    try {
      const disk = this.o.db.disks.insert({
        id, name: input.name, sizeGb: input.sizeGb, format: input.format ?? 'qcow2', path: file,
        state: 'available', vmId: null, mountPoint: null,
      });
      this.log(`disk ${id} (${input.name}, ${input.sizeGb} GB) created`);
      return disk;
    } catch (err) {
      await rm(file, { force: true });
      if (/UNIQUE constraint failed: disks.name/.test((err as Error).message)) throw conflict('disk-name-taken', `a disk named ${input.name} already exists`);
      throw err;
    }
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
      // The file goes first: a row without a file is visible (observer), a file without a row would be an orphan.
      await rm(disk.path, { force: true });
      this.o.db.disks.delete(id);
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
          device = await handle.attachDisk({ id, path: disk.path, format: disk.format });
        } catch (err) {
          throw new VmanError('internal', 'hotplug-failed', `hot-plug of disk ${id} into VM ${vmId} failed: ${(err as Error).message}`, { cause: err });
        }
        this.log(`disk ${id} hot-plugged into ${vmId} as ${device}`);
        return this.o.db.disks.attach(id, vmId, device);
      }
      // Stopped: QEMU's command line carries it at the next start.
      this.log(`disk ${id} attached to stopped VM ${vmId}`);
      return this.o.db.disks.attach(id, vmId, null);
    });
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
          await handle.detachDisk(id);
        } catch (err) {
          throw new VmanError('internal', 'unplug-failed', `unplug of disk ${id} from VM ${vm.id} failed: ${(err as Error).message}`, { cause: err });
        }
        this.log(`disk ${id} unplugged from ${vm.id}`);
      }
      // Not running (actions are serialised, so never mid-start): a database change.
      return this.o.db.disks.detach(id);
    });
  }
}
