// `vman vm snapshot ...`: create, list, rm, restore (`vman vm create --from
// VM@SNAPSHOT` makes a clone of one: vm-commands.ts).
import type { Command } from 'commander';
import { ApiError } from './client.ts';
import { ctxOf, describe } from './context.ts';
import { resolveRef } from './resolve.ts';
import { formatBytes, formatTable, output } from './table.ts';
import { vmTable, type VmJson } from './vm-commands.ts';

/** A snapshot as the API gives it (the fields the command reads). */
export interface SnapshotJson {
  id: string;
  name: string;
  vm_id: string;
  vm_name: string;
  with_memory: boolean;
  disks: { role: string; disk_id: string }[];
  guest_address: string | null;
  pause_ms: number | null;
  state_bytes: number | null;
  memory_mb: number;
  clones: string[];
  created_at: string;
}

const memory = (s: SnapshotJson): string => (s.with_memory ? 'yes' : 'no');
const pause = (s: SnapshotJson): string | null => (s.pause_ms === null ? null : `${s.pause_ms} ms`);

const snapshotTable = (ss: SnapshotJson[]): string =>
  formatTable(['NAME', 'MEMORY', 'PAUSE', 'STATE SIZE', 'CLONES', 'CREATED'],
    ss.map((s) => [s.name, memory(s), pause(s), formatBytes(s.state_bytes), s.clones.join(','), s.created_at]));

const snapshotDetails = (s: SnapshotJson): string =>
  describe([
    ['name', s.name], ['id', s.id], ['vm', s.vm_name], ['memory', s.with_memory ? `yes (${s.memory_mb}M)` : 'no (disks only)'],
    ['pause', pause(s)], ['state size', formatBytes(s.state_bytes)], ['disks', s.disks.map((d) => `${d.disk_id} (${d.role})`)],
    ['guest address', s.guest_address], ['clones', s.clones], ['created', s.created_at],
  ]);

const snapshotPath = (vm: VmJson, name?: string): string =>
  `/vms/${vm.id}/snapshots${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;

/** Adds `snapshot` under `vman vm`. */
export function snapshotCommands(vm: Command): void {
  const snapshot = vm.command('snapshot').description('snapshots of a VM: with its memory while it runs, of its disks otherwise; restore one, or clone it (vm create --from)');

  snapshot.command('create').description('take a snapshot (a running VM pauses while its memory is saved)')
    .argument('<vm>', 'name or id').argument('<name>', 'the snapshot\'s name')
    .action(async (ref: string, name: string, _o, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const v = await resolveRef<VmJson>(client, 'vms', ref);
      const s = await client.post<SnapshotJson>(snapshotPath(v), { name });
      output(json, s, () => snapshotDetails(s));
    });

  snapshot.command('list').description('list a VM\'s snapshots').argument('<vm>', 'name or id')
    .action(async (ref: string, _o, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const v = await resolveRef<VmJson>(client, 'vms', ref);
      const ss = await client.get<SnapshotJson[]>(snapshotPath(v));
      output(json, ss, () => snapshotTable(ss));
    });

  snapshot.command('rm').description('delete a snapshot no clone stands on')
    .argument('<vm>', 'name or id').argument('<name>', 'the snapshot\'s name')
    .action(async (ref: string, name: string, _o, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const v = await resolveRef<VmJson>(client, 'vms', ref);
      await client.delete(snapshotPath(v, name));
      if (!json) process.stdout.write(`removed snapshot ${name} of VM ${v.name}\n`);
    });

  snapshot.command('restore').description('revert a VM to a snapshot: its disks back and, with memory, the guest runs on from then')
    .argument('<vm>', 'name or id').argument('<name>', 'the snapshot\'s name')
    .option('-f, --force', 'revert even though it throws away what the VM has now (it runs, or its disks were written since)')
    .action(async (ref: string, name: string, o: { force?: boolean }, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const v = await resolveRef<VmJson>(client, 'vms', ref);
      const after = await client.post<VmJson>(`${snapshotPath(v, name)}/restore${o.force ? '?force=true' : ''}`, {}).catch((err: unknown) => {
        // The API names its query; a person at the command line wants the flag.
        if (err instanceof ApiError && err.status === 409 && err.detail.includes('?force=true')) {
          throw new ApiError(err.status, err.title, `${err.detail} (here: vman vm snapshot restore --force ${ref} ${name})`, err.body);
        }
        throw err;
      });
      output(json, after, () => vmTable([after]));
    });
}
