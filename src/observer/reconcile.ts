// Repairs the database from a report, only when a person or the API asks. It
// writes rows and nothing else: it never kills a process and never deletes a
// file; orphan processes and orphan files are left for a person to judge.
import type { VmanDb } from '../db/database.ts';
import type { AddressRecord, VmState } from '../db/types.ts';
import type { ObserverReport } from './findings.ts';

export interface ReconcileResult {
  changed: Array<{ vmId: string; from: string; to: 'error'; reason: string }>;
  releasedAddresses: string[];
}

export interface ReconcileOptions {
  /** Clock for the rows' updated_at (tests pin it); the repositories' own clock otherwise. */
  now?: () => string;
}

// Kept in step with checkAddressesOwnedByRunningVms: these states still use their address.
const HOLDS_ADDRESS: ReadonlySet<VmState> = new Set<VmState>(['starting', 'running', 'stopping']);

export function reconcile(db: VmanDb, report: ObserverReport, opts: ReconcileOptions = {}): ReconcileResult {
  const changed: ReconcileResult['changed'] = [];
  const released = new Set<string>();
  const touch = opts.now ? db.db.prepare<[string, string]>('UPDATE vms SET updated_at = ? WHERE id = ?') : undefined;

  // One transaction: a crash half-way leaves neither an error VM holding its address nor the reverse.
  db.transaction(() => {
    for (const f of report.findings) {
      if (f.kind !== 'vm-not-running') continue;
      const reason = `observer: QEMU process gone (${f.observed})`;
      // The report may be stale: only a VM still recorded running is changed (and only once).
      // A QEMU that is alive but not running keeps its pid, so the process stays visible.
      const setOpts = f.pid === undefined ? { reason, pid: null } : { reason };
      const updated = db.vms.compareAndSetState(f.resourceId, ['running'], 'error', setOpts);
      if (!updated) continue;
      if (touch && opts.now) touch.run(opts.now(), updated.id);
      changed.push({ vmId: updated.id, from: 'running', to: 'error', reason });
      const address = db.addresses.getByVm(updated.id);
      if (address && db.addresses.release(updated.id)) released.add(address.address);
    }

    const addressFindings = report.findings.filter((f) => f.kind === 'address-without-running-vm');
    if (addressFindings.length === 0) return;
    const byAddress = new Map<string, AddressRecord>(db.addresses.list().map((a) => [a.address, a]));
    for (const f of addressFindings) {
      const allocation = byAddress.get(f.resourceId);
      if (!allocation || released.has(allocation.address)) continue;
      // Re-check now: the VM may have started again since the report was made.
      const vm = db.vms.get(allocation.vmId);
      if (vm && HOLDS_ADDRESS.has(vm.state)) continue;
      if (db.addresses.release(allocation.vmId)) released.add(allocation.address);
    }
  });

  return { changed, releasedAddresses: [...released] };
}
