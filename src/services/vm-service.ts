// VM lifecycle: the state machine over the database, driving the operator.
// Actions on one VM are serialised by the runtime's locks; every multi-step
// action runs under an intent (intent-journal.ts) so that a vman killed half-way
// is finished or undone at its next start; leaving the running life always goes
// through the runtime's one transition (vm-runtime.ts).
import { mkdir, open, rm, stat } from 'node:fs/promises';

const CONSOLE_CHUNK = 64 * 1024;
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { TemplateRecord, VmRecord } from '../db/types.ts';
import { crashPoint } from '../crash-points.ts';
import { conflict, invalid, notFound, notFoundByRef, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import type { AddressPool } from '../network/address-pool.ts';
import type { Accelerator, QemuVmSpec } from '../operator/qemu-command.ts';
import type { VmHandle } from '../operator/operator.ts';
import type { ReadinessRule, StopRung } from '../operator/qemu-vm.ts';
import { createServer } from 'node:net';
import { createOverlay } from '../operator/qemu-img.ts';
import { writeSeed, type SeedContent } from '../operator/cloud-init-seed.ts';
import type { IntentJournal } from './intent-journal.ts';
import { AT_REST, assertActionAllowed, isAtRest } from './vm-states.ts';
import { GuestGoneError } from '../operator/qemu-vm.ts';
import { WaitTimeoutError } from '../poll.ts';
import type { TemplateService } from './template-service.ts';
import { message, type VmRuntime } from './vm-runtime.ts';

export interface VmView extends VmRecord {
  address: string | null;
  templateName: string;
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

  async create(input: { name: string; template: string; sshKeys?: string[]; userData?: string | null }): Promise<VmView> {
    try {
      assertName('VM name', input.name);
    } catch (err) {
      throw invalid('invalid-name', (err as InvalidNameError).message, err);
    }
    const template = this.o.templates.get(input.template);
    if (this.o.db.vms.getByName(input.name)) throw conflict('vm-name-taken', `a VM named ${input.name} already exists`);
    const id = `vm-${randomBytes(6).toString('hex')}`;
    const dir = this.vmDir(id);
    return this.o.journal.run({ op: 'vm.create', vmId: id, dir }, async (intent) => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      try {
        // A VM never writes to its template's base image: it gets its own overlay.
        if (template.baseImagePath && template.baseImageFormat) {
          await createOverlay(path.join(dir, 'root.qcow2'), template.baseImagePath, template.baseImageFormat, { qemuImg: this.o.qemuImg });
        }
        await writeSeed(dir, seedContent({ id, name: input.name, sshKeys: input.sshKeys ?? [], userData: input.userData ?? null }, template));
        crashPoint('vm.create.before-record');
        const record = this.o.db.transaction(() => {
          const vm = this.o.db.vms.insert({
            id, name: input.name, templateId: template.id, state: 'created', stateReason: null, pid: null,
            mac: this.uniqueMac(), storageDir: dir, sshKeys: input.sshKeys ?? [], userData: input.userData ?? null,
          });
          this.o.journal.clear(intent);
          return vm;
        });
        this.log(`vm ${id} (${input.name}) created from template ${template.name}`, { vm_id: id, vm_name: input.name });
        return this.view(record);
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        if (err instanceof Error && /UNIQUE constraint failed: vms.name/.test(err.message)) {
          throw conflict('vm-name-taken', `a VM named ${input.name} already exists`);
        }
        // The template was deleted while this VM was being made.
        if (err instanceof Error && /FOREIGN KEY constraint failed/.test(err.message)) throw notFound('template', input.template);
        throw err;
      }
    });
  }

  /** Every VM, or those in `filter.state` and/or whose name contains `filter.name`. */
  list(filter: { state?: string; name?: string } = {}): VmView[] {
    const names = new Map(this.o.db.templates.list().map((t) => [t.id, t.name]));
    return this.o.db.vms.list()
      .filter((v) => (filter.state === undefined || v.state === filter.state) && (filter.name === undefined || v.name.includes(filter.name)))
      .map((v) => ({ ...v, address: v.guestAddress, templateName: names.get(v.templateId) ?? '' }));
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
      await this.o.journal.run({ op: 'vm.delete', vmId: id, dir: vm.storageDir }, async () => {
        if (vm.state === 'running') await this.stopLocked(vm, false);
        crashPoint('vm.delete.before-record');
        // The intent stays until the folder is gone too.
        this.forget(id);
        crashPoint('vm.delete.after-record');
        await rm(vm.storageDir, { recursive: true, force: true });
      });
      this.log(`vm ${id} deleted`, { vm_id: id, vm_name: vm.name });
    });
  }

  /** Removes a stopped VM's records: its disks outlive it (available again), its address goes. */
  forget(id: string): void {
    this.o.db.transaction(() => {
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
    const from = { state: vm.state, reason: vm.stateReason };
    // The intent commits with the first change: starting, and an address.
    const { intent, address } = this.o.db.transaction(() => {
      const started = this.o.db.vms.compareAndSetState(vm.id, [...AT_REST], 'starting', { reason: null });
      if (!started) throw conflict('vm-state-conflict', `VM ${vm.id} changed state while starting`);
      return { intent: this.o.journal.begin({ op: 'vm.start', vmId: vm.id, from }), address: this.o.pool.allocate(vm.id) };
    });
    accepted?.();
    try {
      crashPoint('vm.start.after-address');
      await this.launch(vm, template, address, intent);
    } finally {
      this.o.journal.clear(intent);
    }
  }

  /** The steps of a start after its intent and address; the last write ends the intent in the same commit. */
  private async launch(vm: VmRecord, template: TemplateRecord, address: string, intent: number): Promise<void> {
    // User mode: a port on 127.0.0.1 for the guest's SSH, free now (the kernel's choice).
    const sshPort = this.runtime.network.mode === 'user' ? await freeLocalPort() : undefined;
    let network: QemuVmSpec['network'];
    try {
      network = await this.runtime.network.prepare({ vmId: vm.id, mac: vm.mac, address, ...(sshPort !== undefined ? { sshPort } : {}) });
    } catch (err) {
      // Refused before QEMU ran (e.g. a VLAN this kernel cannot tag): the VM is left as it was.
      await this.runtime.network.release(vm.id).catch(() => undefined);
      this.o.db.transaction(() => {
        this.o.db.vms.restore(vm);
        this.o.pool.release(vm.id);
      });
      throw new VmanError('conflict', 'vm-network-failed', `VM ${vm.id} could not start: ${message(err)}`, { cause: err });
    }
    crashPoint('vm.start.after-network');
    const rootDisk = template.baseImagePath ? path.join(vm.storageDir, 'root.qcow2') : undefined;
    // What the seed says may have changed since the VM was made (its template's keys): made again only then.
    const seed = await writeSeed(vm.storageDir, seedContent(vm, template));
    const spec: QemuVmSpec = {
      id: vm.id,
      dir: vm.storageDir,
      qemuBinary: this.o.qemuBinary,
      accel: this.o.accel,
      cpus: template.cpus,
      memoryMb: template.memoryMb,
      boot: template.kernelPath
        ? { kernel: template.kernelPath, ...(template.initrdPath ? { initrd: template.initrdPath } : {}), ...(template.cmdline ? { cmdline: template.cmdline } : {}) }
        : null,
      ...(rootDisk ? { rootDisk: { id: `root-${vm.id.slice(3)}`, path: rootDisk, format: 'qcow2' as const } } : {}),
      disks: this.o.db.disks.listByVm(vm.id).map((d) => ({ id: d.id, path: d.path, format: d.format })),
      seed: { id: `seed-${vm.id.slice(3)}`, path: seed, format: 'raw' },
      network,
    };

    let handle: VmHandle;
    try {
      handle = await this.runtime.operator.start(spec);
    } catch (err) {
      await this.runtime.settle(vm.id, { state: 'error', reason: `QEMU failed to launch: ${message(err)}` });
      await removeEmptySerialLog(vm.storageDir);
      throw new VmanError('bad-gateway', 'qemu-failed', `VM ${vm.id} could not start: QEMU failed to launch: ${message(err)}`, { cause: err });
    }
    this.runtime.track(vm.id, handle);
    this.o.db.vms.setState(vm.id, 'starting', { pid: handle.pid });
    this.log(`vm ${vm.id} launched as pid ${handle.pid} with address ${address}`, { vm_id: vm.id, vm_name: vm.name, pid: handle.pid });
    crashPoint('vm.start.after-connect');

    let guestAddress: string | null;
    try {
      ({ guestAddress } = await handle.waitUntilReady(readinessRule(template, sshPort, address), this.o.bootTimeoutMs));
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
      if (!this.o.db.vms.compareAndSetState(vm.id, ['starting'], 'running')) {
        throw conflict('vm-state-conflict', `VM ${vm.id} left starting before it was ready: ${this.record(vm.id).state}`);
      }
      this.o.db.vms.setRuntime(vm.id, { sshPort: sshPort ?? null, guestAddress });
      this.o.journal.clear(intent);
    });
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
    const file = await open(path.join(vm.storageDir, 'serial.log'), 'r').catch(() => undefined);
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
    return { ...vm, address: vm.guestAddress, templateName: template?.name ?? '' };
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
  const file = await open(path.join(dir, 'serial.log'), 'r').catch(() => undefined);
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
