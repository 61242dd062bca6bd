// `vman vm top`: the figures GET /metrics gives for each running VM, for
// people: CPU (a share of one core over the interval, and seconds in all),
// resident memory, and disk I/O summed over the VM's disks. Read from the same
// /metrics a Prometheus scrapes, so the two never disagree.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseExposition, type MetricSample } from '../metrics/exposition.ts';
import { ctxOf } from './context.ts';
import { formatBytes, formatTable, output } from './table.ts';

export interface VmTop {
  id: string;
  name: string;
  /** CPU used over the interval, in % of one core; null with no interval. */
  cpu_percent: number | null;
  cpu_seconds: number;
  memory_bytes: number;
  read_bytes: number;
  written_bytes: number;
  reads: number;
  writes: number;
  disk_errors: number;
}

/** One row per VM with a CPU figure (a running VM vman holds), by name. */
export function topRows(now: MetricSample[], before: MetricSample[] | undefined, seconds: number): VmTop[] {
  const byVm = (samples: MetricSample[], name: string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const s of samples) if (s.name === name && s.labels.vm) m.set(s.labels.vm, (m.get(s.labels.vm) ?? 0) + s.value);
    return m;
  };
  const names = new Map(now.filter((s) => s.name === 'vman_vm_cpu_seconds_total').map((s) => [s.labels.vm!, s.labels.name ?? s.labels.vm!]));
  const cpu = byVm(now, 'vman_vm_cpu_seconds_total');
  const cpuBefore = before ? byVm(before, 'vman_vm_cpu_seconds_total') : undefined;
  const mem = byVm(now, 'vman_vm_resident_memory_bytes');
  const figures = ['vman_disk_read_bytes_total', 'vman_disk_written_bytes_total', 'vman_disk_reads_total', 'vman_disk_writes_total', 'vman_disk_errors_total']
    .map((n) => byVm(now, n));
  return [...names].map(([id, name]): VmTop => {
    // A VM that started or restarted between the readings has a new QEMU, whose count began again: no share.
    const was = cpuBefore?.get(id);
    const used = was === undefined || seconds <= 0 ? undefined : (cpu.get(id) ?? 0) - was;
    const [read, written, reads, writes, errors] = figures.map((f) => f.get(id) ?? 0) as [number, number, number, number, number];
    return {
      id, name,
      cpu_percent: used === undefined || used < 0 ? null : Math.round((used / seconds) * 1000) / 10,
      cpu_seconds: cpu.get(id) ?? 0, memory_bytes: mem.get(id) ?? 0,
      read_bytes: read, written_bytes: written, reads, writes, disk_errors: errors,
    };
  }).sort((a, b) => a.name.localeCompare(b.name));
}

export const topTable = (rows: VmTop[]): string => (rows.length === 0 ? 'no running VMs\n' : formatTable(
  ['NAME', 'ID', 'CPU%', 'CPU-S', 'MEMORY', 'READ', 'WRITTEN', 'READS', 'WRITES', 'ERRORS'],
  rows.map((r) => [r.name, r.id, r.cpu_percent === null ? '-' : r.cpu_percent.toFixed(1), r.cpu_seconds.toFixed(2), formatBytes(r.memory_bytes),
    formatBytes(r.read_bytes), formatBytes(r.written_bytes), r.reads, r.writes, r.disk_errors]),
));

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n > 3600) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a number of seconds from 0 to 3600`);
  return n;
}

export function topCommand(vm: Command): void {
  vm.command('top').description('CPU, memory and disk I/O of each running VM (from GET /metrics)')
    .option('-i, --interval <seconds>', 'measure CPU over this long (0: totals only, one reading)', seconds, 1)
    .action(async (o: { interval: number }, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const before = o.interval > 0 ? parseExposition(await client.metrics()) : undefined;
      const started = Date.now();
      if (before) await sleep(o.interval * 1000);
      const now = parseExposition(await client.metrics());
      const rows = topRows(now, before, (Date.now() - started) / 1000);
      output(json, rows, () => topTable(rows));
    });
}
