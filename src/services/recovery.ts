// Start-up recovery, before vman serves: every intent a dead vman left is
// finished or undone from what QEMU, the files and the network really show,
// so that the database and the host agree and the operation can be asked for
// again. The rule: what an operation had begun to add is taken back (create,
// start, attach); what it had begun to take away is finished (stop, delete,
// detach). A restart is a stop and then a start, so cut short it ends stopped.
import { rm } from 'node:fs/promises';
import { putDisksBack, removeSnapshotDir } from './snapshot-service.ts';
import type { VmanDb } from '../db/database.ts';
import type { Intent, IntentRecord } from '../db/types.ts';
import { removeImage } from '../operator/qemu-img.ts';
import type { IntentJournal } from './intent-journal.ts';
import { describeIntent } from '../model/intents.ts';
import { message, type VmRuntime } from './vm-runtime.ts';

export interface RecoveryOptions {
  db: VmanDb;
  journal: IntentJournal;
  runtime: VmRuntime;
  /** Removes a stopped VM's rows (disks detached, address released). */
  forgetVm(vmId: string): void;
  log?: (msg: string) => void;
}

export interface Recovered {
  intent: Intent;
  /** What recovery did, in words, for the log. */
  outcome: string;
  /** False when it could not be settled and stays recorded. */
  settled: boolean;
}

type VmIntent = Extract<Intent, { op: `vm.${string}` }>;
type DiskIntent = Extract<Intent, { op: `disk.${string}` }>;

// When a VM has several intents (a delete whose stop was cut short), the one that decides.
const VM_PRECEDENCE: Record<VmIntent['op'], number> = {
  'vm.delete': 0, 'vm.stop': 1, 'vm.revert': 2, 'vm.start': 3, 'vm.snapshot': 4, 'vm.snapshot-delete': 5, 'vm.create': 6,
};

/**
 * Adopts the VMs whose QEMU outlived the last vman (those no unfinished VM
 * operation names), then settles every unfinished intent: VM operations
 * first, so that a disk operation sees the VM as it now is.
 */
export async function recover(o: RecoveryOptions): Promise<Recovered[]> {
  const log = o.log ?? (() => undefined);
  const left = o.journal.unfinished();
  const byVm = new Map<string, Array<IntentRecord & { intent: VmIntent }>>();
  const disks: Array<IntentRecord & { intent: DiskIntent }> = [];
  for (const r of left) {
    if (isVmIntent(r.intent)) {
      const list = byVm.get(r.intent.vmId) ?? [];
      list.push(r as IntentRecord & { intent: VmIntent });
      byVm.set(r.intent.vmId, list);
    } else {
      disks.push(r as IntentRecord & { intent: DiskIntent });
    }
  }
  await o.runtime.adoptAll(new Set(byVm.keys()));

  // One intent that cannot be settled must not keep vman from serving: it stays
  // recorded, and the observer reports it (intent-unfinished) for a person to see.
  const failed = (err: unknown): { outcome: string; settled: boolean } => ({ outcome: `could not be settled, left recorded: ${message(err)}`, settled: false });
  const done: Recovered[] = [];
  for (const records of byVm.values()) {
    const decisive = [...records].sort((a, b) => VM_PRECEDENCE[a.intent.op] - VM_PRECEDENCE[b.intent.op])[0]!;
    const { outcome, settled } = await settleVm(o, decisive.intent).then((what) => {
      o.db.transaction(() => records.forEach((r) => o.journal.clear(r.id)));
      return { outcome: what, settled: true };
    }, failed);
    for (const r of records) done.push({ intent: r.intent, outcome: r === decisive ? outcome : `settled with ${decisive.intent.op}`, settled });
  }
  for (const r of disks) {
    done.push({ intent: r.intent, ...await settleDisk(o, r.intent, r.id).then((outcome) => ({ outcome, settled: true }), failed) });
  }
  for (const d of done) log(`recovery: ${describeIntent(d.intent)}: ${d.outcome}`);
  return done;
}

function isVmIntent(i: Intent): i is VmIntent {
  return i.op.startsWith('vm.');
}

async function settleVm(o: RecoveryOptions, i: VmIntent): Promise<string> {
  const vm = o.db.vms.get(i.vmId);
  switch (i.op) {
    case 'vm.create': {
      // Never recorded (the record and the intent's end are one commit): the folder goes.
      if (vm) return 'already recorded';
      await rm(i.dir, { recursive: true, force: true });
      return `undone: folder ${i.dir} removed`;
    }
    case 'vm.start': {
      if (!vm) return 'the VM is gone';
      const killed = await o.runtime.terminate(vm);
      await o.runtime.settle(vm.id, { state: i.from.state, reason: i.from.reason }, {
        // Its first start, undone: the QEMU user it chose goes back to the range, and the row is as it was.
        inTransaction: () => {
          if (i.from.qemuIdentity === null) o.db.vms.setQemuIdentity(vm.id, null);
        },
      });
      return `undone: ${killed ? 'its QEMU ended, ' : ''}network and address released, back to ${i.from.state}`;
    }
    case 'vm.stop': {
      if (!vm) return 'the VM is gone';
      const how = await stopQemu(o, vm.id, vm.storageDir);
      await o.runtime.settle(vm.id, { state: 'stopped', reason: null });
      return `finished: ${how}, network and address released, stopped`;
    }
    case 'vm.snapshot': {
      // Never recorded (the record and the intent's end are one commit): its folder goes, and a paused guest runs on.
      if (!o.db.snapshots.get(i.snapshotId)) await removeSnapshotDir(i.dir);
      if (!vm || !i.running) return 'undone: the snapshot folder removed';
      const handle = await o.runtime.operator.adopt(vm.id, vm.storageDir).catch(() => undefined);
      if (!handle) {
        await o.runtime.settle(vm.id, { state: 'error', reason: 'QEMU process gone while vman was taking a snapshot' });
        return 'undone: the snapshot folder removed; its QEMU was gone';
      }
      await handle.resume();
      o.runtime.track(vm.id, handle);
      o.db.vms.setState(vm.id, 'running', { pid: handle.pid });
      return 'undone: the snapshot folder removed, the guest runs on';
    }
    case 'vm.revert': {
      // What a revert takes away (the VM as it was) is gone for good: the disks are the snapshot's, the VM stopped.
      if (!vm) return 'the VM is gone';
      const killed = await o.runtime.terminate(vm);
      const snapshot = o.db.snapshots.get(i.snapshotId);
      if (snapshot) await putDisksBack(snapshot.disks);
      const reason = `a revert to snapshot ${snapshot?.name ?? i.snapshotId} was cut short: its disks are the snapshot's, its memory was not resumed`;
      await o.runtime.settle(vm.id, { state: 'stopped', reason });
      return `finished: ${killed ? 'its QEMU ended, ' : ''}disks put back, stopped`;
    }
    case 'vm.snapshot-delete': {
      const clones = o.db.vms.listClonesOf(i.snapshotId);
      if (clones.length > 0) return `not finished: clones stand on it (${clones.map((c) => c.name).join(', ')})`;
      o.db.snapshots.delete(i.snapshotId);
      await removeSnapshotDir(i.dir);
      return 'finished: record and folder removed';
    }
    case 'vm.delete': {
      let how = 'its record was already gone';
      if (vm) {
        how = await stopQemu(o, vm.id, vm.storageDir);
        await o.runtime.settle(vm.id, { state: 'stopped', reason: null });
        o.forgetVm(vm.id);
      }
      await rm(i.dir, { recursive: true, force: true });
      return `finished: ${how}, record and folder removed`;
    }
  }
}

/** A QEMU that a stop or delete had begun to end: asked to power off as the request would have, forced if it must be. */
async function stopQemu(o: RecoveryOptions, vmId: string, dir: string): Promise<string> {
  const handle = await o.runtime.operator.adopt(vmId, dir).catch(() => undefined);
  if (handle) return `QEMU stopped (${await handle.stop()})`;
  return (await o.runtime.operator.terminate(vmId, dir)) ? 'QEMU killed' : 'QEMU was already gone';
}

async function settleDisk(o: RecoveryOptions, i: DiskIntent, id: number): Promise<string> {
  switch (i.op) {
    case 'disk.create': {
      await removeImage(i.file);
      o.db.transaction(() => {
        o.db.disks.delete(i.diskId);
        o.journal.clear(id);
      });
      return 'undone: image removed';
    }
    case 'disk.delete': {
      o.db.disks.delete(i.diskId);
      await removeImage(i.file);
      o.journal.clear(id);
      return 'finished: record and file removed';
    }
    case 'disk.attach': {
      // Not recorded attached (that commit ends the intent): whatever QEMU took of the disk goes back.
      const handle = i.hot ? o.runtime.handle(i.vmId) : undefined;
      let outcome = 'undone: nothing to take back';
      if (handle) {
        try {
          await handle.releaseDisk(i.diskId);
          outcome = 'undone: QEMU let go of the disk';
        } catch (err) {
          outcome = `could not be undone in QEMU (${message(err)}); the observer will report what it holds`;
        }
      }
      o.journal.clear(id);
      return outcome;
    }
    case 'disk.detach': {
      const handle = i.hot ? o.runtime.handle(i.vmId) : undefined;
      if (handle) {
        try {
          await handle.detachDisk(i.diskId);
        } catch (err) {
          // The guest keeps the disk: it stays recorded attached, as QEMU shows it.
          o.journal.clear(id);
          return `not finished: ${message(err)}; the disk stays attached`;
        }
      }
      o.db.transaction(() => {
        if (o.db.disks.get(i.diskId)?.vmId === i.vmId) o.db.disks.detach(i.diskId);
        o.journal.clear(id);
      });
      return `finished: ${handle ? 'QEMU let go of the disk, ' : ''}recorded available`;
    }
  }
}
