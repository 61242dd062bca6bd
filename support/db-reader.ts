// Reads vman's SQLite file through `sqlite3`, a driver that shares no code
// with vman's own (better-sqlite3): what the suite sees in the database is
// independent evidence, not vman's word.
import sqlite3 from 'sqlite3';

export type Row = Record<string, unknown>;

export class DbReader {
  private constructor(private readonly db: sqlite3.Database) {}

  static open(path: string): Promise<DbReader> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(path, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : resolve(new DbReader(db))));
    });
  }

  all(sql: string, params: unknown[] = []): Promise<Row[]> {
    return new Promise((resolve, reject) => this.db.all(sql, params, (err, rows: Row[]) => (err ? reject(err) : resolve(rows))));
  }

  async one(sql: string, params: unknown[] = []): Promise<Row | undefined> {
    return (await this.all(sql, params))[0];
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.db.close(() => resolve()));
  }

  // The questions steps ask, in one place.
  vmByName(name: string): Promise<Row | undefined> {
    return this.one('SELECT * FROM vms WHERE name = ?', [name]);
  }

  addressOf(vmId: string): Promise<string | undefined> {
    return this.one('SELECT address FROM address_allocations WHERE vm_id = ?', [vmId]).then((r) => r?.address as string | undefined);
  }

  /** Every table's rows, to compare before and after a refused request. */
  async dump(): Promise<Record<string, Row[]>> {
    const out: Record<string, Row[]> = {};
    for (const t of ['templates', 'vms', 'disks', 'address_allocations']) out[t] = await this.all(`SELECT * FROM ${t} ORDER BY 1`);
    return out;
  }
}
