import Database from 'better-sqlite3';
import { AddressRepo } from './address-repo.ts';
import { DiskRepo } from './disk-repo.ts';
import { applyMigrations } from './migrations.ts';
import { TemplateRepo } from './template-repo.ts';
import { VmRepo } from './vm-repo.ts';

export interface VmanDb {
  db: Database.Database;
  templates: TemplateRepo;
  vms: VmRepo;
  disks: DiskRepo;
  addresses: AddressRepo;
  /** Runs fn in a BEGIN IMMEDIATE transaction (a savepoint when nested); rolls back if it throws. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

function isThenable(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Opens (creating if needed) the database file at `path` and brings its schema up to date. */
export function openDatabase(path: string): VmanDb {
  const db = new Database(path);
  try {
    // busy_timeout first, so the WAL switch and migrations wait out other processes.
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    // WAL makes NORMAL durable against application crashes; only a power loss can drop the last commits.
    db.pragma('synchronous = NORMAL');
    // Per-connection and off by default; must be set outside any transaction.
    db.pragma('foreign_keys = ON');
    applyMigrations(db);
  } catch (err) {
    db.close();
    throw err;
  }

  const templates = new TemplateRepo(db);
  const vms = new VmRepo(db);
  const disks = new DiskRepo(db);
  const addresses = new AddressRepo(db);

  return {
    db,
    templates,
    vms,
    disks,
    addresses,
    transaction<T>(fn: () => T): T {
      return db
        .transaction((): T => {
          const result = fn();
          // better-sqlite3 commits when fn returns, so awaited work would escape the transaction.
          if (isThenable(result)) throw new TypeError('transaction functions must be synchronous');
          return result;
        })
        .immediate();
    },
    close(): void {
      if (db.open) db.close();
    },
  };
}
