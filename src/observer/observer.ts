// Runs the checks on demand and, optionally, every `intervalSeconds`. It only
// reports: repairs are reconcile()'s job, and only when someone asks.
import { runChecks } from './checks.ts';
import type { Finding, ObserverReport } from './findings.ts';
import { takeSnapshot } from './snapshot.ts';
import type { SnapshotSources } from './snapshot.ts';

export interface ObserverOptions {
  sources: SnapshotSources;
  storagePath: string;
  /** Seconds between the end of one check and the start of the next (fractions allowed); 0 or undefined: no loop. */
  intervalSeconds?: number;
  log?: (msg: string, findings: Finding[]) => void;
  /** Findings the previous check did not report (a disagreement that persists is told once). */
  onNewFindings?: (findings: Finding[]) => void;
  /** Every check's report, new findings or not (metrics). */
  onReport?: (report: ObserverReport) => void;
}

export class ObserverStoppedError extends Error {
  constructor() {
    super('observer is stopped');
    this.name = 'ObserverStoppedError';
  }
}

export class Observer {
  readonly #sources: SnapshotSources;
  readonly #storagePath: string;
  readonly #intervalMs: number;
  readonly #log: (msg: string, findings: Finding[]) => void;
  readonly #onNewFindings: (findings: Finding[]) => void;
  readonly #onReport: (report: ObserverReport) => void;
  #inFlight: Promise<ObserverReport> | undefined;
  #latest: ObserverReport | undefined;
  #timer: NodeJS.Timeout | undefined;
  #looping = false;
  #stopped = false;
  /** Bumped by start(): a loop from before a stop()/start() pair cannot reschedule itself. */
  #generation = 0;

  constructor(opts: ObserverOptions) {
    const seconds = opts.intervalSeconds ?? 0;
    if (!Number.isFinite(seconds) || seconds < 0) throw new RangeError(`invalid observer interval ${seconds}`);
    this.#sources = opts.sources;
    this.#storagePath = opts.storagePath;
    this.#intervalMs = seconds * 1000;
    this.#log = opts.log ?? (() => undefined);
    this.#onNewFindings = opts.onNewFindings ?? (() => undefined);
    this.#onReport = opts.onReport ?? (() => undefined);
  }

  get latest(): ObserverReport | undefined {
    return this.#latest;
  }

  /** Runs a check now; calls made while one is running share it. Rejects after stop(). */
  check(): Promise<ObserverReport> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#stopped) return Promise.reject(new ObserverStoppedError());
    const run = this.#run().finally(() => {
      if (this.#inFlight === run) this.#inFlight = undefined;
    });
    this.#inFlight = run;
    return run;
  }

  /** Starts the periodic loop (first check at once); a no-op without an interval or when running. */
  start(): void {
    if (this.#intervalMs <= 0 || this.#looping) return;
    this.#stopped = false;
    this.#looping = true;
    // Just checked (e.g. at start-up)? Then the next check is one interval away.
    this.#schedule(this.#latest ? this.#intervalMs : 0, ++this.#generation);
  }

  /** Clears the timer and waits for a check in flight; no check starts afterwards. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#looping = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inFlight?.catch(() => undefined);
  }

  // setTimeout after each check rather than setInterval: a slow check never overlaps the next.
  #schedule(delayMs: number, generation: number): void {
    if (this.#stopped || !this.#looping || generation !== this.#generation) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick(generation);
    }, delayMs);
    this.#timer.unref(); // The observer must never be what keeps the process alive.
  }

  #tick(generation: number): void {
    if (this.#stopped || generation !== this.#generation) return;
    this.check()
      .catch((err: unknown) => {
        // One failed check (a locked database, an unreadable folder) must not end the loop.
        this.#log(`observer check failed: ${err instanceof Error ? err.message : String(err)}`, []);
      })
      .finally(() => this.#schedule(this.#intervalMs, generation));
  }

  async #run(): Promise<ObserverReport> {
    const started = Date.now();
    const checkedAt = new Date(started).toISOString();
    const snapshot = await takeSnapshot(this.#storagePath, this.#sources);
    const findings = runChecks(snapshot);
    const report: ObserverReport = {
      checkedAt,
      durationMs: Date.now() - started,
      findings,
      counts: {
        vms: snapshot.vms.length,
        disks: snapshot.disks.length,
        processes: snapshot.processes.length,
        diskFiles: snapshot.diskFiles.length,
      },
    };
    const before = new Set(this.#latest?.findings.map(findingKey));
    this.#latest = report;
    this.#onReport(report);
    const fresh = findings.filter((f) => !before.has(findingKey(f)));
    if (fresh.length > 0) this.#onNewFindings(fresh);
    if (findings.length > 0) {
      const kinds = [...new Set(findings.map((f) => f.kind))].join(', ');
      this.#log(`observer: ${findings.length} finding(s): ${kinds}`, findings);
    }
    return report;
  }
}

/** What makes two checks' findings the same disagreement. */
function findingKey(f: Finding): string {
  return `${f.kind}\u0000${f.resourceType}\u0000${f.resourceId}\u0000${f.vmId ?? ''}`;
}
