// One vman per storage folder. Two would adopt each other's VMs, mark them
// failed and hand out their addresses twice. The lock is an exclusive SQLite
// lock (a POSIX file lock, held by the kernel for the life of the process: a
// vman killed with SIGKILL holds it no more) on <storage>/vman.lock; beside it,
// vman.owner says who holds it, so a refusal can name the running vman.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export interface StorageOwner {
  pid: number;
  startedAt: string;
  /** Where it serves, once it does. */
  url?: string;
}

export class StorageInUseError extends Error {
  constructor(readonly storagePath: string, readonly owner: StorageOwner | undefined) {
    const who = owner
      ? `vman pid ${owner.pid}${owner.url ? `, serving ${owner.url}` : ''}, running since ${owner.startedAt}`
      : 'another vman (it has not said who it is yet)';
    super(`storage ${storagePath} is in use by ${who}: stop it first, or give this vman another storage folder (VMAN_STORAGE_PATH)`);
    this.name = 'StorageInUseError';
  }
}

export class StorageLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly ownerFile: string,
    private owner: StorageOwner,
  ) {}

  /** Takes the storage folder or throws StorageInUseError naming its holder; touches nothing else. */
  static acquire(storagePath: string): StorageLock {
    const ownerFile = path.join(storagePath, 'vman.owner');
    // timeout 0: a held lock is an answer, not something to wait for.
    const db = new Database(path.join(storagePath, 'vman.lock'), { timeout: 0 });
    try {
      // Nothing in it is worth a journal on disk: no vman.lock-journal lies about. (Set first: SQLite
      // keeps the old mode when asked once the lock is taken.)
      db.pragma('journal_mode = MEMORY');
      db.pragma('locking_mode = EXCLUSIVE');
      // The first write takes the exclusive lock; in EXCLUSIVE locking mode it is kept until close.
      db.exec('CREATE TABLE IF NOT EXISTS lock (id INTEGER PRIMARY KEY); INSERT OR REPLACE INTO lock (id) VALUES (1);');
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY') || (err as { code?: string }).code === 'SQLITE_LOCKED') {
        throw new StorageInUseError(storagePath, readOwner(ownerFile));
      }
      throw err;
    }
    const lock = new StorageLock(db, ownerFile, { pid: process.pid, startedAt: new Date().toISOString() });
    lock.write();
    return lock;
  }

  /** Records where this vman serves, for a refused second vman to name. */
  serving(url: string): void {
    this.owner = { ...this.owner, url };
    this.write();
  }

  release(): void {
    if (this.db.open) this.db.close();
  }

  private write(): void {
    writeFileSync(this.ownerFile, `${JSON.stringify(this.owner)}\n`, { mode: 0o600 });
  }
}

function readOwner(file: string): StorageOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as Partial<StorageOwner>;
    return typeof o.pid === 'number' && typeof o.startedAt === 'string' ? (o as StorageOwner) : undefined;
  } catch {
    return undefined;
  }
}
