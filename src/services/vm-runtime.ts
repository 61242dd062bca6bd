// The one owner of live VM state: the QEMU handles vman holds, the per-VM (and
// per-disk) locks, and the one transition that takes a VM out of its running
// life, releasing its network, its address and its disks' mount points
// together. The VM and disk services, the observer's repair and start-up
// recovery all go through it, so those steps are written once.
import type { VmanDb } from '../db/database.ts';
import type { AtRestState, VmRecord } from '../db/types.ts';
import { conflict } from '../errors.ts';
import type { AddressPool } from '../network/address-pool.ts';
import type { NetworkBackend } from '../network/backend.ts';
import type { ExitInfo, Operator, VmHandle } from '../operator/operator.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { IN_LIFE } from '../model/vm-states.ts';

export interface VmRuntimeOptions {
  db: VmanDb;
  operator: Operator;
  pool: AddressPool;
  network: NetworkBackend;
  log?: (msg: string, fields?: { vm_id: string }) => void;
}

export interface SettleHooks {
  /** After the network is released, before the database write (a crash point). */
  beforeRecord?: () => void;
  /** Inside the transaction of the write. */
  inTransaction?: () => void;
}

export class VmRuntime {
  /** Per-VM and per-disk serialisation: every action on a resource holds its key. */
  readonly locks = new KeyedMutex();
  readonly #handles = new Map<string, VmHandle>();
  readonly #log: (msg: string, fields?: { vm_id: string }) => void;

  constructor(private readonly o: VmRuntimeOptions) {
    this.#log = o.log ?? (() => undefined);
  }

  get operator(): Operator {
    return this.o.operator;
  }

  get network(): NetworkBackend {
    return this.o.network;
  }

  handle(vmId: string): VmHandle | undefined {
    return this.#handles.get(vmId);
  }

  /** The QEMU of a VM recorded running; a conflict when vman holds none. */
  requireHandle(vmId: string): VmHandle {
    const handle = this.#handles.get(vmId);
    if (!handle) throw conflict('vm-not-controllable', `VM ${vmId} is recorded running but vman holds no QEMU connection for it`);
    return handle;
  }

  /** A QEMU vman launched or adopted: held, and its exit recorded when it goes on its own. */
  track(vmId: string, handle: VmHandle): void {
    this.#handles.set(vmId, handle);
    handle.onExit((info) => this.#onExit(vmId, handle, info));
  }

  /** vman lets go of a handle it ended itself (stop, kill). */
  untrack(vmId: string): VmHandle | undefined {
    const handle = this.#handles.get(vmId);
    this.#handles.delete(vmId);
    return handle;
  }

  /**
   * The VM leaves its running life (or a start is undone): its network is
   * released (a failure is logged: the process is gone whatever it says), then
   * in one transaction its state, pid, address and disks' mount points.
   * `inTransaction` lets the caller clear its intent in the same commit.
   */
  async settle(vmId: string, to: { state: AtRestState; reason: string | null }, hooks: SettleHooks = {}): Promise<VmRecord | undefined> {
    await this.o.network.release(vmId).catch((err: unknown) => this.#log(`vm ${vmId}: network release failed: ${message(err)}`, { vm_id: vmId }));
    // Its cgroup, whoever ended its QEMU (a vman before this one, a signal, a stop).
    await this.o.operator.releaseHost(vmId).catch((err: unknown) => this.#log(`vm ${vmId}: its cgroup could not be removed: ${message(err)}`, { vm_id: vmId }));
    hooks.beforeRecord?.();
    return this.o.db.transaction(() => {
      const vm = this.o.db.vms.get(vmId);
      if (vm) {
        this.o.db.vms.setState(vmId, to.state, { pid: null, reason: to.reason });
        this.o.db.vms.setRuntime(vmId, { sshPort: null, guestAddress: null });
        this.o.db.disks.clearMountPoints(vmId);
      }
      this.o.pool.release(vmId);
      hooks.inTransaction?.();
      return vm && this.o.db.vms.get(vmId);
    });
  }

  /** A VM at rest that still holds an address (and perhaps its network): both go. True if it held one. */
  async releaseAddress(vmId: string): Promise<boolean> {
    await this.o.network.release(vmId).catch((err: unknown) => this.#log(`vm ${vmId}: network release failed: ${message(err)}`, { vm_id: vmId }));
    return this.o.db.transaction(() => this.o.pool.release(vmId) !== undefined);
  }

  /** The caller (holding the VM's lock) found the VM broken, e.g. QEMU stopped answering: end its QEMU and record why. */
  async failLocked(vmId: string, reason: string): Promise<void> {
    await this.untrack(vmId)?.kill().catch(() => undefined);
    await this.settle(vmId, { state: 'error', reason });
    this.#log(`vm ${vmId} failed: ${reason}`, { vm_id: vmId });
  }

  /** Ends a VM's QEMU that vman holds no handle for (found by its pidfile and name); true if one was running. */
  async terminate(vm: Pick<VmRecord, 'id' | 'storageDir'>): Promise<boolean> {
    const handle = this.untrack(vm.id);
    if (handle) {
      await handle.kill();
      return true;
    }
    return this.o.operator.terminate(vm.id, vm.storageDir);
  }

  /**
   * At start-up: reconnects to the VMs whose QEMU outlived the previous vman
   * and settles those whose QEMU is gone. VMs named in `leave` are recovery's
   * to settle (an unfinished start, stop or delete).
   */
  async adoptAll(leave: ReadonlySet<string> = new Set()): Promise<{ adopted: string[]; lost: string[] }> {
    const adopted: string[] = [];
    const lost: string[] = [];
    for (const vm of this.o.db.vms.listByState(...IN_LIFE)) {
      if (leave.has(vm.id)) continue;
      const handle = await this.o.operator.adopt(vm.id, vm.storageDir).catch(() => undefined);
      if (handle) {
        this.track(vm.id, handle);
        this.o.db.vms.setState(vm.id, 'running', { pid: handle.pid });
        adopted.push(vm.id);
      } else {
        const to: AtRestState = vm.state === 'stopping' ? 'stopped' : 'error';
        await this.settle(vm.id, { state: to, reason: to === 'error' ? 'QEMU process gone while vman was not running' : null });
        lost.push(vm.id);
      }
    }
    if (adopted.length + lost.length > 0) this.#log(`adopted ${adopted.length} running VM(s); ${lost.length} gone`);
    return { adopted, lost };
  }

  /**
   * vman is going away: let go of QEMU (VMs keep running and are adopted next
   * time), after the operations in flight, or once `deadline` settles if that
   * comes first (what is still running then is recovered at the next start).
   */
  async release(deadline?: Promise<unknown>): Promise<void> {
    await (deadline ? Promise.race([this.locks.drain(), deadline]) : this.locks.drain());
    // QEMU takes one client per QMP socket: the next vman's adoption needs it free.
    await Promise.all([...this.#handles.values()].map((h) => h.disconnect().catch(() => undefined)));
    this.#handles.clear();
  }

  /** QEMU went away without being asked (crash, kill, guest power-off). */
  #onExit(vmId: string, handle: VmHandle, info: ExitInfo): void {
    void this.locks.run(vmId, async () => {
      if (this.#handles.get(vmId) !== handle) return; // a stop or restart already dealt with it
      this.#handles.delete(vmId);
      const vm = this.o.db.vms.get(vmId);
      if (!vm || (vm.state !== 'running' && vm.state !== 'starting')) return;
      const to = info.guestInitiated
        ? { state: 'stopped' as const, reason: 'the guest powered off' }
        : { state: 'error' as const, reason: `the QEMU process died: ${info.detail}` };
      await this.settle(vmId, to);
      this.#log(`vm ${vmId} left ${vm.state}: ${info.detail}`, { vm_id: vmId });
    });
  }
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
