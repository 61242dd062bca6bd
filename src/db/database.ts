import Database from 'better-sqlite3';
import { AddressRepo } from './address-repo.ts';
import { DiskRepo } from './disk-repo.ts';
import { IntentRepo } from './intent-repo.ts';
import { SnapshotRepo } from './snapshot-repo.ts';
import { applyMigrations } from './migrations.ts';
import { TemplateRepo } from './template-repo.ts';
import { VmRepo } from './vm-repo.ts';
import type { AddressRecord, DiskRecord, IntentRecord, SnapshotRecord, VmRecord } from './types.ts';

/** Every row the observer compares with the host, read at one moment. */
export interface Rows {
  vms: VmRecord[];
  disks: DiskRecord[];
  addresses: AddressRecord[];
  intents: IntentRecord[];
  snapshots: SnapshotRecord[];
}

export interface VmanDb {
  db: Database.Database;
  templates: TemplateRepo;
  vms: VmRepo;
  disks: DiskRepo;
  addresses: AddressRepo;
  intents: IntentRepo;
  snapshots: SnapshotRepo;
  /** Every row the observer needs, in one read transaction (one consistent view in WAL mode). */
  readRows(): Rows;
  /** A value that changes whenever any row is written, by this connection or another. */
  changeToken(): string;
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
  const intents = new IntentRepo(db);
  const snapshots = new SnapshotRepo(db);
  // Deferred (read) transaction: one consistent view without taking the write lock.
  const readRows = db.transaction((): Rows => ({
    vms: vms.list(), disks: disks.list(), addresses: addresses.list(), intents: intents.list(), snapshots: snapshots.list(),
  }));
  // data_version moves on another connection's commit, total_changes() on this one's writes.
  const totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();

  return {
    db,
    templates,
    vms,
    disks,
    addresses,
    intents,
    snapshots,
    readRows: () => readRows(),
    changeToken: () => `${String(db.pragma('data_version', { simple: true }))}:${totalChanges.get() ?? 0}`,
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
