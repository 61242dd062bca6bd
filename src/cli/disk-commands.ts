// `vman disk ...`: list, create, attach, detach, rm.
import type { Command } from 'commander';
import { ctxOf, describe } from './context.ts';
import { wholeNumber } from './numbers.ts';
import { removeCommand, resolveRef } from './resolve.ts';
import { formatTable, output } from './table.ts';
import type { VmJson } from './vm-commands.ts';

/** A disk as the API gives it. */
export interface DiskJson {
  id: string;
  name: string;
  size_gb: number;
  format: string;
  path: string;
  state: string;
  vm_id: string | null;
  mount_point: string | null;
  created_at: string;
  updated_at: string;
}

function diskTable(disks: DiskJson[], vms: VmJson[]): string {
  const vmName = new Map(vms.map((v) => [v.id, v.name]));
  return formatTable(
    ['NAME', 'ID', 'SIZE', 'STATE', 'VM', 'DEVICE'],
    disks.map((d) => [d.name, d.id, `${d.size_gb}G`, d.state, d.vm_id === null ? null : (vmName.get(d.vm_id) ?? d.vm_id), d.mount_point]),
  );
}

const diskDetails = (d: DiskJson): string =>
  describe([['name', d.name], ['id', d.id], ['size', `${d.size_gb}G`], ['format', d.format], ['state', d.state], ['vm', d.vm_id], ['device', d.mount_point], ['path', d.path]]);

export function diskCommands(program: Command): void {
  const disk = program.command('disk').description('manage data disks');

  disk.command('list').description('list disks').action(async (_o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const disks = await client.get<DiskJson[]>('/disks');
    if (json) return output(true, disks, () => '');
    const vms = disks.some((d) => d.vm_id !== null) ? await client.get<VmJson[]>('/vms') : [];
    output(false, disks, () => diskTable(disks, vms));
  });

  disk.command('create').description('create a qcow2 disk').argument('<name>', 'the new disk\'s name')
    .requiredOption('--size <GB>', 'size in GB', wholeNumber)
    .action(async (name: string, o: { size: number }, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const d = await client.post<DiskJson>('/disks', { name, size_gb: o.size });
      output(json, d, () => diskDetails(d));
    });

  disk.command('attach').description('attach a disk to a VM (hot-plugged if it runs)')
    .argument('<disk>', 'disk name or id').argument('<vm>', 'VM name or id')
    .action(async (diskRef: string, vmRef: string, _o, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const [d, v] = await Promise.all([resolveRef<DiskJson>(client, 'disks', diskRef), resolveRef<VmJson>(client, 'vms', vmRef)]);
      const attached = await client.post<DiskJson>(`/disks/${d.id}/attach`, { vm_id: v.id });
      output(json, attached, () => diskTable([attached], [v]));
    });

  disk.command('detach').description('detach a disk from its VM').argument('<disk>', 'disk name or id')
    .action(async (ref: string, _o, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const d = await resolveRef<DiskJson>(client, 'disks', ref);
      const detached = await client.post<DiskJson>(`/disks/${d.id}/detach`, {});
      output(json, detached, () => diskTable([detached], []));
    });

  removeCommand(disk, 'disks', 'delete a disk that is not attached', 'disk');
}
