// `vman observer ...`: check (now), report (the latest periodic one), repair.
import type { Command } from 'commander';
import { ctxOf } from './context.ts';
import { formatTable, output } from './table.ts';

interface FindingJson {
  kind: string;
  resource_type: string;
  resource_id: string;
  recorded: string;
  observed: string;
}

interface ReportJson {
  checked_at: string;
  findings: FindingJson[];
  counts: { vms: number; disks: number; processes: number; disk_files: number };
}

interface RepairJson {
  report: ReportJson;
  changed: { vm_id: string; from: string; to: string; reason: string }[];
  released_addresses: string[];
  failed: { resource_id: string; reason: string }[];
}

function reportText(r: ReportJson): string {
  const head = `checked ${r.checked_at}: ${r.counts.vms} VMs, ${r.counts.disks} disks, ${r.counts.processes} QEMU processes, ${r.counts.disk_files} disk files; `
    + `${r.findings.length === 0 ? 'records and host agree' : `${r.findings.length} finding(s)`}\n`;
  if (r.findings.length === 0) return head;
  return head + formatTable(['KIND', 'RESOURCE', 'ID', 'RECORDED', 'OBSERVED'], r.findings.map((f) => [f.kind, f.resource_type, f.resource_id, f.recorded, f.observed]));
}

export function observerCommands(program: Command): void {
  const observer = program.command('observer').description('compare vman\'s records with the host');

  observer.command('check').description('check now').action(async (_o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const r = await client.post<ReportJson>('/observer/check');
    output(json, r, () => reportText(r));
  });

  observer.command('report').description('the latest periodic report').action(async (_o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const r = await client.get<ReportJson>('/observer/report');
    output(json, r, () => reportText(r));
  });

  observer.command('repair').description('check, then repair what disagrees').action(async (_o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const r = await client.post<RepairJson>('/observer/reconcile');
    output(json, r, () => [
      reportText(r.report),
      ...r.changed.map((c) => `VM ${c.vm_id}: ${c.from} -> ${c.to} (${c.reason})\n`),
      ...r.released_addresses.map((a) => `released address ${a}\n`),
      ...r.failed.map((f) => `could not repair ${f.resource_id}: ${f.reason}\n`),
    ].join(''));
  });
}
