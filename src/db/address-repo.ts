import type Database from 'better-sqlite3';
import type { AddressRecord } from './types.ts';

interface AddressRow {
  address: string;
  vm_id: string;
  allocated_at: string;
}

function toRecord(r: AddressRow): AddressRecord {
  return { address: r.address, vmId: r.vm_id, allocatedAt: r.allocated_at };
}

/** 32-bit value of a dotted-quad IPv4 address; NaN for anything else (sorted last). */
function ipv4Value(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4) return Number.NaN;
  let value = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return Number.NaN;
    const octet = Number(p);
    if (octet > 255) return Number.NaN;
    // Multiply rather than shift: `<<` would overflow into negative int32 for >= 128.x.x.x.
    value = value * 256 + octet;
  }
  return value;
}

function compareAddresses(a: AddressRecord, b: AddressRecord): number {
  const va = ipv4Value(a.address);
  const vb = ipv4Value(b.address);
  const aBad = Number.isNaN(va);
  const bBad = Number.isNaN(vb);
  if (aBad || bBad) {
    if (aBad && bBad) return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
    return aBad ? 1 : -1;
  }
  return va - vb;
}

export class AddressRepo {
  private readonly allocateStmt: Database.Statement<[string, string, string], AddressRow>;
  private readonly releaseStmt: Database.Statement<[string]>;
  private readonly getByVmStmt: Database.Statement<[string], AddressRow>;
  private readonly listStmt: Database.Statement<[], AddressRow>;
  private readonly isAllocatedStmt: Database.Statement<[string], number>;

  constructor(db: Database.Database) {
    this.allocateStmt = db.prepare<[string, string, string], AddressRow>(
      'INSERT INTO address_allocations (address, vm_id, allocated_at) VALUES (?, ?, ?) RETURNING *',
    );
    this.releaseStmt = db.prepare<[string]>('DELETE FROM address_allocations WHERE vm_id = ?');
    this.getByVmStmt = db.prepare<[string], AddressRow>('SELECT * FROM address_allocations WHERE vm_id = ?');
    this.listStmt = db.prepare<[], AddressRow>('SELECT * FROM address_allocations');
    this.isAllocatedStmt = db
      .prepare<[string], number>('SELECT 1 FROM address_allocations WHERE address = ?')
      .pluck();
  }

  /**
   * Throws the SQLite constraint error (SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE) if the
   * address or the VM already has an allocation; callers pick another address on that.
   */
  allocate(address: string, vmId: string): AddressRecord {
    const row = this.allocateStmt.get(address, vmId, new Date().toISOString());
    if (row === undefined) throw new Error(`allocation of ${address} returned no row`);
    return toRecord(row);
  }

  release(vmId: string): boolean {
    return this.releaseStmt.run(vmId).changes > 0;
  }

  getByVm(vmId: string): AddressRecord | undefined {
    const row = this.getByVmStmt.get(vmId);
    return row && toRecord(row);
  }

  /** Sorted numerically in JS: TEXT ordering would put 10.0.0.10 before 10.0.0.2. */
  list(): AddressRecord[] {
    return this.listStmt.all().map(toRecord).sort(compareAddresses);
  }

  isAllocated(address: string): boolean {
    return this.isAllocatedStmt.get(address) !== undefined;
  }
}
