// Simulated QEMU for unit tests of vman's own logic (VMAN_OPERATOR_DRY_RUN=1).
// Same interface as the real operator; no process, no socket, no file. Never
// used by an acceptance scenario.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { vmPaths, type DiskSpec, type QemuVmSpec, type VmPaths } from './qemu-command.ts';
import type { ExitInfo, Operator, VmHandle } from './operator.ts';
import type { Readiness, ReadinessRule, ResumeTimings, StopMethod, StopOptions } from './qemu-vm.ts';
import type { SavedState } from './vm-state-file.ts';
import { diskNodeNames } from '../model/device-model.ts';
import type { BlockInventory } from './hotplug.ts';
import type { DiskIoStats } from './block-stats.ts';
import { WaitTimeoutError } from '../poll.ts';

/** Knobs a unit test turns to make the simulated QEMU misbehave. */
export interface DryRunBehaviour {
  failLaunch?: string;
  neverReady?: boolean;
  failHotplug?: string;
}

export class DryRunOperator implements Operator {
  readonly dryRun = true;
  /** Simulated processes by VM id: survive a "vman restart" when the same operator is reused. */
  readonly vms = new Map<string, DryRunVm>();
  behaviour: DryRunBehaviour = {};
  launches = 0;
  private nextPid = 4_000_000;

  async start(spec: QemuVmSpec, opts: { stateFile?: string } = {}): Promise<VmHandle> {
    this.launches++;
    if (this.behaviour.failLaunch) throw new Error(this.behaviour.failLaunch);
    await mkdir(spec.dir, { recursive: true, mode: 0o700 });
    const vm = new DryRunVm(spec, this.nextPid++, this);
    // A simulated state file holds the address the guest had; the resumed guest keeps it.
    if (opts.stateFile !== undefined) {
      const saved = JSON.parse(await readFile(opts.stateFile, 'utf8')) as { address: string | null };
      vm.address = saved.address;
      vm.resumed = { launchMs: 1, loadMs: 1 };
      vm.paused = true;
    }
    this.vms.set(spec.id, vm);
    return vm;
  }

  async adopt(vmId: string): Promise<VmHandle | undefined> {
    const vm = this.vms.get(vmId);
    return vm?.alive ? vm : undefined;
  }

  async terminate(vmId: string): Promise<boolean> {
    const vm = this.vms.get(vmId);
    if (!vm?.alive) return false;
    vm.alive = false;
    return true;
  }

  /** Simulated processes open no files: nothing changes hands. */
  async returnFile(): Promise<void> {}

  /** Nor are they in cgroups. */
  async releaseHost(): Promise<void> {}
}

export class DryRunVm implements VmHandle {
  readonly id: string;
  readonly paths: VmPaths;
  /** The address its network would hand it (user mode), or null. */
  address: string | null;
  alive = true;
  paused = false;
  resumed: ResumeTimings | undefined;
  readonly disks = new Map<string, string>();
  readonly io = new Map<string, Partial<DiskIoStats>>();
  private listeners = new Set<(info: ExitInfo) => void>();

  constructor(
    spec: QemuVmSpec,
    readonly pid: number,
    private readonly operator: DryRunOperator,
  ) {
    this.id = spec.id;
    this.paths = vmPaths(spec.dir);
    this.address = spec.network.mode === 'user' ? spec.network.address : null;
    spec.disks.forEach((d) => this.disks.set(d.id, this.nextDevice()));
  }

  onExit(listener: (info: ExitInfo) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async isRunning(): Promise<boolean> {
    return this.alive;
  }

  async runState(): Promise<string> {
    return !this.alive ? 'shutdown' : this.paused ? 'paused' : 'running';
  }

  async pause(): Promise<void> {
    this.paused = true;
  }

  async resume(): Promise<void> {
    this.paused = false;
  }

  async saveState(file: string): Promise<SavedState> {
    const text = JSON.stringify({ address: this.address });
    await writeFile(file, text, { flag: 'wx', mode: 0o600 });
    return { bytes: text.length, ms: 1 };
  }

  async setGuestTime(): Promise<number> {
    return 0;
  }

  async waitUntilReady(rule: ReadinessRule, timeoutMs: number, opts: { setClock?: boolean } = {}): Promise<Readiness> {
    // A timeout as the real wait reports one, so the API answers it as one (504).
    if (this.operator.behaviour.neverReady) throw new WaitTimeoutError('the guest to become ready (simulated)', 'a simulated guest that never is', timeoutMs);
    // A simulated guest takes the address it was handed, and says so when it has an agent.
    return { guestAddress: rule.kind === 'agent' ? this.address : null, ms: 1, ...(opts.setClock ? { clockOffsetMs: 0 } : {}) };
  }

  async stop(opts: StopOptions = {}): Promise<StopMethod> {
    if (!this.alive) return 'already-stopped';
    this.alive = false;
    return opts.force ? 'quit' : 'agent';
  }

  async kill(): Promise<void> {
    this.alive = false;
  }

  async disconnect(): Promise<void> {}

  /** Simulates QEMU dying on its own (or the guest powering off). */
  crash(info: ExitInfo = { guestInitiated: false, detail: `QEMU ${this.pid} exited (simulated)` }): void {
    this.alive = false;
    for (const l of this.listeners) l(info);
  }

  async attachDisk(disk: DiskSpec): Promise<string> {
    if (this.operator.behaviour.failHotplug) throw new Error(this.operator.behaviour.failHotplug);
    const device = this.nextDevice();
    this.disks.set(disk.id, device);
    return device;
  }

  async detachDisk(diskId: string): Promise<void> {
    this.disks.delete(diskId);
  }

  async releaseDisk(diskId: string): Promise<void> {
    this.disks.delete(diskId);
  }

  async blockInventory(): Promise<BlockInventory> {
    const names = [...this.disks.keys()].map((id) => diskNodeNames(id));
    return { devices: names.map((n) => n.device), nodes: names.flatMap((n) => [n.node, n.fileNode]) };
  }

  /** Simulated I/O: zero for each disk unless a test set its figures in `io`. */
  async blockStats(): Promise<DiskIoStats[]> {
    return [...this.disks.keys()].map((diskId) => ({
      diskId, readBytes: 0, writtenBytes: 0, reads: 0, writes: 0, flushes: 0, failedReads: 0, failedWrites: 0, failedFlushes: 0, ...this.io.get(diskId),
    }));
  }

  async removeBlock(what: BlockInventory): Promise<BlockInventory> {
    for (const id of [...this.disks.keys()]) if (what.devices.includes(diskNodeNames(id).device)) this.disks.delete(id);
    return what;
  }

  async guestDevicePath(diskId: string): Promise<string | undefined> {
    return this.disks.get(diskId);
  }

  private nextDevice(): string {
    return `/dev/vd${String.fromCharCode('b'.charCodeAt(0) + this.disks.size)}`;
  }
}
