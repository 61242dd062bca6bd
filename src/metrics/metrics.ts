// vman's metrics, in Prometheus text format (GET /metrics), through prom-client.
// Each vman has its own registry (tests run several in one process). What can
// be counted as it happens (operations, recovery, observer checks) is counted
// then; what is a state of the world (VMs and disks by state, each QEMU's CPU,
// memory and disk I/O) is read when scraped: from the database, /proc and QMP.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DiskRecord, DiskState, VmRecord, VmState } from '../db/types.ts';
import { VmanError } from '../errors.ts';
import { TRANSITIONS } from '../model/vm-states.ts';
import type { ObserverReport } from '../observer/findings.ts';
import type { DiskIoStats } from '../operator/block-stats.ts';
import type { VmHandle } from '../operator/operator.ts';
import { readUsage, type ProcessUsage } from '../operator/proc.ts';
import type { Recovered } from '../services/recovery.ts';

export interface MetricsSources {
  vms(): VmRecord[];
  disks(): DiskRecord[];
  /** The live QEMU vman holds for a VM, if any. */
  handle(vmId: string): VmHandle | undefined;
  /** CPU and memory of a process; default: from /proc. A dry run's simulated processes have none. */
  usage?(pid: number): Promise<ProcessUsage | undefined>;
}

export type Resource = 'vm' | 'disk' | 'snapshot';

const VM_STATES = Object.keys(TRANSITIONS) as VmState[];
// Written as a record so that a disk state added to the type must be added here too.
const DISK_STATES = Object.keys({ available: true, attached: true } satisfies Record<DiskState, true>) as DiskState[];
/** Operations take from milliseconds (a refused one) to minutes (a Debian boot). */
const OPERATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OBSERVER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** A QEMU that does not answer query-blockstats in this long is left out of one scrape, not waited for. */
const BLOCKSTATS_TIMEOUT_MS = 2_000;

interface VmSample {
  vm: VmRecord;
  usage: ProcessUsage | undefined;
  disks: DiskIoStats[];
}

interface Sample {
  vms: VmSample[];
  disks: DiskRecord[];
}

export class VmanMetrics {
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  /** What the current scrape read; the collect callbacks below only format it. */
  #sample: Sample = { vms: [], disks: [] };
  #rendering: Promise<string> | undefined;
  readonly #operations: Histogram<'resource' | 'operation' | 'outcome'>;
  readonly #failures: Counter<'resource' | 'operation' | 'code'>;
  readonly #recovery: Counter<'operation' | 'result'>;
  readonly #observerChecks: Histogram<never>;
  readonly #observerFindings: Gauge<'kind'>;
  readonly #observerLast: Gauge<never>;
  readonly #collectErrors: Counter<'source'>;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    const registers = [this.registry];
    const sample = (): Sample => this.#sample;

    new Gauge({
      name: 'vman_vms', help: 'VMs by the state the database records', labelNames: ['state'], registers,
      collect() {
        this.reset();
        for (const state of VM_STATES) this.set({ state }, sample().vms.filter((s) => s.vm.state === state).length);
      },
    });
    new Gauge({
      name: 'vman_disks', help: 'Disks by the state the database records', labelNames: ['state'], registers,
      collect() {
        this.reset();
        for (const state of DISK_STATES) this.set({ state }, sample().disks.filter((d) => d.state === state).length);
      },
    });
    // Counters read from /proc and QEMU: reset and set to what the kernel or QEMU counted.
    new Counter({
      name: 'vman_vm_cpu_seconds_total', help: 'CPU time (user and system, all threads) of each running VM\'s QEMU process, from /proc', labelNames: ['vm', 'name'], registers,
      collect() {
        this.reset();
        for (const s of sample().vms) if (s.usage) this.inc({ vm: s.vm.id, name: s.vm.name }, s.usage.cpuSeconds);
      },
    });
    new Gauge({
      name: 'vman_vm_resident_memory_bytes', help: 'Resident memory (VmRSS) of each running VM\'s QEMU process, from /proc', labelNames: ['vm', 'name'], registers,
      collect() {
        this.reset();
        for (const s of sample().vms) if (s.usage) this.set({ vm: s.vm.id, name: s.vm.name }, s.usage.rssBytes);
      },
    });
    const diskCounter = (name: string, help: string, pick: (d: DiskIoStats) => number): void => {
      new Counter({
        name, help: `${help}, per disk of each running VM, as QEMU counted them (query-blockstats)`, labelNames: ['vm', 'disk'], registers,
        collect() {
          this.reset();
          for (const s of sample().vms) for (const d of s.disks) this.inc({ vm: s.vm.id, disk: d.diskId }, pick(d));
        },
      });
    };
    diskCounter('vman_disk_read_bytes_total', 'Bytes read', (d) => d.readBytes);
    diskCounter('vman_disk_written_bytes_total', 'Bytes written', (d) => d.writtenBytes);
    diskCounter('vman_disk_reads_total', 'Read operations', (d) => d.reads);
    diskCounter('vman_disk_writes_total', 'Write operations', (d) => d.writes);
    diskCounter('vman_disk_flushes_total', 'Flush operations', (d) => d.flushes);
    new Counter({
      name: 'vman_disk_errors_total', help: 'Failed operations by kind, per disk of each running VM (query-blockstats)', labelNames: ['vm', 'disk', 'op'], registers,
      collect() {
        this.reset();
        for (const s of sample().vms) {
          for (const d of s.disks) {
            this.inc({ vm: s.vm.id, disk: d.diskId, op: 'read' }, d.failedReads);
            this.inc({ vm: s.vm.id, disk: d.diskId, op: 'write' }, d.failedWrites);
            this.inc({ vm: s.vm.id, disk: d.diskId, op: 'flush' }, d.failedFlushes);
          }
        }
      },
    });

    this.#operations = new Histogram({
      name: 'vman_operation_duration_seconds', help: 'How long each operation took, by outcome: ok, refused (the request could not be done: a 4xx) or failed',
      labelNames: ['resource', 'operation', 'outcome'], buckets: OPERATION_BUCKETS, registers,
    });
    this.#failures = new Counter({
      name: 'vman_operation_failures_total', help: 'Operations that did not succeed, by the problem code they answered with',
      labelNames: ['resource', 'operation', 'code'], registers,
    });
    this.#recovery = new Counter({
      name: 'vman_recovery_actions_total', help: 'Operations a previous vman left unfinished, by what recovery at start-up did: settled (finished or undone) or left (recorded for a person)',
      labelNames: ['operation', 'result'], registers,
    });
    this.#observerChecks = new Histogram({
      name: 'vman_observer_check_duration_seconds', help: 'How long each observer check took', buckets: OBSERVER_BUCKETS, registers,
    });
    this.#observerFindings = new Gauge({
      name: 'vman_observer_findings', help: 'Disagreements the latest observer check found, by kind', labelNames: ['kind'], registers,
    });
    this.#observerLast = new Gauge({
      name: 'vman_observer_last_check_timestamp_seconds', help: 'When the latest observer check started (Unix time)', registers,
    });
    this.#collectErrors = new Counter({
      name: 'vman_metrics_collect_errors_total', help: 'Figures a scrape could not read (a QEMU that did not answer query-blockstats in time, ...), by source',
      labelNames: ['source'], registers,
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Reads the state of the world once, then formats every metric from that
   * reading. Scrapes that come while one is being made share it: each text is
   * one reading, never half of two.
   */
  render(): Promise<string> {
    this.#rendering ??= this.#render().finally(() => {
      this.#rendering = undefined;
    });
    return this.#rendering;
  }

  async #render(): Promise<string> {
    const vms = this.#sources.vms();
    const running = await Promise.all(vms.map(async (vm): Promise<VmSample> => {
      const handle = vm.state === 'running' ? this.#sources.handle(vm.id) : undefined;
      if (!handle) return { vm, usage: undefined, disks: [] };
      const [usage, disks] = await Promise.all([
        (this.#sources.usage ?? readUsage)(handle.pid),
        handle.blockStats({ timeoutMs: BLOCKSTATS_TIMEOUT_MS }).catch(() => {
          this.#collectErrors.inc({ source: 'query-blockstats' });
          return [];
        }),
      ]);
      return { vm, usage, disks };
    }));
    this.#sample = { vms: running, disks: this.#sources.disks() };
    return this.registry.metrics();
  }

  /** Times an operation and counts how it ended; the result or error passes through unchanged. */
  async time<T>(resource: Resource, operation: string, run: () => Promise<T>): Promise<T> {
    const end = this.#operations.startTimer({ resource, operation });
    try {
      const result = await run();
      end({ outcome: 'ok' });
      return result;
    } catch (err) {
      const refused = err instanceof VmanError && ['invalid', 'not-found', 'conflict', 'insufficient-storage'].includes(err.kind);
      end({ outcome: refused ? 'refused' : 'failed' });
      this.#failures.inc({ resource, operation, code: err instanceof VmanError ? err.code : 'internal' });
      throw err;
    }
  }

  /**
   * Replaces each named async method of a service with one that is timed as
   * `resource`/`operation`: every caller (API, recovery, the CLI through the
   * API) is counted alike, and the service itself stays unaware.
   */
  instrument<S extends object>(service: S, resource: Resource, operations: Partial<Record<keyof S & string, string>>): void {
    for (const [method, operation] of Object.entries(operations) as Array<[keyof S & string, string]>) {
      const original = service[method];
      if (typeof original !== 'function') throw new TypeError(`${resource} service has no method ${method}`);
      const bound = (original as (...args: unknown[]) => Promise<unknown>).bind(service);
      Object.defineProperty(service, method, {
        value: (...args: unknown[]) => this.time(resource, operation, () => bound(...args)),
        configurable: true, writable: true,
      });
    }
  }

  recovered(actions: readonly Recovered[]): void {
    for (const a of actions) this.#recovery.inc({ operation: a.intent.op, result: a.settled ? 'settled' : 'left' });
  }

  observed(report: ObserverReport): void {
    this.#observerChecks.observe(report.durationMs / 1000);
    this.#observerLast.set(Date.parse(report.checkedAt) / 1000);
    this.#observerFindings.reset();
    for (const f of report.findings) this.#observerFindings.inc({ kind: f.kind });
  }
}
