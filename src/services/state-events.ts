// Where VM and disk states are written, they are checked and published: this
// wraps the database's VM and disk repositories so that every write of a state
// (a service's, the runtime's settle, adoption, recovery, repair) is checked
// against the one transition table (model/vm-states.ts) and publishes one
// event when, and only when, the state changed, and only once the write is
// committed (events of a rolled-back transaction are dropped). No module
// writes a VM's state around it: the services get only this database.
import type { VmanDb } from '../db/database.ts';
import type { DiskRepo } from '../db/disk-repo.ts';
import type { DiskRecord, VmRecord } from '../db/types.ts';
import type { VmRepo } from '../db/vm-repo.ts';
import type { EventBus, UnstampedEvent } from './events.ts';
import { assertTransition, IllegalTransitionError } from '../model/vm-states.ts';

/** The same database, its state writes publishing to `bus`. */
export function publishingStateChanges(db: VmanDb, bus: EventBus): VmanDb {
  const pending: UnstampedEvent[] = [];
  let depth = 0;
  const emit = (e: UnstampedEvent): void => {
    if (depth > 0) pending.push(e);
    else bus.publish(e);
  };
  const vmChanged = (before: VmRecord | undefined, after: VmRecord | undefined): void => {
    const vm = after ?? before;
    if (!vm || before?.state === after?.state) return;
    emit({
      type: 'vm.state',
      data: { id: vm.id, name: vm.name, state: after?.state ?? 'deleted', previous: before?.state ?? null, reason: after?.stateReason ?? null },
    });
  };
  const diskChanged = (before: DiskRecord | undefined, after: DiskRecord | undefined): void => {
    const disk = after ?? before;
    if (!disk || before?.state === after?.state) return;
    emit({
      type: 'disk.state',
      data: { id: disk.id, name: disk.name, state: after?.state ?? 'deleted', previous: before?.state ?? null, vm_id: after?.vmId ?? null },
    });
  };

  const vmRepo = db.vms;
  // The repository's own methods, with the state writes overridden (reads and other writes inherited).
  const vms: VmRepo = Object.assign(Object.create(vmRepo) as VmRepo, {
    insert(v: Parameters<VmRepo['insert']>[0]): VmRecord {
      if (v.state !== 'created') throw new IllegalTransitionError(v.id, 'created', v.state);
      const row = vmRepo.insert(v);
      vmChanged(undefined, row);
      return row;
    },
    setState(...args: Parameters<VmRepo['setState']>): VmRecord {
      const before = vmRepo.get(args[0]);
      if (before) assertTransition(before.id, before.state, args[1]);
      const row = vmRepo.setState(...args);
      vmChanged(before, row);
      return row;
    },
    compareAndSetState(...args: Parameters<VmRepo['compareAndSetState']>): VmRecord | undefined {
      const before = vmRepo.get(args[0]);
      if (before && args[1].includes(before.state)) assertTransition(before.id, before.state, args[2]);
      const row = vmRepo.compareAndSetState(...args);
      if (row) vmChanged(before, row);
      return row;
    },
    restore(vm: VmRecord): VmRecord {
      const before = vmRepo.get(vm.id);
      if (before) assertTransition(vm.id, before.state, vm.state);
      const row = vmRepo.restore(vm);
      vmChanged(before, row);
      return row;
    },
    delete(id: string): boolean {
      const before = vmRepo.get(id);
      const gone = vmRepo.delete(id);
      if (gone) vmChanged(before, undefined);
      return gone;
    },
  });

  const diskRepo = db.disks;
  const disks: DiskRepo = Object.assign(Object.create(diskRepo) as DiskRepo, {
    insert(d: Parameters<DiskRepo['insert']>[0]): DiskRecord {
      const row = diskRepo.insert(d);
      diskChanged(undefined, row);
      return row;
    },
    attach(...args: Parameters<DiskRepo['attach']>): DiskRecord {
      const before = diskRepo.get(args[0]);
      const row = diskRepo.attach(...args);
      diskChanged(before, row);
      return row;
    },
    detach(id: string): DiskRecord {
      const before = diskRepo.get(id);
      const row = diskRepo.detach(id);
      diskChanged(before, row);
      return row;
    },
    detachAll(vmId: string): number {
      const before = diskRepo.listByVm(vmId);
      const changes = diskRepo.detachAll(vmId);
      for (const d of before) diskChanged(d, diskRepo.get(d.id));
      return changes;
    },
    delete(id: string): boolean {
      const before = diskRepo.get(id);
      const gone = diskRepo.delete(id);
      if (gone) diskChanged(before, undefined);
      return gone;
    },
  });

  return {
    ...db,
    vms,
    disks,
    transaction<T>(fn: () => T): T {
      const mark = pending.length;
      depth++;
      let result: T;
      try {
        result = db.transaction(fn);
      } catch (err) {
        // Rolled back (the whole transaction or this savepoint): what it wrote never happened.
        pending.length = mark;
        throw err;
      } finally {
        depth--;
      }
      if (depth === 0) for (const e of pending.splice(0)) bus.publish(e);
      return result;
    },
  };
}
