// One World per scenario: its own storage folder, the VMs it started (which
// it always destroys), the host facts and the report attachments.
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { setWorldConstructor, World, type IWorldOptions } from '@cucumber/cucumber';
import type { HostInfo } from '../src/host/probe.ts';
import type { ProtocolLogEntry } from '../src/operator/qmp-client.ts';
import { QemuVm } from '../src/operator/qemu-vm.ts';
import type { QemuVmSpec } from '../src/operator/qemu-command.ts';
import { newScenarioDir, qemuProcessesUnder, killProcesses } from '../support/run-context.ts';
import { DbReader } from '../support/db-reader.ts';
import { startChildVman, startInProcessVman, type ChildVman, type VmanEndpoint } from './vman-service.ts';
import type { Response } from 'got';
import path from 'node:path';

export interface GuestVm {
  name: string;
  handle: QemuVm;
  spec: QemuVmSpec;
  /** The address this scenario asked QEMU's DHCP to hand out. */
  address: string;
  bootMs?: number;
}

/** The user-mode network every directly booted guest sits on. */
export const USER_SUBNET = '10.0.2.0/24';

export class VmanWorld extends World {
  host!: HostInfo;
  storage = '';
  readonly vms = new Map<string, GuestVm>();
  readonly protocolLog: Array<ProtocolLogEntry & { vm: string }> = [];
  /** The VM the last step talked about ("the VM"). */
  currentVm?: GuestVm;
  /** The vman under test, and an independent reader of its database file. */
  vman?: VmanEndpoint;
  child?: ChildVman;
  dbReader?: DbReader;
  /** VM and template ids by the names the scenario gave them. */
  readonly ids = new Map<string, string>();
  lastResponse?: Response<unknown>;
  /** Facts remembered between steps (a pid before a restart, ...). */
  readonly remembered = new Map<string, unknown>();
  /** How long each VM and disk operation took, for the report. */
  readonly timings: Array<{ what: string; ms: number; status: number }> = [];
  /** The settings the scenario's separate vman process was started with: starting it again keeps them. */
  childEnv: Record<string, string> = {};
  /** Undo actions registered by steps (unmount, stop a watcher, ...): run first at teardown, newest first. */
  readonly cleanups: Array<() => Promise<void>> = [];

  constructor(options: IWorldOptions) {
    super(options);
  }

  async prepareStorage(): Promise<void> {
    this.storage = newScenarioDir();
  }

  /** Boots the built test guest straight through the operator (no API). */
  async bootGuest(name: string, address: string): Promise<GuestVm> {
    const id = `${name}-${randomBytes(3).toString('hex')}`;
    const g = this.host.guest;
    const spec: QemuVmSpec = {
      id,
      dir: path.join(this.storage, id),
      qemuBinary: this.host.qemu.path,
      accel: this.host.accel.accel,
      cpus: 1,
      memoryMb: 512,
      boot: { kernel: g.kernel, initrd: g.initrd, cmdline: g.cmdline },
      disks: [],
      network: { mode: 'user', subnet: USER_SUBNET, address, mac: `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}` },
    };
    const handle = await QemuVm.start(spec, {
      protocolLog: (vm, e) => this.protocolLog.push({ ...e, vm }),
    });
    const vm: GuestVm = { name, handle, spec, address };
    this.vms.set(name, vm);
    this.currentVm = vm;
    return vm;
  }

  vm(name?: string): GuestVm {
    const vm = name === undefined ? this.currentVm : this.vms.get(name);
    if (!vm) throw new Error(name ? `no VM named ${name} in this scenario` : 'no VM has been started in this scenario');
    return vm;
  }

  /**
   * Starts vman on this scenario's storage: in-process, or as `vman serve` in a
   * child process (with the settings it had before, unless given others, and
   * set to die at a crash point when one is named).
   */
  async startVman(opts: { child?: boolean; env?: Record<string, string>; crashAt?: string } = {}): Promise<VmanEndpoint> {
    if (opts.child && opts.env) this.childEnv = opts.env;
    const env = opts.child ? { ...this.childEnv, ...(opts.crashAt ? { VMAN_CRASH_AT: opts.crashAt } : {}) } : opts.env;
    const settings = {
      storagePath: path.join(this.storage, 'vman'),
      hostInfo: this.host,
      protocolLog: (vm: string, e: ProtocolLogEntry) => this.protocolLog.push({ ...e, vm }),
      ...(env ? { env } : {}),
    };
    if (opts.child) {
      this.child = await startChildVman(settings);
      this.vman = this.child;
    } else {
      this.vman = await startInProcessVman(settings);
    }
    this.dbReader ??= await DbReader.open(this.vman.dbPath);
    return this.vman;
  }

  api(): VmanEndpoint {
    if (!this.vman) throw new Error('vman is not running in this scenario');
    return this.vman;
  }

  db(): DbReader {
    if (!this.dbReader) throw new Error('no database to read: vman was not started');
    return this.dbReader;
  }

  idOf(name: string): string {
    const id = this.ids.get(name);
    if (!id) throw new Error(`nothing named ${name} was created in this scenario`);
    return id;
  }

  /**
   * Stops every VM of the scenario (forced: the scenario is over), vman, and
   * any QEMU left under the scenario's storage; removes the storage. Safe to call twice.
   */
  async destroyAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const undo of this.cleanups.splice(0).reverse()) await undo().catch((e: unknown) => errors.push(e));
    for (const vm of this.vms.values()) {
      await vm.handle.stop({ force: true, quitTimeoutMs: 3_000 }).catch((e: unknown) => errors.push(e));
    }
    this.vms.clear();
    await this.vman?.stop().catch((e: unknown) => errors.push(e));
    this.vman = undefined;
    this.child = undefined;
    await this.dbReader?.close();
    this.dbReader = undefined;
    if (this.storage) {
      // VMs started through vman outlive it by design: end them by their folder.
      await killProcesses(await qemuProcessesUnder(this.storage));
      await rm(this.storage, { recursive: true, force: true });
    }
    if (errors.length > 0) throw new AggregateError(errors, 'teardown could not stop everything');
  }
}

setWorldConstructor(VmanWorld);
