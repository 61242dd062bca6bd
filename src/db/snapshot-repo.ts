import type Database from 'better-sqlite3';
import type { NewSnapshot, SnapshotDisk, SnapshotHardware, SnapshotRecord } from './types.ts';

interface SnapshotRow {
  id: string;
  vm_id: string;
  name: string;
  with_memory: 0 | 1;
  dir: string;
  hardware: string;
  disks: string;
  guest_address: string | null;
  pause_ms: number | null;
  state_bytes: number | null;
  created_at: string;
}

function toRecord(r: SnapshotRow): SnapshotRecord {
  return {
    id: r.id, vmId: r.vm_id, name: r.name, withMemory: r.with_memory === 1, dir: r.dir,
    hardware: JSON.parse(r.hardware) as SnapshotHardware, disks: JSON.parse(r.disks) as SnapshotDisk[],
    guestAddress: r.guest_address, pauseMs: r.pause_ms, stateBytes: r.state_bytes, createdAt: r.created_at,
  };
}

export class SnapshotRepo {
  private readonly insertStmt: Database.Statement<[SnapshotRow], SnapshotRow>;
  private readonly getStmt: Database.Statement<[string], SnapshotRow>;
  private readonly byNameStmt: Database.Statement<[string, string], SnapshotRow>;
  private readonly byVmStmt: Database.Statement<[string], SnapshotRow>;
  private readonly listStmt: Database.Statement<[], SnapshotRow>;
  private readonly deleteStmt: Database.Statement<[string]>;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare<[SnapshotRow], SnapshotRow>(
      `INSERT INTO snapshots (id, vm_id, name, with_memory, dir, hardware, disks, guest_address, pause_ms, state_bytes, created_at)
       VALUES (@id, @vm_id, @name, @with_memory, @dir, @hardware, @disks, @guest_address, @pause_ms, @state_bytes, @created_at) RETURNING *`,
    );
    this.getStmt = db.prepare<[string], SnapshotRow>('SELECT * FROM snapshots WHERE id = ?');
    this.byNameStmt = db.prepare<[string, string], SnapshotRow>('SELECT * FROM snapshots WHERE vm_id = ? AND name = ?');
    this.byVmStmt = db.prepare<[string], SnapshotRow>('SELECT * FROM snapshots WHERE vm_id = ? ORDER BY created_at, id');
    this.listStmt = db.prepare<[], SnapshotRow>('SELECT * FROM snapshots ORDER BY created_at, id');
    this.deleteStmt = db.prepare<[string]>('DELETE FROM snapshots WHERE id = ?');
  }

  insert(s: NewSnapshot): SnapshotRecord {
    const row = this.insertStmt.get({
      id: s.id, vm_id: s.vmId, name: s.name, with_memory: s.withMemory ? 1 : 0, dir: s.dir,
      hardware: JSON.stringify(s.hardware), disks: JSON.stringify(s.disks), guest_address: s.guestAddress,
      pause_ms: s.pauseMs, state_bytes: s.stateBytes, created_at: new Date().toISOString(),
    });
    if (!row) throw new Error(`insert of snapshot ${s.id} returned no row`);
    return toRecord(row);
  }

  get(id: string): SnapshotRecord | undefined {
    const row = this.getStmt.get(id);
    return row && toRecord(row);
  }

  getByName(vmId: string, name: string): SnapshotRecord | undefined {
    const row = this.byNameStmt.get(vmId, name);
    return row && toRecord(row);
  }

  listByVm(vmId: string): SnapshotRecord[] {
    return this.byVmStmt.all(vmId).map(toRecord);
  }

  list(): SnapshotRecord[] {
    return this.listStmt.all().map(toRecord);
  }

  /** Throws 'FOREIGN KEY constraint failed' while a clone's disks stand on it. */
  delete(id: string): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }
}
