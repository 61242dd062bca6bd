// One World per scenario: its own storage folder, the VMs it started (which
// it always destroys), the host facts and the report attachments.
import { access, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { setWorldConstructor, World, type IWorldOptions } from '@cucumber/cucumber';
import type { ProtocolLogEntry } from '../src/operator/qmp-client.ts';
import { newScenarioDir, qemuProcessesUnder, killProcesses } from '../support/run-context.ts';
import type { SuiteHost } from '../support/host.ts';
import type { Row } from '../support/db-reader.ts';
import type { GuestDisk } from '../support/guest-view.ts';
import type { VmWatch } from '../support/disk-facts.ts';
import type { QmpEvent } from '../support/qmp-reader.ts';
import type { QemuWatch } from '../support/vm-tasks.ts';
import type { ScenarioNotes } from './scenario-notes.ts';

/** What a scenario learnt about a VM it names, so later steps can check it after its row is gone. */
export interface VmNotes {
  id: string;
  dir: string;
  /** Its QEMU's pid when it was noted (a restart must change it, an adoption must not). */
  pid?: number;
  /** Its row before a request that must change nothing. */
  rowBefore?: Row;
  tap?: string;
  /** The address its guest reported. */
  guestAddress?: string;
  /** A watch of the running guest across hot-plugs. */
  watch?: VmWatch;
  /** What QEMU told the suite's own monitor while the VM stopped, up to its exit. */
  stopEvents?: QmpEvent[];
  /** The suite's monitor on its QEMU, opened ahead of a fault that would keep QEMU from greeting a new one. */
  qemuWatch?: QemuWatch;
}

/** What a scenario noted about a disk it names. */
export interface DiskNotes {
  /** The sha256 of its file, to prove it untouched. */
  sha256?: string;
  /** The marker the guest wrote on it. */
  guestMarker?: string;
  /** The marker it held when a snapshot was taken (a later one overwrote it). */
  firstGuestMarker?: string;
  /** The sha256 of its first 4 MiB as the guest read them. */
  guestChecksum?: string;
  /** A pattern written into its image with qemu-io before a crash. */
  imageMarker?: { offset: number; length: number; pattern: number };
  /** The guest's disks before it was attached, by VM name. */
  guestDisksBefore?: Map<string, GuestDisk[]>;
}
import { bootBareGuest, killBareGuest, type BareGuest } from '../support/bare-guest.ts';
import { DbReader } from '../support/db-reader.ts';
import { startChildVman, startInProcessVman, type ChildVman, type VmanEndpoint } from './vman-service.ts';
import { removeVmCgroups, vmIdsUnder } from '../support/cgroup-reader.ts';
import { seedWarmStorage, warmStoragePath, type WarmSource } from '../support/warm-start.ts';
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
  /** What the scenario knows of each VM and disk it names. */
  readonly vmNotes = new Map<string, VmNotes>();
  readonly diskNotes = new Map<string, DiskNotes>();
  /** Scenario-wide facts kept between steps (a report, a request's answer, ...), each of its own type (world/scenario-notes.ts). */
  readonly notes: Partial<ScenarioNotes> = {};
  /** How long each VM and disk operation took, for the report. */
  readonly timings: Array<{ what: string; ms: number; status: number }> = [];
  /** The settings the scenario's separate vman process was started with: starting it again keeps them. */
  childEnv: Record<string, string> = {};
  /** Settings every vman of this scenario starts with (a tag hook sets them: @real-guest's longer deadlines). */
  vmanEnv: Record<string, string> = {};
  /** Undo actions registered by steps (unmount, a network namespace, ...): run first at teardown, newest first. */
  readonly cleanups: Array<() => Promise<void>> = [];
  /**
   * Whether this scenario's running VMs come up as clones of the worker's warm
   * snapshot (support/warm-start.ts; a Before hook decides from its tags and
   * steps), and, once its vman started on a copy of the warm database, the
   * snapshot they are cloned from.
   */
  clonesWarm = false;
  warmSource?: WarmSource;
  /** Clones made but not yet started: their first start is timed as a warm start. */
  readonly clonesToResume = new Set<string>();
  /** Watches of running guests (agent and QMP polled in the background): stopped before the system is judged, which needs the agent. */
  readonly watches: Array<{ stop(): Promise<unknown> }> = [];

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
    const env = { ...this.vmanEnv, ...(opts.child ? { ...this.childEnv, ...(opts.crashAt ? { VMAN_CRASH_AT: opts.crashAt } : {}) } : opts.env) };
    const storagePath = this.vmanStorage();
    // The first vman of a scenario that clones starts on a copy of the worker's warm storage.
    if (this.clonesWarm && !this.warmSource) {
      this.warmSource = await seedWarmStorage(this.host ? [this.host.guest.dir] : []);
      this.attach(`vman starts on a copy of the worker's warm storage: ${this.warmSource.vm} (stopped) and its snapshot ${this.warmSource.snapshot}, made once by this worker in ${this.warmSource.madeInMs} ms`, 'text/plain');
    }
    const settings = {
      storagePath,
      imageDirs: this.imageDirs(),
      protocolLog: (vm: string, e: ProtocolLogEntry) => this.protocolLog.push({ ...e, vm }),
      env,
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

  /**
   * vman's storage in this scenario: a folder of its own, or, in a scenario
   * that clones, the worker's warm storage (support/warm-start.ts), which the
   * worker's scenarios take in turn and its teardown empties.
   */
  vmanStorage(): string {
    return this.clonesWarm ? warmStoragePath() : path.join(this.storage, 'vman');
  }

  /**
   * Where vman may take templates' boot files from: the scenario's own images
   * folder (files a step makes), vman's default one, and the built guests.
   */
  imageDirs(): string[] {
    return [
      path.join(this.storage, 'images'), path.join(this.vmanStorage(), 'images'),
      ...(this.host ? [this.host.guest.dir] : []), ...(this.host?.debian ? [this.host.debian.dir] : []),
    ];
  }

  api(): VmanEndpoint {
    if (!this.vman) throw new Error('vman is not running in this scenario');
    return this.vman;
  }

  db(): DbReader {
    if (!this.dbReader) throw new Error('no database to read: vman was not started');
    return this.dbReader;
  }

  /** Notes about a VM, which an earlier step must have taken. */
  vmNoted(name: string): VmNotes {
    const notes = this.vmNotes.get(name);
    if (!notes) throw new Error(`nothing was noted about a VM named ${name} in this scenario`);
    return notes;
  }

  /** Notes about a disk (empty at first). */
  diskNoted(name: string): DiskNotes {
    let notes = this.diskNotes.get(name);
    if (!notes) this.diskNotes.set(name, (notes = {}));
    return notes;
  }

  /** A scenario-wide note, which an earlier step must have taken; `what` names it in the error. */
  noted<K extends keyof ScenarioNotes>(key: K, what?: string): ScenarioNotes[K] {
    const note = this.notes[key];
    if (note === undefined) throw new Error(`no earlier step noted ${what ?? key}`);
    return note;
  }

  idOf(name: string): string {
    const id = this.ids.get(name);
    if (!id) throw new Error(`nothing named ${name} was created in this scenario`);
    return id;
  }

  /**
   * Undoes what the scenario did, newest first: the steps' own undo actions,
   * the guests it booted, vman, any QEMU left under its storage (VMs outlive
   * vman by design), the storage itself. Then it looks again: anything it
   * started that survived fails the scenario. Safe to call twice.
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
    // The warm storage a cloning scenario borrowed is emptied like its own folder.
    for (const folder of this.storage ? [this.storage, ...(this.clonesWarm ? [warmStoragePath()] : [])] : []) {
      // VMs started through vman outlive it by design: end them by their folder, and their cgroups with them.
      await killProcesses(await qemuProcessesUnder(folder));
      const cgroupsLeft = await removeVmCgroups(await vmIdsUnder(folder));
      if (cgroupsLeft.length > 0) errors.push(new Error(`VM cgroups could not be removed: ${cgroupsLeft.join('; ')}`));
      await rm(folder, { recursive: true, force: true });
      const survivors = await qemuProcessesUnder(folder);
      if (survivors.length > 0) errors.push(new Error(`QEMU ${survivors.map((p) => p.pid).join(', ')} survived the teardown of ${folder}`));
      if (await access(folder).then(() => true, () => false)) errors.push(new Error(`${folder} survived the teardown`));
    }
    if (errors.length > 0) throw new AggregateError(errors, `teardown could not undo everything: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`);
  }
}

setWorldConstructor(VmanWorld);
