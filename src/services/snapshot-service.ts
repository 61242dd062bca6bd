// Snapshots of a VM: its disks at one moment and, taken while it runs, its
// memory and device state. Taking one pauses the guest only while its state is
// saved and its disks are copied; reverting puts the disks back and, with
// memory, runs the guest on from that moment. Every step runs under the VM's
// lock and an intent, with crash points, like every other operation.
import { mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { copyVmFile } from '../operator/confinement.ts';
import { constants } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { NewSnapshot, SnapshotDisk, SnapshotRecord, VmRecord } from '../db/types.ts';
import { crashPoint } from '../crash-points.ts';
import { conflict, invalid, snapshotNotFound, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import { deviceModelOf } from '../model/device-model.ts';
import { assertActionAllowed } from '../model/vm-states.ts';
import type { IntentJournal } from './intent-journal.ts';
import type { LogFields, VmService } from './vm-service.ts';
import type { TemplateService } from './template-service.ts';
import { message, type VmRuntime } from './vm-runtime.ts';
import { syncFile } from '../operator/vm-state-file.ts';
import { MEMORY_STATE_FILE, SERIAL_LOG_FILE, snapshotDir, snapshotImage } from '../model/snapshot-files.ts';

export interface SnapshotServiceOptions {
  db: VmanDb;
  runtime: VmRuntime;
  journal: IntentJournal;
  vms: VmService;
  templates: TemplateService;
  log?: (msg: string, fields?: LogFields) => void;
}

export interface SnapshotView extends SnapshotRecord {
  vmName: string;
  /** The VMs cloned from it. */
  clones: string[];
}

export class SnapshotService {
  private readonly log: (msg: string, fields?: LogFields) => void;

  constructor(private readonly o: SnapshotServiceOptions) {
    this.log = o.log ?? (() => undefined);
  }

  list(vmRef: string): SnapshotView[] {
    const vm = this.o.vms.record(vmRef);
    return this.o.db.snapshots.listByVm(vm.id).map((s) => this.view(vm, s));
  }

  get(vmRef: string, name: string): SnapshotView {
    const vm = this.o.vms.record(vmRef);
    return this.view(vm, this.record(vm, name));
  }

  /** Takes a snapshot named `name`: with memory when the VM runs, of its disks only when it does not. */
  create(vmRef: string, name: string): Promise<SnapshotView> {
    try {
      assertName('snapshot name', name);
    } catch (err) {
      throw invalid('invalid-name', (err as InvalidNameError).message, err);
    }
    const vmId = this.o.vms.idOf(vmRef);
    return this.o.runtime.locks.run(vmId, async () => {
      const vm = this.o.vms.record(vmId);
      assertActionAllowed('snapshot', vm.id, vm.state);
      if (this.o.db.snapshots.getByName(vm.id, name)) throw conflict('snapshot-name-taken', `VM ${vm.name} already has a snapshot named ${name}`);
      const id = `snap-${randomBytes(6).toString('hex')}`;
      const dir = snapshotDir(vm.storageDir, id);
      const running = vm.state === 'running';
      const record = await this.o.journal.run({ op: 'vm.snapshot', vmId: vm.id, snapshotId: id, dir, running }, async (intent) => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        try {
          return running ? await this.takeRunning(vm, id, name, dir, intent) : await this.takeAtRest(vm, id, name, dir, intent);
        } catch (err) {
          await removeSnapshotDir(dir);
          throw err;
        }
      });
      this.log(`vm ${vm.id}: snapshot ${name} taken${record.withMemory ? ` with memory (${record.stateBytes} bytes), the guest paused ${record.pauseMs} ms` : ', disks only'}`,
        { vm_id: vm.id, vm_name: vm.name, snapshot: name, pause_ms: record.pauseMs, state_bytes: record.stateBytes });
      return this.view(vm, record);
    });
  }

  private async takeAtRest(vm: VmRecord, id: string, name: string, dir: string, intent: number): Promise<SnapshotRecord> {
    const disks = await copyDisks(this.disksOf(vm), dir);
    for (const d of disks) await syncFile(d.image);
    return this.recordSnapshot({ id, vmId: vm.id, name, withMemory: false, dir, hardware: this.hardwareOf(vm), disks, guestAddress: null, pauseMs: null, stateBytes: null }, intent);
  }

  /** The last step of taking one: recorded (a VM that was saving runs again) and the intent ended, in one commit. */
  private recordSnapshot(snapshot: NewSnapshot, intent: number): SnapshotRecord {
    crashPoint('vm.snapshot.before-record');
    return this.o.db.transaction(() => {
      const row = this.o.db.snapshots.insert(snapshot);
      this.o.db.vms.compareAndSetState(snapshot.vmId, ['saving'], 'running');
      this.o.journal.clear(intent);
      return row;
    });
  }

  /** Paused, its state saved and its disks copied (QEMU has let go of them), then it runs on; recorded saving meanwhile. */
  private async takeRunning(vm: VmRecord, id: string, name: string, dir: string, intent: number): Promise<SnapshotRecord> {
    const handle = this.o.runtime.requireHandle(vm.id);
    if (!this.o.db.vms.compareAndSetState(vm.id, ['running'], 'saving')) throw conflict('vm-state-conflict', `VM ${vm.id} changed state while a snapshot began`);
    const paused = Date.now();
    let state: { bytes: number };
    let disks: SnapshotDisk[];
    try {
      await handle.pause();
      crashPoint('vm.snapshot.after-pause');
      state = await handle.saveState(path.join(dir, MEMORY_STATE_FILE));
      disks = await copyDisks(this.disksOf(vm), dir);
      await copyVmFile(path.join(vm.storageDir, SERIAL_LOG_FILE), path.join(dir, SERIAL_LOG_FILE)).catch(() => undefined);
      crashPoint('vm.snapshot.after-copy');
    } catch (err) {
      // The guest runs on as it was; nothing of the snapshot stays.
      await handle.resume().catch(() => undefined);
      this.o.db.vms.compareAndSetState(vm.id, ['saving'], 'running');
      throw new VmanError('bad-gateway', 'snapshot-failed', `snapshot ${name} of VM ${vm.name} failed: ${message(err)}`, { cause: err });
    }
    await handle.resume();
    const pauseMs = Date.now() - paused;
    // On disk before it is recorded, synced while the guest already runs on.
    for (const f of [path.join(dir, MEMORY_STATE_FILE), ...disks.map((d) => d.image)]) await syncFile(f);
    // Its clock stood still while it was paused.
    await handle.setGuestTime(2_000).catch((err: unknown) => this.log(`vm ${vm.id}: clock not set after the snapshot: ${message(err)}`, { vm_id: vm.id, vm_name: vm.name }));
    return this.recordSnapshot({
      id, vmId: vm.id, name, withMemory: true, dir, hardware: this.hardwareOf(vm), disks,
      guestAddress: this.o.vms.record(vm.id).guestAddress, pauseMs, stateBytes: state.bytes,
    }, intent);
  }

  /**
   * Brings the VM back to the snapshot: its disks become the snapshot's again
   * and, when it holds memory, the guest runs on from that moment; otherwise
   * the VM ends stopped. Refused when the disks attached differ from the
   * snapshot's, and, without `force`, when it would lose what the VM has now.
   */
  revert(vmRef: string, name: string, opts: { force?: boolean } = {}): Promise<VmRecord> {
    const vmId = this.o.vms.idOf(vmRef);
    return this.o.runtime.locks.run(vmId, async () => {
      const vm = this.o.vms.record(vmId);
      const snapshot = this.record(vm, name);
      assertActionAllowed('revert', vm.id, vm.state);
      this.assertSameDisks(vm, snapshot);
      if (!opts.force) await this.assertNothingLost(vm, snapshot);
      const from = vm.state === 'running' ? 'running' as const : vm.state as 'created' | 'stopped' | 'error';
      await this.o.journal.run({ op: 'vm.revert', vmId: vm.id, snapshotId: snapshot.id, from: { state: from } }, async (intent) => {
        if (vm.state === 'running') {
          this.o.db.vms.compareAndSetState(vm.id, ['running'], 'restoring');
          // What it runs now is what the revert throws away: no need to ask the guest.
          await this.o.runtime.untrack(vm.id)?.kill();
          await this.o.runtime.network.release(vm.id).catch(() => undefined);
        } else if (snapshot.withMemory) {
          this.o.db.vms.compareAndSetState(vm.id, [vm.state], 'restoring', { reason: null });
        }
        crashPoint('vm.revert.after-stop');
        await putDisksBack(snapshot.disks);
        crashPoint('vm.revert.after-disks');
        if (snapshot.withMemory) {
          await this.o.vms.resumeLocked(vm, snapshot, intent).catch(async (err: unknown) => {
            // Refused before QEMU ran (its network): the disks are the snapshot's already, so it ends stopped, as
            // recovery ends a cut-short revert, not left restoring (a failed launch or boot has settled it already).
            if (this.o.vms.record(vm.id).state === 'restoring') {
              await this.o.runtime.settle(vm.id, { state: 'stopped', reason: `the revert to snapshot ${snapshot.name} failed: its disks are the snapshot's, its memory was not resumed: ${message(err)}` });
            }
            throw err;
          });
        } else {
          await this.o.runtime.settle(vm.id, { state: 'stopped', reason: `reverted to snapshot ${snapshot.name}` }, { inTransaction: () => this.o.journal.clear(intent) });
        }
      });
      this.log(`vm ${vm.id} reverted to snapshot ${name}`, { vm_id: vm.id, vm_name: vm.name, snapshot: name });
      return this.o.vms.record(vm.id);
    });
  }

  /** Deletes a snapshot no clone stands on: its record, then its folder. */
  delete(vmRef: string, name: string): Promise<void> {
    const vmId = this.o.vms.idOf(vmRef);
    return this.o.runtime.locks.run(vmId, async () => {
      const vm = this.o.vms.record(vmId);
      const snapshot = this.record(vm, name);
      const clones = this.o.db.vms.listClonesOf(snapshot.id).map((c) => c.name);
      if (clones.length > 0) throw conflict('snapshot-has-clones', `snapshot ${name} of VM ${vm.name} has clones whose disks stand on it: ${clones.join(', ')}; delete them first`);
      await this.o.journal.run({ op: 'vm.snapshot-delete', vmId: vm.id, snapshotId: snapshot.id, dir: snapshot.dir }, async () => {
        this.o.db.snapshots.delete(snapshot.id);
        await removeSnapshotDir(snapshot.dir);
      });
      this.log(`vm ${vm.id}: snapshot ${name} deleted`, { vm_id: vm.id, vm_name: vm.name, snapshot: name });
    });
  }

  private record(vm: VmRecord, name: string): SnapshotRecord {
    const s = this.o.db.snapshots.getByName(vm.id, name);
    if (!s) throw snapshotNotFound(vm.name, name);
    return s;
  }

  private view(vm: VmRecord, s: SnapshotRecord): SnapshotView {
    return { ...s, vmName: vm.name, clones: this.o.db.vms.listClonesOf(s.id).map((c) => c.name) };
  }

  /** Its writable disks: the root overlay (when it has one) and every data disk attached. */
  private disksOf(vm: VmRecord): Array<Omit<SnapshotDisk, 'image'>> {
    const template = this.o.templates.get(vm.templateId);
    const model = deviceModelOf(vm, template.baseImagePath !== null);
    const root = model.rootDiskId ? [{ role: 'root' as const, diskId: model.rootDiskId, source: path.join(vm.storageDir, 'root.qcow2') }] : [];
    return [...root, ...this.o.db.disks.listByVm(vm.id).map((d) => ({ role: 'data' as const, diskId: d.id, source: d.path }))];
  }

  private hardwareOf(vm: VmRecord): SnapshotRecord['hardware'] {
    const template = this.o.templates.get(vm.templateId);
    const current = this.o.vms.record(vm.id);
    return { cpus: template.cpus, memoryMb: template.memoryMb, deviceModel: deviceModelOf(current, template.baseImagePath !== null) };
  }

  /** The data disks attached now must be the snapshot's: a saved guest knows its devices, and a revert puts back only those. */
  private assertSameDisks(vm: VmRecord, snapshot: SnapshotRecord): void {
    const now = this.o.db.disks.listByVm(vm.id);
    const then = snapshot.disks.filter((d) => d.role === 'data');
    const extra = now.filter((d) => !then.some((t) => t.diskId === d.id)).map((d) => d.name);
    const missing = then.filter((t) => !now.some((d) => d.id === t.diskId)).map((t) => this.o.db.disks.get(t.diskId)?.name ?? `${t.diskId} (deleted)`);
    if (extra.length > 0) throw conflict('snapshot-disks-differ', `VM ${vm.name} has disks attached that snapshot ${snapshot.name} does not hold: ${extra.join(', ')}; detach them first`);
    if (missing.length > 0) throw conflict('snapshot-disks-differ', `snapshot ${snapshot.name} holds disks that are not attached to VM ${vm.name}: ${missing.join(', ')}; attach them first`);
  }

  /** A revert throws away a running guest's memory, and any disk written since the snapshot: only when forced. */
  private async assertNothingLost(vm: VmRecord, snapshot: SnapshotRecord): Promise<void> {
    if (vm.state === 'running') {
      throw conflict('revert-loses-data', `VM ${vm.name} is running: reverting to ${snapshot.name} throws away its memory and what its disks hold now; ask again with ?force=true`);
    }
    const taken = Date.parse(snapshot.createdAt);
    const changed: string[] = [];
    for (const d of snapshot.disks) {
      const s = await stat(d.source).catch(() => undefined);
      if (s && s.mtimeMs > taken) changed.push(d.diskId);
    }
    if (changed.length > 0) {
      throw conflict('revert-loses-data', `the disks of VM ${vm.name} were written after snapshot ${snapshot.name} (${changed.join(', ')}): reverting throws that away; ask again with ?force=true`);
    }
  }
}

/** Copies each disk's image into the snapshot's folder (a clone of the blocks where the file system can). */
async function copyDisks(disks: Array<Omit<SnapshotDisk, 'image'>>, dir: string): Promise<SnapshotDisk[]> {
  const out: SnapshotDisk[] = [];
  for (const d of disks) {
    const image = snapshotImage(dir, d.diskId);
    // The root overlay sits in the VM's folder, its QEMU's user's: never copied through a link planted there.
    await copyVmFile(d.source, image, { exclusive: true });
    out.push({ ...d, image });
  }
  return out;
}

/** Each disk becomes its snapshot copy again: copied beside it, then renamed over it, so a cut-short revert leaves whole files. */
export async function putDisksBack(disks: readonly SnapshotDisk[]): Promise<void> {
  for (const d of disks) {
    const pending = `${d.source}.reverting`;
    await rm(pending, { force: true });
    await copyVmFile(d.image, pending);
    await rename(pending, d.source);
  }
}

/** Removes a snapshot's folder, and its VM's snapshots folder when that was the last: nothing of it is left. */
export async function removeSnapshotDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await rmdir(path.dirname(dir)).catch(() => undefined);
}
