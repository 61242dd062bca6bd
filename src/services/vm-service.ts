// VM lifecycle: the state machine over the database, driving the operator.
// Actions on one VM are serialised; every state change that also moves an
// address happens in one transaction; the recorded state follows the real
// process (QEMU exiting on its own moves the VM out of `running`).
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { VmRecord, VmState } from '../db/types.ts';
import { conflict, invalid, notFound, VmanError } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';
import type { AddressPool } from '../network/address-pool.ts';
import type { NetworkBackend } from '../network/backend.ts';
import type { Accelerator, QemuVmSpec } from '../operator/qemu-command.ts';
import type { ExitInfo, Operator, VmHandle } from '../operator/operator.ts';
import { createOverlay } from '../operator/qemu-img.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { assertActionAllowed } from './vm-states.ts';
import type { TemplateService } from './template-service.ts';

export interface VmView extends VmRecord {
  address: string | null;
  templateName: string;
}

export interface VmServiceOptions {
  db: VmanDb;
  operator: Operator;
  templates: TemplateService;
  pool: AddressPool;
  network: NetworkBackend;
  storagePath: string;
  qemuBinary: string;
  qemuImg: string;
  accel: Accelerator;
  bootTimeoutMs: number;
  log?: (msg: string) => void;
}

export class VmService {
  /** Live QEMU handles by VM id. */
  readonly handles = new Map<string, VmHandle>();
  readonly locks = new KeyedMutex();
  private readonly log: (msg: string) => void;

  constructor(private readonly o: VmServiceOptions) {
    this.log = o.log ?? (() => undefined);
  }

  vmDir(id: string): string {
    return path.join(this.o.storagePath, 'vms', id);
  }

  async create(input: { name: string; template: string }): Promise<VmView> {
    try {
      assertName('VM name', input.name);
    } catch (err) {
      throw invalid('invalid-name', (err as InvalidNameError).message, err);
    }
    const template = this.o.templates.get(input.template);
    if (this.o.db.vms.getByName(input.name)) throw conflict('vm-name-taken', `a VM named ${input.name} already exists`);
    const id = `vm-${randomBytes(6).toString('hex')}`;
    const dir = this.vmDir(id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      // A VM never writes to its template's base image: it gets its own overlay.
      if (template.baseImagePath && template.baseImageFormat) {
        await createOverlay(path.join(dir, 'root.qcow2'), template.baseImagePath, template.baseImageFormat, { qemuImg: this.o.qemuImg });
      }
      const record = this.o.db.vms.insert({
        id, name: input.name, templateId: template.id, state: 'created', stateReason: null, pid: null,
        mac: this.uniqueMac(), storageDir: dir,
      });
      this.log(`vm ${id} (${input.name}) created from template ${template.name}`);
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
  }

  list(): VmView[] {
    const addresses = new Map(this.o.db.addresses.list().map((a) => [a.vmId, a.address]));
    const names = new Map(this.o.db.templates.list().map((t) => [t.id, t.name]));
    return this.o.db.vms.list().map((v) => ({ ...v, address: addresses.get(v.id) ?? null, templateName: names.get(v.templateId) ?? '' }));
  }

  get(id: string): VmView {
    return this.view(this.record(id));
  }

  start(id: string): Promise<VmView> {
    return this.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('start', id, vm.state);
      await this.startLocked(vm);
      return this.get(id);
    });
  }

  stop(id: string, opts: { force?: boolean } = {}): Promise<VmView> {
    return this.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('stop', id, vm.state);
      await this.stopLocked(vm, opts.force ?? false);
      return this.get(id);
    });
  }

  restart(id: string): Promise<VmView> {
    return this.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('restart', id, vm.state);
      await this.stopLocked(vm, false);
      await this.startLocked(this.record(id));
      return this.get(id);
    });
  }

  delete(id: string): Promise<void> {
    return this.locks.run(id, async () => {
      const vm = this.record(id);
      assertActionAllowed('delete', id, vm.state);
      if (vm.state === 'running') await this.stopLocked(vm, false);
      this.o.db.transaction(() => {
        // Its disks outlive it: they go back to `available`.
        for (const d of this.o.db.disks.listByVm(id)) this.o.db.disks.detach(d.id);
        this.o.pool.release(id);
        this.o.db.vms.delete(id);
      });
      await rm(vm.storageDir, { recursive: true, force: true });
      this.log(`vm ${id} deleted`);
    });
  }

  /** At start-up: reconnect to VMs whose QEMU outlived the previous vman; settle the rest. */
  async adoptAll(): Promise<{ adopted: string[]; lost: string[] }> {
    const adopted: string[] = [];
    const lost: string[] = [];
    for (const vm of this.o.db.vms.listByState('starting', 'running', 'stopping')) {
      const handle = await this.o.operator.adopt(vm.id, vm.storageDir).catch(() => undefined);
      if (handle) {
        this.handles.set(vm.id, handle);
        this.watchExit(vm.id, handle);
        this.o.db.vms.setState(vm.id, 'running', { pid: handle.pid });
        adopted.push(vm.id);
      } else {
        const to: VmState = vm.state === 'stopping' ? 'stopped' : 'error';
        await this.o.network.release(vm.id).catch(() => undefined);
        this.o.db.transaction(() => {
          this.o.db.vms.setState(vm.id, to, { pid: null, reason: to === 'error' ? 'QEMU process gone while vman was not running' : null });
          this.o.pool.release(vm.id);
        });
        lost.push(vm.id);
      }
    }
    if (adopted.length + lost.length > 0) this.log(`adopted ${adopted.length} running VM(s); ${lost.length} gone`);
    return { adopted, lost };
  }

  /** vman is going away: let go of QEMU (VMs keep running and are adopted next time). */
  async release(): Promise<void> {
    await this.locks.drain();
    // QEMU takes one client per QMP socket: the next vman's adoption needs it free.
    await Promise.all([...this.handles.values()].map((h) => h.disconnect().catch(() => undefined)));
    this.handles.clear();
  }

  private async startLocked(vm: VmRecord): Promise<void> {
    const unavailable = this.o.operator.unavailableReason;
    if (unavailable) throw new VmanError('unavailable', 'qemu-unavailable', `no VM can start on this host: ${unavailable}`);
    const template = this.o.templates.get(vm.templateId);
    const address = this.o.db.transaction(() => {
      const started = this.o.db.vms.compareAndSetState(vm.id, ['created', 'stopped', 'error'], 'starting', { reason: null });
      if (!started) throw conflict('vm-state-conflict', `VM ${vm.id} changed state while starting`);
      return this.o.pool.allocate(vm.id);
    });
    const rootDisk = template.baseImagePath ? path.join(vm.storageDir, 'root.qcow2') : undefined;
    let network: QemuVmSpec['network'];
    try {
      network = await this.o.network.prepare({ vmId: vm.id, mac: vm.mac, address });
    } catch (err) {
      // Refused before QEMU ran (e.g. a VLAN this kernel cannot tag): the VM is left as it was.
      await this.o.network.release(vm.id).catch(() => undefined);
      this.o.db.transaction(() => {
        this.o.db.vms.restore(vm);
        this.o.pool.release(vm.id);
      });
      throw new VmanError('conflict', 'vm-network-failed', `VM ${vm.id} could not start: ${message(err)}`, { cause: err });
    }
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
      network,
    };

    let handle: VmHandle;
    try {
      handle = await this.o.operator.start(spec);
    } catch (err) {
      await this.fail(vm.id, `QEMU failed to launch: ${message(err)}`);
      await removeEmptySerialLog(vm.storageDir);
      throw new VmanError('conflict', 'vm-start-failed', `VM ${vm.id} could not start: ${message(err)}`, { cause: err });
    }
    this.handles.set(vm.id, handle);
    this.o.db.vms.setState(vm.id, 'starting', { pid: handle.pid });
    this.watchExit(vm.id, handle);
    this.log(`vm ${vm.id} launched as pid ${handle.pid} with address ${address}`);

    try {
      await handle.waitForGuestReady(this.o.bootTimeoutMs);
    } catch (err) {
      await handle.kill().catch(() => undefined);
      this.handles.delete(vm.id);
      await this.fail(vm.id, `the guest never became ready: ${message(err)}`);
      throw new VmanError('conflict', 'vm-start-failed', `VM ${vm.id} did not become ready: ${message(err)}`, { cause: err });
    }
    // Attached disks learn the device name the guest gave them.
    for (const d of this.o.db.disks.listByVm(vm.id)) {
      const device = await handle.guestDevicePath(d.id, { timeoutMs: 10_000 }).catch(() => undefined);
      this.o.db.disks.setMountPoint(d.id, device ?? null);
    }
    if (!this.o.db.vms.compareAndSetState(vm.id, ['starting'], 'running')) {
      throw conflict('vm-state-conflict', `VM ${vm.id} left starting before it was ready: ${this.record(vm.id).state}`);
    }
  }

  private async stopLocked(vm: VmRecord, force: boolean): Promise<void> {
    this.o.db.vms.compareAndSetState(vm.id, ['running'], 'stopping');
    const handle = this.handles.get(vm.id);
    const method = handle ? await handle.stop({ force }) : 'already-stopped';
    this.handles.delete(vm.id);
    // The process is gone: the VM is stopped whatever the network clean-up says.
    await this.o.network.release(vm.id).catch((err: unknown) => this.log(`vm ${vm.id}: network release failed: ${message(err)}`));
    this.o.db.transaction(() => {
      this.o.db.vms.setState(vm.id, 'stopped', { pid: null });
      this.o.pool.release(vm.id);
      for (const d of this.o.db.disks.listByVm(vm.id)) this.o.db.disks.setMountPoint(d.id, null);
    });
    this.log(`vm ${vm.id} stopped (${method})`);
  }

  /** QEMU went away without being asked (crash, kill, guest power-off). */
  private watchExit(vmId: string, handle: VmHandle): void {
    handle.onExit((info: ExitInfo) => {
      void this.locks.run(vmId, async () => {
        if (this.handles.get(vmId) !== handle) return; // a stop or restart already dealt with it
        this.handles.delete(vmId);
        const vm = this.o.db.vms.get(vmId);
        if (!vm || (vm.state !== 'running' && vm.state !== 'starting')) return;
        if (info.guestInitiated) {
          await this.o.network.release(vmId).catch((err: unknown) => this.log(`vm ${vmId}: network release failed: ${message(err)}`));
          this.o.db.transaction(() => {
            this.o.db.vms.setState(vmId, 'stopped', { pid: null, reason: 'the guest powered off' });
            this.o.pool.release(vmId);
          });
        } else {
          await this.fail(vmId, `the QEMU process died: ${info.detail}`);
        }
        this.log(`vm ${vmId} left ${vm.state}: ${info.detail}`);
      });
    });
  }

  /**
   * The caller (holding the VM's lock) found the VM broken, e.g. QEMU stopped
   * answering QMP: end its QEMU and record why.
   */
  async failLocked(vmId: string, reason: string): Promise<void> {
    const handle = this.handles.get(vmId);
    this.handles.delete(vmId);
    await handle?.kill().catch(() => undefined);
    await this.fail(vmId, reason);
    this.log(`vm ${vmId} failed: ${reason}`);
  }

  private async fail(vmId: string, reason: string): Promise<void> {
    await this.o.network.release(vmId).catch((err: unknown) => this.log(`vm ${vmId}: network release failed: ${message(err)}`));
    this.o.db.transaction(() => {
      this.o.db.vms.setState(vmId, 'error', { pid: null, reason });
      this.o.pool.release(vmId);
      for (const d of this.o.db.disks.listByVm(vmId)) this.o.db.disks.setMountPoint(d.id, null);
    });
  }

  record(id: string): VmRecord {
    const vm = this.o.db.vms.get(id);
    if (!vm) throw notFound('vm', id);
    return vm;
  }

  private view(vm: VmRecord): VmView {
    const template = this.o.db.templates.get(vm.templateId);
    return { ...vm, address: this.o.pool.addressOf(vm.id) ?? null, templateName: template?.name ?? '' };
  }

  private uniqueMac(): string {
    for (;;) {
      const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
      if (!this.o.db.db.prepare('SELECT 1 FROM vms WHERE mac = ?').get(mac)) return mac;
    }
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function removeEmptySerialLog(dir: string): Promise<void> {
  const f = path.join(dir, 'serial.log');
  const s = await stat(f).catch(() => undefined);
  if (s && s.size === 0) await rm(f, { force: true });
}
