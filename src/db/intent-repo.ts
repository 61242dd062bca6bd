import type Database from 'better-sqlite3';
import type { Intent, IntentRecord } from './types.ts';

interface IntentRow {
  id: number;
  op: string;
  vm_id: string | null;
  disk_id: string | null;
  detail: string;
  owner: string;
  started_at: string;
}

function toRecord(r: IntentRow): IntentRecord {
  return { id: r.id, intent: JSON.parse(r.detail) as Intent, owner: r.owner, startedAt: r.started_at };
}

export class IntentRepo {
  private readonly insertStmt: Database.Statement<[string, string | null, string | null, string, string, string], IntentRow>;
  private readonly deleteStmt: Database.Statement<[number]>;
  private readonly listStmt: Database.Statement<[], IntentRow>;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare<[string, string | null, string | null, string, string, string], IntentRow>(
      'INSERT INTO intents (op, vm_id, disk_id, detail, owner, started_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
    );
    this.deleteStmt = db.prepare<[number]>('DELETE FROM intents WHERE id = ?');
    this.listStmt = db.prepare<[], IntentRow>('SELECT * FROM intents ORDER BY id');
  }

  insert(intent: Intent, owner: string): IntentRecord {
    const vmId = 'vmId' in intent ? intent.vmId : null;
    const diskId = 'diskId' in intent ? intent.diskId : null;
    const row = this.insertStmt.get(intent.op, vmId, diskId, JSON.stringify(intent), owner, new Date().toISOString());
    if (row === undefined) throw new Error(`insert of a ${intent.op} intent returned no row`);
    return toRecord(row);
  }

  /** Idempotent: false when it was already gone. */
  delete(id: number): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }

  list(): IntentRecord[] {
    return this.listStmt.all().map(toRecord);
  }
}
