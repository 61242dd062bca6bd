// The operator: what vman asks of QEMU. One interface, two implementations:
// real QEMU processes, and simulated ones (dry run) for unit tests of vman's
// own logic.
import type { SavedState } from './vm-state-file.ts';
import { QemuVm, type ResumeTimings, type Readiness, type ReadinessRule, type StopMethod, type StopOptions, type VmHandleOptions } from './qemu-vm.ts';
import { terminateQemu } from './qemu-launcher.ts';
import type { DiskSpec, QemuVmSpec, VmPaths } from './qemu-command.ts';
import type { BlockInventory } from './hotplug.ts';
import type { DiskIoStats } from './block-stats.ts';

export interface VmHandle {
  readonly id: string;
  readonly pid: number;
  readonly paths: VmPaths;
  onExit(listener: (info: ExitInfo) => void): () => void;
  isRunning(): Promise<boolean>;
  /** QMP `query-status`. */
  runState(): Promise<string>;
  /** Until the guest is ready by its template's rule (stops early if QEMU exits). */
  /** With `setClock` (a resumed guest), its clock is set to the host's on the way. */
  waitUntilReady(rule: ReadinessRule, timeoutMs: number, opts?: { setClock?: boolean }): Promise<Readiness>;
  stop(opts?: StopOptions): Promise<StopMethod>;
  kill(): Promise<void>;
  /** vman lets go of the VM without stopping it (vman shuts down; the next one adopts it). */
  disconnect(): Promise<void>;
  /** Hot-plug: the disk is attached once the guest sees it; returns the guest's device path. */
  attachDisk(disk: DiskSpec, opts?: { timeoutMs?: number }): Promise<string>;
  /** Hot-unplug: done on DEVICE_DELETED, then the block nodes are removed. */
  detachDisk(diskId: string, opts?: { timeoutMs?: number }): Promise<void>;
  /** The same unplug outside a user's detach (undoing an attach): takes out whatever QEMU holds of the disk. */
  releaseDisk(diskId: string, opts?: { timeoutMs?: number }): Promise<void>;
  /** Block devices and named nodes QEMU holds now. */
  blockInventory(): Promise<BlockInventory>;
  /** What QEMU counted for each disk it holds: bytes, operations, failures. */
  blockStats(opts?: { timeoutMs?: number }): Promise<DiskIoStats[]>;
  /** Unplugs these devices and deletes these nodes; returns what went. */
  removeBlock(what: BlockInventory, opts?: { timeoutMs?: number }): Promise<BlockInventory>;
  /** The guest device path of a disk, as the guest reports it (by the disk's serial). */
  guestDevicePath(diskId: string, opts?: { timeoutMs?: number }): Promise<string | undefined>;
  /** Set when this QEMU started from a saved state (left paused until `resume`). */
  readonly resumed: ResumeTimings | undefined;
  /** Halts the guest's CPUs. */
  pause(): Promise<void>;
  /** Runs the guest's CPUs again (after a pause, a save or a load). */
  resume(): Promise<void>;
  /** Saves the paused guest's memory and device state to a new file. */
  saveState(file: string): Promise<SavedState>;
  /** Sets the guest's clock to the host's (its agent); the difference left, in ms. */
  setGuestTime(timeoutMs?: number): Promise<number>;
}

export interface ExitInfo {
  /** True when the guest powered itself off (QMP SHUTDOWN from the guest). */
  guestInitiated: boolean;
  /** What vman saw, for the VM's error reason. */
  detail: string;
}

export interface Operator {
  readonly dryRun: boolean;
  /** Set when no VM can start on this host, saying why. */
  readonly unavailableReason?: string;
  /** Boots a VM, or with `stateFile` loads its saved state and leaves it paused. */
  start(spec: QemuVmSpec, opts?: { stateFile?: string }): Promise<VmHandle>;
  /** Reconnects to a VM's QEMU left running by an earlier vman; undefined when it is gone. */
  adopt(vmId: string, dir: string): Promise<VmHandle | undefined>;
  /** Ends a VM's QEMU that no handle holds (SIGKILL); true if one was running. */
  terminate(vmId: string, dir: string): Promise<boolean>;
  /** A VM at rest: what the host kept for its QEMU (its cgroup) goes. */
  releaseHost(vmId: string): Promise<void>;
  /** A disk no QEMU opens any more (detached, or its VM gone) goes back to vman's ownership. */
  returnFile(file: string): Promise<void>;
}

export interface QemuOperatorOptions extends VmHandleOptions {
  launchTimeoutMs?: number;
}

export class QemuOperator implements Operator {
  readonly dryRun = false;
  constructor(private readonly opts: QemuOperatorOptions = {}) {}

  start(spec: QemuVmSpec, opts: { stateFile?: string } = {}): Promise<VmHandle> {
    return QemuVm.start(spec, { ...this.opts, ...opts });
  }

  adopt(vmId: string, dir: string): Promise<VmHandle | undefined> {
    return QemuVm.adopt(vmId, dir, this.opts);
  }

  async terminate(vmId: string, dir: string): Promise<boolean> {
    const ended = await terminateQemu(vmId, dir);
    await this.opts.confinement?.release(vmId);
    return ended;
  }

  async returnFile(file: string): Promise<void> {
    await this.opts.confinement?.releaseDisk(file);
  }

  async releaseHost(vmId: string): Promise<void> {
    await this.opts.confinement?.release(vmId);
  }
}

/**
 * vman on a host where QEMU cannot run: the API still serves (templates,
 * disks, reports), and every start says why it cannot happen.
 */
export class UnavailableOperator implements Operator {
  readonly dryRun = false;
  constructor(readonly unavailableReason: string) {}

  async start(): Promise<VmHandle> {
    throw new Error(`QEMU is not usable on this host: ${this.unavailableReason}`);
  }

  async adopt(): Promise<VmHandle | undefined> {
    return undefined;
  }

  async terminate(): Promise<boolean> {
    return false;
  }

  async returnFile(): Promise<void> {}

  async releaseHost(): Promise<void> {}
}
