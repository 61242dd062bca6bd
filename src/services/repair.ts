// Repairs what an observer report found, only when someone asks, and only
// through the VM runtime (its locks and its one transition), so a repair never
// races a start, a stop or a hot-plug. What it may do: settle a VM whose QEMU
// is gone, give back an address no VM uses, and take out of QEMU what no disk
// record accounts for (unplug the device, delete the nodes; the disk file is
// never touched). It never kills a process and never deletes a file: orphan
// processes, files, folders and network leftovers are for a person to judge.
import type { VmanDb } from '../db/database.ts';
import type { ObserverReport } from '../observer/findings.ts';
import { deviceModelOf, expectedBlockNames } from '../model/device-model.ts';
import { HOLDS_ADDRESS } from '../model/vm-states.ts';
import { message, type VmRuntime } from './vm-runtime.ts';

export interface RepairResult {
  changed: Array<{ vmId: string; from: string; to: 'error'; reason: string }>;
  releasedAddresses: string[];
  /** What was taken out of each VM's QEMU. */
  removedFromQemu: Array<{ vmId: string; devices: string[]; nodes: string[] }>;
  /** What could not be repaired, and why. */
  failed: Array<{ resourceId: string; reason: string }>;
}

export class RepairService {
  constructor(private readonly o: { db: VmanDb; runtime: VmRuntime; log?: (msg: string) => void }) {}

  async repair(report: ObserverReport): Promise<RepairResult> {
    const result: RepairResult = { changed: [], releasedAddresses: [], removedFromQemu: [], failed: [] };
    const { db, runtime } = this.o;

    for (const f of report.findings) {
      if (f.kind !== 'vm-not-running') continue;
      // A QEMU that is alive but not running (paused, a crashed guest) is left as it is: stop it with force.
      if (f.pid !== undefined) continue;
      await runtime.locks.run(f.resourceId, async () => {
        // The report may be stale: only a VM still recorded running, whose QEMU vman does not hold, is changed.
        const vm = db.vms.get(f.resourceId);
        const handle = runtime.handle(f.resourceId);
        if (vm?.state !== 'running' || (handle && (await handle.isRunning()))) return;
        runtime.untrack(vm.id);
        const address = db.addresses.getByVm(vm.id)?.address;
        const reason = `observer: QEMU process gone (${f.observed})`;
        await runtime.settle(vm.id, { state: 'error', reason });
        result.changed.push({ vmId: vm.id, from: 'running', to: 'error', reason });
        if (address) result.releasedAddresses.push(address);
      });
    }

    for (const f of report.findings) {
      if (f.kind !== 'address-without-running-vm') continue;
      const allocation = db.addresses.list().find((a) => a.address === f.resourceId);
      if (!allocation || result.releasedAddresses.includes(allocation.address)) continue;
      await runtime.locks.run(allocation.vmId, async () => {
        // Re-check now: the VM may have started again since the report was made.
        const vm = db.vms.get(allocation.vmId);
        if (vm && HOLDS_ADDRESS.has(vm.state)) return;
        if (await runtime.releaseAddress(allocation.vmId)) result.releasedAddresses.push(allocation.address);
      });
    }

    const vmsWithStrays = new Set(report.findings.filter((f) => f.kind === 'qemu-block-unrecorded' && f.vmId).map((f) => f.vmId!));
    for (const vmId of vmsWithStrays) {
      await runtime.locks.run(vmId, async () => {
        const vm = db.vms.get(vmId);
        const handle = runtime.handle(vmId);
        if (!vm || vm.state !== 'running' || !handle) {
          result.failed.push({ resourceId: vmId, reason: 'vman holds no QEMU connection for this VM' });
          return;
        }
        try {
          // Judged again now, from QEMU and the records as they are.
          const held = await handle.blockInventory();
          const expected = expectedBlockNames(deviceModelOf(vm, true), db.disks.listByVm(vmId).filter((d) => d.state === 'attached').map((d) => d.id));
          const strays = { devices: held.devices.filter((d) => !expected.has(d)), nodes: held.nodes.filter((n) => !expected.has(n)) };
          if (strays.devices.length + strays.nodes.length === 0) return;
          const removed = await handle.removeBlock(strays);
          result.removedFromQemu.push({ vmId, ...removed });
          this.o.log?.(`repair: took ${[...removed.devices, ...removed.nodes].join(', ')} out of the QEMU of ${vmId}`);
        } catch (err) {
          result.failed.push({ resourceId: vmId, reason: message(err) });
        }
      });
    }
    return result;
  }
}
