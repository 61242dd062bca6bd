import type Database from 'better-sqlite3';
import type { DiskRecord, DiskState, NewDisk } from './types.ts';

interface DiskRow {
  id: string;
  name: string;
  size_gb: number;
  format: 'qcow2';
  path: string;
  state: DiskState;
  vm_id: string | null;
  mount_point: string | null;
  created_at: string;
  updated_at: string;
}

function toRecord(r: DiskRow): DiskRecord {
  return {
    id: r.id,
    name: r.name,
    sizeGb: r.size_gb,
    format: r.format,
    path: r.path,
    state: r.state,
    vmId: r.vm_id,
    mountPoint: r.mount_point,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class DiskRepo {
  private readonly insertStmt: Database.Statement<[DiskRow], DiskRow>;
  private readonly getStmt: Database.Statement<[string], DiskRow>;
  private readonly getByNameStmt: Database.Statement<[string], DiskRow>;
  private readonly listStmt: Database.Statement<[], DiskRow>;
  private readonly listByVmStmt: Database.Statement<[string], DiskRow>;
  private readonly attachStmt: Database.Statement<[string, string | null, string, string], DiskRow>;
  private readonly setMountPointStmt: Database.Statement<[string | null, string, string], DiskRow>;
  private readonly detachStmt: Database.Statement<[string, string], DiskRow>;
  private readonly deleteStmt: Database.Statement<[string]>;
  private readonly countStmt: Database.Statement<[], number>;
  private readonly clearMountPointsStmt: Database.Statement<[string, string]>;
  private readonly detachAllStmt: Database.Statement<[string, string]>;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare<DiskRow, DiskRow>(
      `INSERT INTO disks (id, name, size_gb, format, path, state, vm_id, mount_point, created_at, updated_at)
       VALUES (@id, @name, @size_gb, @format, @path, @state, @vm_id, @mount_point, @created_at, @updated_at)
       RETURNING *`,
    );
    this.getStmt = db.prepare<[string], DiskRow>('SELECT * FROM disks WHERE id = ?');
    this.getByNameStmt = db.prepare<[string], DiskRow>('SELECT * FROM disks WHERE name = ?');
    this.listStmt = db.prepare<[], DiskRow>('SELECT * FROM disks ORDER BY created_at, id');
    this.listByVmStmt = db.prepare<[string], DiskRow>('SELECT * FROM disks WHERE vm_id = ? ORDER BY created_at, id');
    // Only an available disk may be attached, so a racing second attach cannot steal it.
    this.attachStmt = db.prepare<[string, string | null, string, string], DiskRow>(
      `UPDATE disks SET state = 'attached', vm_id = ?, mount_point = ?, updated_at = ?
       WHERE id = ? AND state = 'available' RETURNING *`,
    );
    this.setMountPointStmt = db.prepare<[string | null, string, string], DiskRow>(
      'UPDATE disks SET mount_point = ?, updated_at = ? WHERE id = ? RETURNING *',
    );
    this.detachStmt = db.prepare<[string, string], DiskRow>(
      `UPDATE disks SET state = 'available', vm_id = NULL, mount_point = NULL, updated_at = ?
       WHERE id = ? RETURNING *`,
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM disks WHERE id = ?');
    this.countStmt = db.prepare<[], number>('SELECT COUNT(*) FROM disks').pluck();
    this.clearMountPointsStmt = db.prepare<[string, string]>(
      'UPDATE disks SET mount_point = NULL, updated_at = ? WHERE vm_id = ? AND mount_point IS NOT NULL',
    );
    this.detachAllStmt = db.prepare<[string, string]>(
      `UPDATE disks SET state = 'available', vm_id = NULL, mount_point = NULL, updated_at = ? WHERE vm_id = ?`,
    );
  }

  /** A VM that no longer runs: its disks stay attached, but no guest device names them. */
  clearMountPoints(vmId: string): number {
    return this.clearMountPointsStmt.run(new Date().toISOString(), vmId).changes;
  }

  /** A VM that is going away: its disks outlive it and become available. */
  detachAll(vmId: string): number {
    return this.detachAllStmt.run(new Date().toISOString(), vmId).changes;
  }

  insert(d: NewDisk): DiskRecord {
    const now = new Date().toISOString();
    const row = this.insertStmt.get({
      id: d.id,
      name: d.name,
      size_gb: d.sizeGb,
      format: d.format,
      path: d.path,
      state: d.state,
      vm_id: d.vmId,
      mount_point: d.mountPoint,
      created_at: now,
      updated_at: now,
    });
    if (row === undefined) throw new Error(`insert of disk ${d.id} returned no row`);
    return toRecord(row);
  }

  get(id: string): DiskRecord | undefined {
    const row = this.getStmt.get(id);
    return row && toRecord(row);
  }

  getByName(name: string): DiskRecord | undefined {
    const row = this.getByNameStmt.get(name);
    return row && toRecord(row);
  }

  list(): DiskRecord[] {
    return this.listStmt.all().map(toRecord);
  }

  listByVm(vmId: string): DiskRecord[] {
    return this.listByVmStmt.all(vmId).map(toRecord);
  }

  /**
   * Throws if the disk is missing or already attached (detach it first), and
   * SQLITE_CONSTRAINT_FOREIGNKEY if the VM does not exist.
   */
  attach(id: string, vmId: string, mountPoint: string | null): DiskRecord {
    const row = this.attachStmt.get(vmId, mountPoint, new Date().toISOString(), id);
    if (row !== undefined) return toRecord(row);
    const current = this.getStmt.get(id);
    if (current === undefined) throw new Error(`disk ${id} not found`);
    throw new Error(`disk ${id} is already attached to vm ${current.vm_id ?? '?'}`);
  }

  /** Throws if the disk is missing. */
  setMountPoint(id: string, mountPoint: string | null): DiskRecord {
    const row = this.setMountPointStmt.get(mountPoint, new Date().toISOString(), id);
    if (row === undefined) throw new Error(`disk ${id} not found`);
    return toRecord(row);
  }

  /** Idempotent for an already-available disk; throws if the disk is missing. */
  detach(id: string): DiskRecord {
    const row = this.detachStmt.get(new Date().toISOString(), id);
    if (row === undefined) throw new Error(`disk ${id} not found`);
    return toRecord(row);
  }

  delete(id: string): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }

  count(): number {
    return this.countStmt.get() ?? 0;
  }
}
