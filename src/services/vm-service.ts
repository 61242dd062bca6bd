// VM lifecycle: the state machine over the database, driving the operator.
// Actions on one VM are serialised by the runtime's locks; every multi-step
// action runs under an intent (intent-journal.ts) so that a vman killed half-way
// is finished or undone at its next start; leaving the running life always goes
// through the runtime's one transition (vm-runtime.ts).
import { copyFile, mkdir, open, rm, stat } from 'node:fs/promises';

const CONSOLE_CHUNK = 64 * 1024;
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { SnapshotRecord, TemplateRecord, VmRecord } from '../db/types.ts';
import { deviceModelOf, withDataDisk, withoutDataDisk, type DeviceModel } from '../model/device-model.ts';
import { crashPoint } from '../crash-points.ts';
import { conflict, invalid, notFound, notFoundByRef, snapshotNotFound, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import type { AddressPool } from '../network/address-pool.ts';
import type { Accelerator, QemuVmSpec } from '../operator/qemu-command.ts';
import type { VmHandle } from '../operator/operator.ts';
import type { ReadinessRule, StopRung } from '../operator/qemu-vm.ts';
import { createServer } from 'node:net';
import { createOverlay } from '../operator/qemu-img.ts';
import { writeSeed, type SeedContent } from '../operator/cloud-init-seed.ts';
import { copyVmFile, openVmFile, type Confinement, type QemuIdentity } from '../operator/confinement.ts';
import type { IntentJournal } from './intent-journal.ts';
import { AT_REST, assertActionAllowed, isAtRest } from '../model/vm-states.ts';
import { MEMORY_STATE_FILE, SERIAL_LOG_FILE } from '../model/snapshot-files.ts';
import { GuestGoneError } from '../operator/qemu-vm.ts';
import { WaitTimeoutError } from '../poll.ts';
import type { TemplateService } from './template-service.ts';
import { message, type VmRuntime } from './vm-runtime.ts';

export interface VmView extends VmRecord {
  address: string | null;
  templateName: string;
  /** The snapshot it was cloned from: its VM's id and its name. */
  origin: { vm_id: string; name: string } | null;
}

/** Ids a log line carries as fields (pino bindings): `vm_id`, `vm_name`, `disk_id`. */
export type LogFields = Record<string, string | number | null>;

export interface ActionOptions {
  /** Called once the action is under way (state starting or stopping); a `?wait=false` request answers then. */
  accepted?: (vm: VmView) => void;
}

export interface VmServiceOptions {
  db: VmanDb;
  runtime: VmRuntime;
  journal: IntentJournal;
  templates: TemplateService;
  pool: AddressPool;
  storagePath: string;
  qemuBinary: string;
  qemuImg: string;
  accel: Accelerator;
  bootTimeoutMs: number;
  stopTimeouts: { agentMs: number; acpiMs: number };
  log?: (msg: string, fields?: LogFields) => void;
  /** Who each VM's QEMU runs as (vman as root: a user of its own); none in a dry run. */
  confinement?: Confinement;
}

export class VmService {
  private readonly log: (msg: string, fields?: LogFields) => void;
  private readonly runtime: VmRuntime;

  constructor(private readonly o: VmServiceOptions) {
    this.log = o.log ?? (() => undefined);
    this.runtime = o.runtime;
  }

  vmDir(id: string): string {
    return path.join(this.o.storagePath, 'vms', id);
  }

  /**
   * A new VM from a template, or a clone of a snapshot (`from`): its disks are
   * overlays over the snapshot's images, and its first start resumes the
   * snapshot's memory instead of booting.
   */
  async create(input: { name: string; template?: string; from?: { vm: string; snapshot: string }; sshKeys?: string[]; userData?: string | null }): Promise<VmView> {
    try {
      assertName('VM name', input.name);
    } catch (err) {
      throw invalid('invalid-name', (err as InvalidNameError).message, err);
    }
    const origin = input.from ? this.cloneOrigin(input.from) : undefined;
    if (!origin && input.template === undefined) throw invalid('template-required', 'the field "template" is missing: a VM needs a template, or from_snapshot to clone one');
    const template = this.o.templates.get(origin ? origin.vm.templateId : (input.template as string));
    if (origin && input.template !== undefined && this.o.templates.get(input.template).id !== template.id) {
      throw invalid('clone-template-mismatch', `a clone has its origin's template (${template.name}), not ${input.template}`);
    }
    if (this.o.db.vms.getByName(input.name)) throw conflict('vm-name-taken', `a VM named ${input.name} already exists`);
    const id = `vm-${randomBytes(6).toString('hex')}`;
    const dir = this.vmDir(id);
    return this.o.journal.run({ op: 'vm.create', vmId: id, dir }, async (intent) => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      try {
        const snapshot = origin?.snapshot;
        const rootImage = snapshot?.disks.find((d) => d.role === 'root');
        // A VM never writes to its template's base image, nor a clone to its snapshot's: each gets its own overlay.
        if (rootImage) {
          await createOverlay(path.join(dir, 'root.qcow2'), rootImage.image, 'qcow2', { qemuImg: this.o.qemuImg });
        } else if (template.baseImagePath && template.baseImageFormat) {
          await createOverlay(path.join(dir, 'root.qcow2'), template.baseImagePath, template.baseImageFormat, { qemuImg: this.o.qemuImg });
        }
        await writeSeed(dir, seedContent({ id, name: input.name, sshKeys: input.sshKeys ?? [], userData: input.userData ?? null }, template));
        crashPoint('vm.create.before-record');
        const record = this.o.db.transaction(() => {
          const vm = this.o.db.vms.insert({
            id, name: input.name, templateId: template.id, state: 'created', stateReason: null, pid: null,
            mac: this.uniqueMac(), storageDir: dir, sshKeys: input.sshKeys ?? [], userData: input.userData ?? null,
            // A clone has its snapshot's hardware: the saved state fits only that.
            deviceModel: snapshot ? snapshot.hardware.deviceModel : deviceModelOf({ id, deviceModel: null }, template.baseImagePath !== null),
            resumeFrom: snapshot?.withMemory ? snapshot.id : null,
            originSnapshotId: snapshot?.id ?? null,
          });
          this.o.journal.clear(intent);
          return vm;
        });
        this.log(origin
          ? `vm ${id} (${input.name}) cloned from snapshot ${origin.snapshot.name} of ${origin.vm.name}`
          : `vm ${id} (${input.name}) created from template ${template.name}`, { vm_id: id, vm_name: input.name });
        return this.view(record);
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        if (err instanceof Error && /UNIQUE constraint failed: vms.name/.test(err.message)) {
          throw conflict('vm-name-taken', `a VM named ${input.name} already exists`);
        }
        // The template was deleted while this VM was being made.
        // The template (or the snapshot a clone stands on) was deleted while this VM was being made.
        if (err instanceof Error && /FOREIGN KEY constraint failed/.test(err.message)) {
          throw origin ? snapshotNotFound(origin.vm.name, origin.snapshot.name) : notFound('template', input.template ?? '');
        }
        throw err;
      }
    });
  }

  /** The snapshot a clone is made from, refused (404, 409) before anything is made. */
  private cloneOrigin(from: { vm: string; snapshot: string }): { vm: VmRecord; snapshot: SnapshotRecord } {
    const vm = this.record(from.vm);
    const snapshot = this.o.db.snapshots.getByName(vm.id, from.snapshot);
    if (!snapshot) throw snapshotNotFound(vm.name, from.snapshot);
    const data = snapshot.disks.filter((d) => d.role === 'data').map((d) => d.diskId);
    if (data.length > 0) {
      throw conflict('snapshot-has-data-disks', `snapshot ${snapshot.name} of VM ${vm.name} holds data disks (${data.join(', ')}); a clone takes the root disk only: take the snapshot with them detached`);
    }
    // Its NIC keeps the saved MAC: two such guests on one bridge would clash. Each user-mode VM has a network of its own.
    if (snapshot.withMemory && this.runtime.network.mode !== 'user') {
      throw conflict('clone-needs-user-network', `a clone resumed from memory keeps its origin's MAC and address, which on the shared bridge would clash with its origin; clones from memory need the user-mode network`);
    }
    return { vm, snapshot };
  }

  /** Every VM, or those in `filter.state` and/or whose name contains `filter.name`. */
  list(filter: { state?: string; name?: string } = {}): VmView[] {
    const names = new Map(this.o.db.templates.list().map((t) => [t.id, t.name]));
    return this.o.db.vms.list()
      .filter((v) => (filter.state === undefined || v.state === filter.state) && (filter.name === undefined || v.name.includes(filter.name)))
      .map((v) => ({ ...v, address: v.guestAddress, templateName: names.get(v.templateId) ?? '', origin: this.originOf(v) }));
  }

  /** The VM with this id or name, if there is one. */
  find(ref: string): VmRecord | undefined {
    return this.o.db.vms.get(ref) ?? this.o.db.vms.getByName(ref);
  }

  /** A VM's id from its id or its name (ids first: `vm-<hex>`). */
  idOf(ref: string): string {
    return this.record(ref).id;
  }

  get(ref: string): VmView {
    return this.view(this.record(ref));
  }

  start(ref: string, opts: ActionOptions = {}): Promise<VmView> {
    const id = this.idOf(ref);
    return this.runtime.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('start', id, vm.state);
      await this.startLocked(vm, () => opts.accepted?.(this.get(id)));
      return this.get(id);
    });
  }

  stop(ref: string, opts: ActionOptions & { force?: boolean } = {}): Promise<VmView> {
    const id = this.idOf(ref);
    return this.runtime.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('stop', id, vm.state);
      await this.stopLocked(vm, opts.force ?? false, () => opts.accepted?.(this.get(id)));
      return this.get(id);
    });
  }

  /** A stop, then a start, each under its own intent: cut short, it ends stopped (the stop finished, the start undone). */
  restart(ref: string, opts: ActionOptions = {}): Promise<VmView> {
    const id = this.idOf(ref);
    return this.runtime.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('restart', id, vm.state);
      await this.stopLocked(vm, false, () => opts.accepted?.(this.get(id)));
      await this.startLocked(this.record(id));
      return this.get(id);
    });
  }

  /**
   * Deletes a VM at rest. A VM in life is deleted only when forced, as docker
   * and incus ask: it is stopped first (its guest asked to power off, so its
   * disks are flushed), its disks are detached and stay, with their data.
   */
  delete(ref: string, opts: { force?: boolean } = {}): Promise<void> {
    const id = this.idOf(ref);
    return this.runtime.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('delete', id, vm.state);
      if (!isAtRest(vm.state) && !opts.force) {
        throw conflict('vm-running', `VM ${id} is ${vm.state}: stop it first, or delete it with ?force=true, which stops it and detaches its disks (they stay, with their data)`);
      }
      const clones = this.o.db.snapshots.listByVm(id).flatMap((s) => this.o.db.vms.listClonesOf(s.id).map((c) => `${c.name} (from ${s.name})`));
      if (clones.length > 0) throw conflict('snapshot-has-clones', `VM ${vm.name} has snapshots that clones stand on: ${clones.join(', ')}; delete those clones first`);
      await this.o.journal.run({ op: 'vm.delete', vmId: id, dir: vm.storageDir }, async () => {
        if (vm.state === 'running') await this.stopLocked(vm, false);
        crashPoint('vm.delete.before-record');
        const disks = this.o.db.disks.listByVm(id).map((d) => d.path);
        // Its uid goes back to the range: no snapshot image of its origin stays readable to it.
        await this.o.confinement?.forget(vm.qemuIdentity, this.sharedImages(vm), this.o.storagePath);
        // The intent stays until the folder is gone too.
        this.forget(id);
        crashPoint('vm.delete.after-record');
        for (const d of disks) await this.runtime.operator.returnFile(d);
        await rm(vm.storageDir, { recursive: true, force: true });
      });
      this.log(`vm ${id} deleted`, { vm_id: id, vm_name: vm.name });
    });
  }

  /** Removes a stopped VM's records: its disks outlive it (available again), its address goes. */
  forget(id: string): void {
    this.o.db.transaction(() => {
      // Its snapshots' files are in its folder, which goes with it.
      for (const s of this.o.db.snapshots.listByVm(id)) this.o.db.snapshots.delete(s.id);
      this.o.db.disks.detachAll(id);
      this.o.pool.release(id);
      this.o.db.vms.delete(id);
    });
  }

  /** `accepted` is called once the VM is recorded starting (what a `?wait=false` answer shows). */
  private async startLocked(vm: VmRecord, accepted?: () => void): Promise<void> {
    const unavailable = this.runtime.operator.unavailableReason;
    if (unavailable) throw new VmanError('unavailable', 'qemu-unavailable', `no VM can start on this host: ${unavailable}`);
    const template = this.o.templates.get(vm.templateId);
    if (!isAtRest(vm.state)) throw conflict('vm-state-conflict', `VM ${vm.id} is ${vm.state}`);
    // What recovery puts back if this start is cut short.
    const from = { state: vm.state, reason: vm.stateReason, qemuIdentity: vm.qemuIdentity };
    // A clone's first start resumes its snapshot; every other start boots.
    const resume = vm.resumeFrom === null ? undefined : this.o.db.snapshots.get(vm.resumeFrom);
    if (vm.resumeFrom !== null && !resume) throw conflict('snapshot-gone', `VM ${vm.id} was to resume snapshot ${vm.resumeFrom}, which is gone`);
    // The intent commits with the first change: starting (restoring), and an address.
    const { intent, address } = this.o.db.transaction(() => {
      const started = this.o.db.vms.compareAndSetState(vm.id, [...AT_REST], resume ? 'restoring' : 'starting', { reason: null });
      if (!started) throw conflict('vm-state-conflict', `VM ${vm.id} changed state while starting`);
      return { intent: this.o.journal.begin({ op: 'vm.start', vmId: vm.id, from }), address: this.o.pool.allocate(vm.id) };
    });
    accepted?.();
    try {
      crashPoint('vm.start.after-address');
      await this.launch(vm, template, address, intent, resume);
    } finally {
      this.o.journal.clear(intent);
    }
  }

  /**
   * A revert's second half, the VM's lock held, its disks already put back:
   * the saved memory resumes under the revert's intent (recorded `restoring`).
   */
  async resumeLocked(vm: VmRecord, snapshot: SnapshotRecord, intent: number): Promise<void> {
    const template = this.o.templates.get(vm.templateId);
    const address = this.o.db.transaction(() => this.o.pool.allocate(vm.id));
    await this.launch(this.record(vm.id), template, address, intent, snapshot);
  }

  /**
   * The steps of a start after its intent and address; the last write ends the
   * intent in the same commit. With `resume`, QEMU loads the snapshot's memory
   * instead of booting, and the guest runs on from it.
   */
  private async launch(vm: VmRecord, template: TemplateRecord, address: string, intent: number, resume?: SnapshotRecord): Promise<void> {
    const phase = resume ? 'restoring' : 'starting';
    // User mode: a port on 127.0.0.1 for the guest's SSH, free now (the kernel's choice).
    const sshPort = this.runtime.network.mode === 'user' ? await freeLocalPort() : undefined;
    const identity = this.qemuIdentity(vm);
    let network: QemuVmSpec['network'];
    try {
      network = await this.runtime.network.prepare({ vmId: vm.id, mac: vm.mac, address, ...(sshPort !== undefined ? { sshPort } : {}), ...(identity ? { owner: identity } : {}) });
      // A resumed guest keeps the address it was saved with: its SSH is forwarded there.
      if (resume?.guestAddress && network.mode === 'user') network = { ...network, guestAddress: resume.guestAddress };
    } catch (err) {
      // Refused before QEMU ran (e.g. a VLAN this kernel cannot tag): the VM is left as it was.
      await this.runtime.network.release(vm.id).catch(() => undefined);
      this.o.db.transaction(() => {
        this.o.db.vms.restore(vm);
        // A first start refused gives its QEMU user back too: the row is as it was.
        if (!vm.qemuIdentity && identity) this.o.db.vms.setQemuIdentity(vm.id, null);
        this.o.pool.release(vm.id);
      });
      throw new VmanError('conflict', 'vm-network-failed', `VM ${vm.id} could not start: ${message(err)}`, { cause: err });
    }
    crashPoint('vm.start.after-network');
    const rootDisk = template.baseImagePath ? path.join(vm.storageDir, 'root.qcow2') : undefined;
    // What the seed says may have changed since the VM was made (its template's keys): made again only then.
    const seed = await writeSeed(vm.storageDir, seedContent(vm, template));
    const attached = this.o.db.disks.listByVm(vm.id);
    // The hardware: a snapshot's exactly (its state fits nothing else); else the VM's own, with the disks attached now.
    const model = resume ? resume.hardware.deviceModel : this.reconcileModel(vm, template, attached.map((d) => d.id));
    const shared = this.sharedImages(vm);
    const spec: QemuVmSpec = {
      id: vm.id,
      dir: vm.storageDir,
      ...(identity ? { identity } : {}),
      ...(shared.length > 0 ? { sharedImages: shared } : {}),
      qemuBinary: this.o.qemuBinary,
      accel: this.o.accel,
      cpus: resume ? resume.hardware.cpus : template.cpus,
      memoryMb: resume ? resume.hardware.memoryMb : template.memoryMb,
      boot: template.kernelPath
        ? { kernel: template.kernelPath, ...(template.initrdPath ? { initrd: template.initrdPath } : {}), ...(template.cmdline ? { cmdline: template.cmdline } : {}) }
        : null,
      ...(rootDisk && model.rootDiskId ? { rootDisk: { id: model.rootDiskId, path: rootDisk, format: 'qcow2' as const } } : {}),
      disks: attached.map((d) => ({ id: d.id, path: d.path, format: d.format })),
      seed: { id: model.seedDiskId, path: seed, format: 'raw' },
      network,
      deviceModel: model,
    };
    // The console goes on from where the saved one stopped (what a serial readiness rule saw is there).
    if (resume) await copyVmFile(path.join(resume.dir, SERIAL_LOG_FILE), path.join(vm.storageDir, SERIAL_LOG_FILE)).catch(() => undefined);

    let handle: VmHandle;
    try {
      handle = await this.runtime.operator.start(spec, resume ? { stateFile: path.join(resume.dir, MEMORY_STATE_FILE) } : {});
    } catch (err) {
      await this.runtime.settle(vm.id, { state: 'error', reason: `QEMU failed to launch: ${message(err)}` });
      await removeEmptySerialLog(vm.storageDir);
      throw new VmanError('bad-gateway', 'qemu-failed', `VM ${vm.id} could not start: QEMU failed to launch: ${message(err)}`, { cause: err });
    }
    this.runtime.track(vm.id, handle);
    this.o.db.vms.setState(vm.id, phase, { pid: handle.pid });
    this.log(`vm ${vm.id} launched as pid ${handle.pid} with address ${address}${resume ? `, resuming snapshot ${resume.name}` : ''}`, { vm_id: vm.id, vm_name: vm.name, pid: handle.pid });
    crashPoint('vm.start.after-connect');

    let guestAddress: string | null;
    const resumed = Date.now();
    let clock = 'not resumed';
    try {
      // A loaded guest runs on; its clock, standing at the moment it was saved, is set to the host's on the way to ready.
      if (resume) await handle.resume();
      const ready = await handle.waitUntilReady(readinessRule(template, sshPort, resume?.guestAddress ?? address), this.o.bootTimeoutMs, { setClock: resume !== undefined });
      guestAddress = ready.guestAddress;
      if (resume) clock = ready.clockOffsetMs === undefined ? 'not set: no guest agent answered' : `set through the guest agent (${ready.clockOffsetMs} ms from the host's after)`;
    } catch (err) {
      await this.runtime.failLocked(vm.id, `the guest never became ready (${template.readiness}): ${message(err)}`);
      throw await this.bootFailure(vm, template, err);
    }
    // Attached disks learn the device name the guest gave them.
    const devices = new Map<string, string | null>();
    for (const d of this.o.db.disks.listByVm(vm.id)) {
      devices.set(d.id, (await handle.guestDevicePath(d.id, { timeoutMs: 10_000 }).catch(() => undefined)) ?? null);
    }
    crashPoint('vm.start.before-record');
    this.o.db.transaction(() => {
      for (const [diskId, device] of devices) this.o.db.disks.setMountPoint(diskId, device);
      if (!this.o.db.vms.compareAndSetState(vm.id, [phase], 'running')) {
        throw conflict('vm-state-conflict', `VM ${vm.id} left ${phase} before it was ready: ${this.record(vm.id).state}`);
      }
      this.o.db.vms.setRuntime(vm.id, { sshPort: sshPort ?? null, guestAddress });
      // Resumed once: its next start boots from its own disks, in the hardware the saved state had.
      if (resume) {
        this.o.db.vms.setResumeFrom(vm.id, null);
        this.o.db.vms.setDeviceModel(vm.id, model);
      }
      this.o.journal.clear(intent);
    });
    if (resume && handle.resumed) {
      const t = handle.resumed;
      this.log(`vm ${vm.id} resumed snapshot ${resume.name}: QEMU up in ${t.launchMs} ms, state loaded in ${t.loadMs} ms, guest ready ${Date.now() - resumed} ms after it ran on; clock ${clock}`, {
        vm_id: vm.id, vm_name: vm.name, resume_launch_ms: t.launchMs, resume_load_ms: t.loadMs, resume_ready_ms: Date.now() - resumed,
      });
    }
  }

  /** The snapshot images its root disk stands on, by the records: its origin's, and its origin's origin's. */
  private sharedImages(vm: VmRecord): string[] {
    const images: string[] = [];
    const seen = new Set<string>();
    for (let id = vm.originSnapshotId; id && !seen.has(id);) {
      seen.add(id);
      const snapshot = this.o.db.snapshots.get(id);
      if (!snapshot) break;
      images.push(...snapshot.disks.filter((d) => d.role === 'root').map((d) => d.image));
      id = this.o.db.vms.get(snapshot.vmId)?.originSnapshotId ?? null;
    }
    return images;
  }

  /** The user its QEMU runs as (vman as root): its own, chosen at its first start and kept. */
  private qemuIdentity(vm: VmRecord): QemuIdentity | undefined {
    const c = this.o.confinement;
    if (!c?.perVmUser) return undefined;
    if (vm.qemuIdentity) return vm.qemuIdentity;
    return this.o.db.transaction(() => {
      const who = c.allocate(this.o.db.vms.qemuIdsInUse())!;
      this.o.db.vms.setQemuIdentity(vm.id, who);
      return who;
    });
  }

  /** The VM's hardware for a cold start: its recorded model (or a new one), with exactly the data disks attached now. Recorded. */
  private reconcileModel(vm: VmRecord, template: TemplateRecord, attached: string[]): DeviceModel {
    let model = deviceModelOf(vm, template.baseImagePath !== null);
    for (const device of Object.keys(model.slots)) {
      const diskId = /^disk-(.+)$/.exec(device)?.[1];
      if (diskId && diskId !== model.rootDiskId && diskId !== model.seedDiskId && !attached.includes(diskId)) model = withoutDataDisk(model, diskId);
    }
    for (const id of attached) model = withDataDisk(model, id);
    this.o.db.vms.setDeviceModel(vm.id, model);
    return model;
  }

  /**
   * Why a started guest never became ready, as the API says it: QEMU exited
   * (502, with the console's last line) or the readiness rule did not hold
   * within the boot timeout (504).
   */
  private async bootFailure(vm: VmRecord, template: TemplateRecord, err: unknown): Promise<VmanError> {
    if (err instanceof GuestGoneError) {
      const last = await lastConsoleLine(vm.storageDir);
      return new VmanError('bad-gateway', 'qemu-failed',
        `VM ${vm.id} could not start: its QEMU exited before the guest became ready${last ? `; the console's last line: ${JSON.stringify(last)}` : ' (the console is empty)'}`, { cause: err });
    }
    if (err instanceof WaitTimeoutError) {
      return new VmanError('gateway-timeout', 'vm-boot-timeout',
        `VM ${vm.id} did not become ready within the boot timeout of ${this.o.bootTimeoutMs} ms (readiness ${template.readiness}: ${READINESS_WORDS[template.readiness]}); last seen: ${err.lastSeen}`, { cause: err });
    }
    return new VmanError('bad-gateway', 'qemu-failed', `VM ${vm.id} did not become ready: ${message(err)}`, { cause: err });
  }

  /** `accepted` is called once the VM is recorded stopping. */
  private async stopLocked(vm: VmRecord, force: boolean, accepted?: () => void): Promise<void> {
    await this.o.journal.run({ op: 'vm.stop', vmId: vm.id }, async (intent) => {
      this.o.db.vms.compareAndSetState(vm.id, ['running'], 'stopping');
      accepted?.();
      crashPoint('vm.stop.after-stopping');
      const handle = this.runtime.untrack(vm.id);
      const rungs: StopRung[] = [];
      const method = handle
        ? await handle.stop({ force, agentTimeoutMs: this.o.stopTimeouts.agentMs, powerdownTimeoutMs: this.o.stopTimeouts.acpiMs, onRung: (r) => rungs.push(r) })
        : 'already-stopped';
      crashPoint('vm.stop.after-exit');
      await this.runtime.settle(vm.id, { state: 'stopped', reason: null }, {
        beforeRecord: () => crashPoint('vm.stop.before-record'),
        inTransaction: () => {
          if (method !== 'already-stopped') this.o.db.vms.setStopMethod(vm.id, method);
          this.o.journal.clear(intent);
        },
      });
      // Each rung tried, how long it took and what it saw: a stop that fell to quit says why.
      const ladder = rungs.map((r) => `${r.rung} ${r.ms} ms: ${r.saw}`).join('; ');
      this.log(`vm ${vm.id} stopped (${method})${force ? ', forced' : ''}${ladder ? ` after ${ladder}` : ''}`, { vm_id: vm.id, vm_name: vm.name, stop_method: method, stop_rungs: JSON.stringify(rungs) });
    });
  }

  /**
   * The serial console from byte `offset` on (at most 64 KiB at a time), and
   * where to go on from to read only what is new. A console that began again
   * (the VM restarted) is read from its start.
   */
  async console(ref: string, offset: number): Promise<{ offset: number; nextOffset: number; data: string }> {
    const vm = this.record(ref);
    const file = await openVmFile(path.join(vm.storageDir, 'serial.log')).catch(() => undefined);
    if (!file) return { offset: 0, nextOffset: 0, data: '' };
    try {
      const size = (await file.stat()).size;
      const from = offset > size ? 0 : offset;
      const buffer = Buffer.alloc(Math.min(size - from, CONSOLE_CHUNK));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, from);
      return { offset: from, nextOffset: from + bytesRead, data: buffer.subarray(0, bytesRead).toString('utf8') };
    } finally {
      await file.close();
    }
  }

  /** By id, then by name. */
  record(ref: string): VmRecord {
    const vm = this.o.db.vms.get(ref) ?? this.o.db.vms.getByName(ref);
    if (!vm) throw notFoundByRef('vm', 'VM', ref);
    return vm;
  }

  private view(vm: VmRecord): VmView {
    const template = this.o.db.templates.get(vm.templateId);
    // The address the guest itself reported, once it did; not merely the one it was handed.
    return { ...vm, address: vm.guestAddress, templateName: template?.name ?? '', origin: this.originOf(vm) };
  }

  private originOf(vm: VmRecord): VmView['origin'] {
    const s = vm.originSnapshotId === null ? undefined : this.o.db.snapshots.get(vm.originSnapshotId);
    return s ? { vm_id: s.vmId, name: s.name } : null;
  }

  private uniqueMac(): string {
    for (;;) {
      const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
      if (!this.o.db.vms.macInUse(mac)) return mac;
    }
  }
}

/** What cloud-init is told about this VM: its id, its name as hostname, its template's keys and its own, its user-data. */
function seedContent(vm: { id: string; name: string; sshKeys: string[]; userData: string | null }, template: TemplateRecord): SeedContent {
  return { instanceId: vm.id, hostname: vm.name, sshKeys: [...new Set([...template.sshKeys, ...vm.sshKeys])], userData: vm.userData };
}

/** How this template's guest shows it is ready, with where to look. */
function readinessRule(t: TemplateRecord, sshPort: number | undefined, address: string): ReadinessRule {
  switch (t.readiness) {
    case 'agent': return { kind: 'agent' };
    case 'none': return { kind: 'none' };
    // User mode: the forwarded port; bridge mode: the guest on the bridge.
    case 'ssh': return sshPort !== undefined ? { kind: 'ssh', host: '127.0.0.1', port: sshPort } : { kind: 'ssh', host: address, port: 22 };
    case 'serial': return { kind: 'serial', pattern: new RegExp(t.readyPattern ?? '.^') };
  }
}

/** A port on 127.0.0.1 nothing listens on now (the kernel picks it). */
function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      server.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** What each readiness rule waits for, as a boot timeout names it. */
const READINESS_WORDS: Record<TemplateRecord['readiness'], string> = {
  agent: 'the guest agent answers and reports an IPv4 address',
  ssh: 'an SSH server greets',
  serial: 'a console line matches ready_pattern',
  none: 'QEMU runs',
};

/** The last non-empty line of a VM's serial console, if any (what a dying guest said last). */
async function lastConsoleLine(dir: string): Promise<string | undefined> {
  const file = await openVmFile(path.join(dir, 'serial.log')).catch(() => undefined);
  if (!file) return undefined;
  try {
    const size = (await file.stat()).size;
    const buffer = Buffer.alloc(Math.min(size, 4096));
    const { bytesRead } = await file.read(buffer, 0, buffer.length, size - buffer.length);
    return buffer.subarray(0, bytesRead).toString('utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean).at(-1);
  } finally {
    await file.close();
  }
}

async function removeEmptySerialLog(dir: string): Promise<void> {
  const f = path.join(dir, 'serial.log');
  const s = await stat(f).catch(() => undefined);
  if (s && s.size === 0) await rm(f, { force: true });
}
