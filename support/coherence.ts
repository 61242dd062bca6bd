// The suite's own coherence check: the test oracle for "the database, QMP, the
// guest and the files agree". It shares no code with vman's observer: rows
// come through sqlite3 (another process), processes from /proc, devices from
// QMP on the second monitor, files from the file system.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { diskNodeNames } from '../src/operator/qemu-command.ts';
import { qemuProcessesUnder } from './run-context.ts';
import { qemuProcessOf, qmpRunState } from './qemu-facts.ts';
import { qmpDiskView } from './disk-facts.ts';
import { guestDisks } from './disk-facts.ts';

/** Every disagreement found, in words; empty when everything agrees. */
export async function disagreements(world: VmanWorld): Promise<string[]> {
  const db = world.db();
  const storage = world.api().storagePath;
  const vms = await db.all('SELECT id, name, state, pid, storage_dir FROM vms');
  const disks = await db.all('SELECT id, name, path, state, vm_id, mount_point FROM disks');
  const addresses = await db.all('SELECT address, vm_id FROM address_allocations');
  const out: string[] = [];

  const owned = new Set<number>();
  for (const vm of vms) {
    const id = String(vm.id);
    const dir = String(vm.storage_dir);
    const proc = await qemuProcessOf(id, dir);
    if (proc) owned.add(proc.pid);
    if (vm.state === 'running') {
      if (!proc) { out.push(`VM ${vm.name} is recorded running but no QEMU runs it`); continue; }
      if (proc.pid !== vm.pid) out.push(`VM ${vm.name} is recorded with pid ${vm.pid} but QEMU runs as ${proc.pid}`);
      const status = await qmpRunState(dir).catch((e: Error) => `unreachable (${e.message})`);
      if (status !== 'running') out.push(`VM ${vm.name} is recorded running but QMP says ${status}`);
    } else if (proc && vm.state !== 'starting' && vm.state !== 'stopping') {
      out.push(`VM ${vm.name} is recorded ${vm.state} but QEMU ${proc.pid} runs it`);
    }
    const holds = addresses.filter((a) => a.vm_id === id);
    if (vm.state === 'running' && holds.length !== 1) out.push(`VM ${vm.name} is running with ${holds.length} addresses`);
    if (vm.state !== 'running' && vm.state !== 'starting' && vm.state !== 'stopping' && holds.length > 0) {
      out.push(`VM ${vm.name} is ${vm.state} but holds ${holds.map((a) => a.address).join(', ')}`);
    }
  }

  for (const p of await qemuProcessesUnder(storage)) {
    if (!owned.has(p.pid)) out.push(`QEMU ${p.pid} runs under vman's storage but no VM row owns it`);
  }

  const files = new Set((await readdir(path.join(storage, 'disks')).catch(() => [] as string[])).map((f) => path.join(storage, 'disks', f)));
  const byId = new Map(vms.map((v) => [String(v.id), v]));
  for (const d of disks) {
    const file = String(d.path);
    if (!files.delete(file)) out.push(`disk ${d.name} is recorded at ${file} but the file is missing`);
    const owner = d.vm_id ? byId.get(String(d.vm_id)) : undefined;
    if (d.state === 'attached' && !owner) out.push(`disk ${d.name} is attached to a VM that does not exist`);
    if (owner?.state === 'running') {
      const dir = String(owner.storage_dir);
      const view = await qmpDiskView(dir);
      const device = diskNodeNames(String(d.id)).device;
      if (!view.devices.includes(device)) out.push(`disk ${d.name} is recorded attached to ${owner.name} but QMP does not list ${device}`);
      const seen = (await guestDisks(dir)).find((g) => g.serial === d.id);
      if (!seen) out.push(`disk ${d.name} is recorded attached to ${owner.name} but the guest does not see it`);
      else if (seen.path !== d.mount_point) out.push(`disk ${d.name} is recorded at ${d.mount_point} but the guest sees it at ${seen.path}`);
    }
  }
  for (const leftover of files) out.push(`the disk file ${leftover} belongs to no disk row`);
  return out;
}
