// The intent journal: before the first side effect of a multi-step operation
// vman records what it is about to do, and it clears the record after the last
// step (in the same transaction as the last database write, where there is
// one). A record left behind is an operation a dead vman did not finish:
// start-up recovery (recovery.ts) finishes or undoes it.
import { randomBytes } from 'node:crypto';
import type { VmanDb } from '../db/database.ts';
import type { Intent, IntentRecord } from '../db/types.ts';

export class IntentJournal {
  /** This vman instance: intents written under another owner were left by a vman that died. */
  readonly owner = `${process.pid}-${randomBytes(4).toString('hex')}`;

  constructor(private readonly db: VmanDb) {}

  /** Records the intent; inside a transaction it commits with that transaction's first change. */
  begin(intent: Intent): number {
    return this.db.intents.insert(intent, this.owner).id;
  }

  /** Idempotent, so the last transaction of an operation and its `finally` may both call it. */
  clear(id: number): void {
    this.db.intents.delete(id);
  }

  /**
   * Runs a whole operation under its intent. A failure that vman handled
   * (a refused step, a rollback) clears the intent too: only a vman that died
   * mid-way leaves one.
   */
  async run<T>(intent: Intent, fn: (id: number) => Promise<T>): Promise<T> {
    const id = this.begin(intent);
    try {
      return await fn(id);
    } finally {
      this.clear(id);
    }
  }

  /** Intents left by a vman that is no longer running. */
  unfinished(): IntentRecord[] {
    return this.db.intents.list().filter((r) => r.owner !== this.owner);
  }
}
