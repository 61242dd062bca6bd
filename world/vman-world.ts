// One World per scenario: its own storage folder, the VMs it started (which
// it always destroys), the host facts and the report attachments.
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { setWorldConstructor, World, type IWorldOptions } from '@cucumber/cucumber';
import type { ProtocolLogEntry } from '../src/operator/qmp-client.ts';
import { newScenarioDir, qemuProcessesUnder, killProcesses } from '../support/run-context.ts';
import type { SuiteHost } from '../support/host.ts';
import { bootBareGuest, killBareGuest, type BareGuest } from '../support/bare-guest.ts';
import { DbReader } from '../support/db-reader.ts';
import { startChildVman, startInProcessVman, type ChildVman, type VmanEndpoint } from './vman-service.ts';
import type { Response } from 'got';
import path from 'node:path';


export class VmanWorld extends World {
  /** What this host offers, as the suite found it (support/host.ts). */
  host!: SuiteHost;
  storage = '';
  /** Guests the suite booted itself, without vman. */
  readonly vms = new Map<string, BareGuest>();
  readonly protocolLog: Array<ProtocolLogEntry & { vm: string }> = [];
  /** The guest the last step talked about ("the VM"). */
  currentVm?: BareGuest;
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

  /** Boots the built test guest with the suite's own QEMU command line (no vman). */
  async bootGuest(name: string, address: string): Promise<BareGuest> {
    const vm = await bootBareGuest(this.host, path.join(this.storage, `${name}-${randomBytes(3).toString('hex')}`), name, address);
    this.vms.set(name, vm);
    this.currentVm = vm;
    return vm;
  }

  vm(name?: string): BareGuest {
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
    for (const vm of this.vms.values()) await killBareGuest(vm).catch((e: unknown) => errors.push(e));
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
