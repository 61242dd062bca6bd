// `vman template ...`: list, create, rm.
import type { Command } from 'commander';
import { ctxOf, describe } from './context.ts';
import { wholeNumber } from './numbers.ts';
import { removeCommand } from './resolve.ts';
import { formatTable, output } from './table.ts';

/** A template as the API gives it. */
export interface TemplateJson {
  id: string;
  name: string;
  cpus: number;
  memory_mb: number;
  kernel_path: string | null;
  initrd_path: string | null;
  cmdline: string | null;
  base_image_path: string | null;
  base_image_format: string | null;
  builtin: boolean;
  readiness: string;
  ready_pattern: string | null;
}

const templateTable = (ts: TemplateJson[]): string =>
  formatTable(['NAME', 'ID', 'CPUS', 'MEMORY', 'READINESS'], ts.map((t) => [t.name, t.id, t.cpus, `${t.memory_mb}M`, t.readiness]));

interface CreateOptions {
  cpus: number;
  memory: number;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  baseImage?: string;
  baseImageFormat?: string;
  readiness?: string;
  readyPattern?: string;
}

export function templateCommands(program: Command): void {
  const template = program.command('template').description('manage VM templates');

  template.command('list').description('list templates').action(async (_o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const ts = await client.get<TemplateJson[]>('/templates');
    output(json, ts, () => templateTable(ts));
  });

  template.command('create').description('create a template').argument('<name>', 'the new template\'s name')
    .requiredOption('--cpus <n>', 'virtual CPUs', wholeNumber)
    .requiredOption('--memory <MB>', 'memory in MB', wholeNumber)
    .option('--kernel <path>', 'kernel (inside vman\'s image directories)')
    .option('--initrd <path>', 'initrd')
    .option('--cmdline <text>', 'kernel command line')
    .option('--base-image <path>', 'base disk image')
    .option('--base-image-format <format>', 'format of the base image: qcow2 or raw')
    .option('--readiness <how>', 'how vman knows the guest is ready: agent, ssh, serial or none (vman checks)')
    .option('--ready-pattern <regex>', 'serial console line that means ready (readiness serial)')
    .action(async (name: string, o: CreateOptions, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const body: Record<string, unknown> = { name, cpus: o.cpus, memory_mb: o.memory };
      const optional: [string, string | undefined][] = [
        ['kernel_path', o.kernel], ['initrd_path', o.initrd], ['cmdline', o.cmdline], ['base_image_path', o.baseImage],
        ['base_image_format', o.baseImageFormat], ['readiness', o.readiness], ['ready_pattern', o.readyPattern],
      ];
      for (const [k, v] of optional) if (v !== undefined) body[k] = v;
      const t = await client.post<TemplateJson>('/templates', body);
      output(json, t, () => describe([
        ['name', t.name], ['id', t.id], ['cpus', t.cpus], ['memory', `${t.memory_mb}M`], ['kernel', t.kernel_path], ['initrd', t.initrd_path],
        ['cmdline', t.cmdline], ['base image', t.base_image_path], ['readiness', t.readiness], ['ready pattern', t.ready_pattern],
      ]));
    });

  removeCommand(template, 'templates', 'delete a template no VM uses', 'template');
}
