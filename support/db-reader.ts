// Reads vman's SQLite file through `sqlite3`, a driver that shares no code
// with vman's own (better-sqlite3): what the suite sees in the database is
// independent evidence, not vman's word.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'db-reader-process.mjs');

interface Reply {
  id: number;
  rows?: Row[];
  changes?: number;
  error?: string;
}

/** The one sqlite3 process of this run (see db-reader-process.mjs for why it is a process). */
class SqliteProcess {
  private child: ChildProcessWithoutNullStreams | undefined;
  private next = 1;
  private pending = new Map<number, (r: Reply) => void>();

  request(req: { path: string; sql: string; params: unknown[]; write: boolean }): Promise<Reply> {
    const child = this.start();
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      child.stdin.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }

  stop(): void {
    this.child?.kill();
    this.child = undefined;
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(process.execPath, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const reply = JSON.parse(line) as Reply;
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    child.on('exit', () => {
      for (const [id, resolve] of this.pending) resolve({ id, error: 'the sqlite3 process exited' });
      this.pending.clear();
      if (this.child === child) this.child = undefined;
    });
    this.child = child;
    return child;
  }
}

const sqlite = new SqliteProcess();
export const stopSqliteProcess = (): void => sqlite.stop();

async function query(req: { path: string; sql: string; params: unknown[]; write: boolean }): Promise<Reply> {
  const reply = await sqlite.request(req);
  if (reply.error) throw new Error(`sqlite3: ${reply.error} (${req.sql})`);
  return reply;
}

export type Row = Record<string, unknown>;

export class DbReader {
  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<DbReader> {
    const reader = new DbReader(path);
    await reader.all('SELECT 1');
    return reader;
  }

  async all(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await query({ path: this.path, sql, params, write: false })).rows ?? [];
  }

  async one(sql: string, params: unknown[] = []): Promise<Row | undefined> {
    return (await this.all(sql, params))[0];
  }

  /** Nothing is held between queries; kept so callers can say they are done. */
  async close(): Promise<void> {}

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

/**
 * Changes vman's database behind its back, as a broken disk, a bad restore or
 * a bug would: the observer exists to notice such disagreements.
 */
export async function tamperWithDatabase(path: string, sql: string, params: unknown[] = []): Promise<number> {
  return (await query({ path, sql, params, write: true })).changes ?? 0;
}
