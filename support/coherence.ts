// The suite's own coherence check: the test oracle for "the database, QMP, the
// guest and the files agree". It shares no code with vman's observer and looks
// both ways: from the records out (every running VM has its QEMU, every
// attached disk is in QEMU and in the guest) and from the host back (every
// QEMU, block device, block node, VM folder and disk file belongs to a record).
// Rows come through sqlite3 (another process), processes from /proc, devices
// from QMP on the second monitor, files from the file system.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { qemuOfVm, qemusUnder } from './proc-reader.ts';
import { qemuBlockView, qemuRunState, qemuSize } from './qmp-reader.ts';
import { guestDisks } from './guest-view.ts';
import { blockNamesOf } from './block-names.ts';
import { guestIpv4 } from './vm-facts.ts';


/** A VM's own disks are named after it: its root disk (the overlay of a base image) root-<hex of its id>, its cloud-init seed seed-<hex>. */
function ownDiskIdsOf(vmId: string): string[] {
  const hex = vmId.replace(/^vm-/, '');
  return [`root-${hex}`, `seed-${hex}`];
}

/**
 * The VM whose hardware a VM has: itself, or for a clone the VM its snapshot
 * was taken of (followed back through clones of clones), as the database's
 * snapshot rows say. A resumed state fits only the same devices, names included.
 */
function hardwareOwner(vmId: string, vms: Array<Record<string, unknown>>, snapshots: Array<Record<string, unknown>>): string {
  let id = vmId;
  for (let hops = 0; hops < 64; hops++) {
    const origin = vms.find((v) => v.id === id)?.origin_snapshot_id;
    const snap = origin ? snapshots.find((s) => s.id === origin) : undefined;
    if (!snap) return id;
    id = String(snap.vm_id);
  }
  return id;
}

/** Every disagreement found, in words; empty when everything agrees. */
export async function disagreements(world: VmanWorld): Promise<string[]> {
  const db = world.db();
  const vman = world.api();
  const storage = vman.storagePath;
  // A VM may be between states only while the scenario waits for an answer.
  const requestInFlight = vman.inFlight() > 0;
  const vms = await db.all('SELECT v.id, v.name, v.state, v.pid, v.storage_dir, v.mac, v.guest_address, v.origin_snapshot_id, t.cpus, t.memory_mb, t.readiness, t.base_image_path FROM vms v JOIN templates t ON t.id = v.template_id');
  const snapshots = await db.all('SELECT id, vm_id, name, with_memory, dir, disks FROM snapshots');
  const disks = await db.all('SELECT id, name, path, state, vm_id, mount_point FROM disks');
  const addresses = await db.all('SELECT address, vm_id FROM address_allocations');
  const intents = await db.all('SELECT id, op, vm_id, disk_id FROM intents');
  const out: string[] = [];

  // Nothing is in flight between steps: an intent left is an operation nobody finished.
  for (const i of intents) out.push(`intent ${i.id} (${i.op} of ${i.vm_id ?? i.disk_id}) is still recorded`);

  const owned = new Set<number>();
  for (const vm of vms) {
    const id = String(vm.id);
    const dir = String(vm.storage_dir);
    const proc = await qemuOfVm(id, dir);
    if (proc) owned.add(proc.pid);
    const holds = addresses.filter((a) => a.vm_id === id);
    const between = vm.state === 'starting' || vm.state === 'stopping' || vm.state === 'saving' || vm.state === 'restoring';
    if (between && !requestInFlight) out.push(`VM ${vm.name} is ${vm.state} with no request in flight`);
    if (vm.state === 'running') {
      if (!proc) { out.push(`VM ${vm.name} is recorded running but no QEMU runs it`); continue; }
      if (proc.pid !== vm.pid) out.push(`VM ${vm.name} is recorded with pid ${vm.pid} but QEMU runs as ${proc.pid}`);
      const status = await qemuRunState(dir).catch((e: Error) => `unreachable (${e.message})`);
      if (status !== 'running') out.push(`VM ${vm.name} is recorded running but QMP says ${status}`);
      if (holds.length !== 1) out.push(`VM ${vm.name} is running with ${holds.length} addresses`);
      else if (vm.readiness === 'agent') {
        // vman took the guest's word for its address through the agent; a guest judged by another rule may have none.
        // A guest resumed from a saved state (QEMU started with -incoming) keeps the address it was saved with,
        // which its own user-mode network forwards to: what vman shows must be that one.
        const resumed = proc.argv.includes('-incoming');
        const expected = resumed ? String(vm.guest_address) : holds[0]!.address;
        const seen = await guestIpv4(dir);
        if (seen.length !== 1 || seen[0] !== expected) out.push(`VM ${vm.name} is recorded at ${expected}${resumed ? ' (resumed)' : ''} but the guest reports ${seen.join(', ') || 'no address'}`);
      }
      const size = await qemuSize(dir);
      if (size.cpus !== vm.cpus || size.memoryBytes !== Number(vm.memory_mb) * 2 ** 20) {
        out.push(`VM ${vm.name}'s template says ${vm.cpus} CPU(s) and ${vm.memory_mb} MB, but QEMU runs ${size.cpus} and ${size.memoryBytes / 2 ** 20} MB`);
      }
      out.push(...(await blockDisagreements(vm, disks, hardwareOwner(id, vms, snapshots))));
    } else if (proc && !between) {
      out.push(`VM ${vm.name} is recorded ${vm.state} but QEMU ${proc.pid} runs it`);
    }
    if (vm.state !== 'running' && !between && holds.length > 0) {
      out.push(`VM ${vm.name} is ${vm.state} but holds ${holds.map((a) => a.address).join(', ')}`);
    }
  }

  for (const p of await qemusUnder(storage)) {
    if (!owned.has(p.pid)) out.push(`QEMU ${p.pid} runs under vman's storage but no VM row owns it`);
  }

  const recorded = new Set(vms.map((v) => String(v.id)));
  for (const folder of await readdir(path.join(storage, 'vms')).catch(() => [] as string[])) {
    if (!recorded.has(folder)) out.push(`the VM folder ${folder} belongs to no VM row`);
  }
  out.push(...(await snapshotDisagreements(storage, vms, snapshots)));

  const files = new Set((await readdir(path.join(storage, 'disks')).catch(() => [] as string[])).map((f) => path.join(storage, 'disks', f)));
  const byId = new Map(vms.map((v) => [String(v.id), v]));
  for (const d of disks) {
    const file = String(d.path);
    if (!files.delete(file)) out.push(`disk ${d.name} is recorded at ${file} but the file is missing`);
    const owner = d.vm_id ? byId.get(String(d.vm_id)) : undefined;
    if (d.state === 'attached' && !owner) out.push(`disk ${d.name} is attached to a VM that does not exist`);
    if (owner?.state === 'running') {
      const seen = (await guestDisks(String(owner.storage_dir))).find((g) => g.serial === d.id);
      if (!seen) out.push(`disk ${d.name} is recorded attached to ${owner.name} but the guest does not see it`);
      else if (seen.path !== d.mount_point) out.push(`disk ${d.name} is recorded at ${d.mount_point} but the guest sees it at ${seen.path}`);
    } else if (d.mount_point !== null) {
      out.push(`disk ${d.name} has the mount point ${d.mount_point} but no running VM holds it`);
    }
  }
  for (const leftover of files) out.push(`the disk file ${leftover} belongs to no disk row`);
  out.push(...(await reservationDisagreements(storage, vman.networkMode, vms, addresses)));
  return out;
}

/**
 * Bridge mode (as vman was configured): dnsmasq's reservations are exactly the
 * allocations, each for the MAC of its VM (both ways). User mode: QEMU hands
 * out addresses itself, and no reservation file may exist.
 */
async function reservationDisagreements(storage: string, mode: 'user' | 'bridge', vms: Array<Record<string, unknown>>, addresses: Array<Record<string, unknown>>): Promise<string[]> {
  const file = path.join(storage, 'network', 'dhcp-hosts');
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (mode === 'user') return text === undefined ? [] : [`vman runs in user mode but dnsmasq's hosts file ${file} exists`];
  if (text === undefined) return [`vman runs in bridge mode but dnsmasq's hosts file ${file} is missing`];
  const reserved = new Set(text.split('\n').map((l) => l.trim().toLowerCase()).filter(Boolean));
  const macOf = new Map(vms.map((v) => [String(v.id), String(v.mac).toLowerCase()]));
  const expected = new Set(addresses.map((a) => `${macOf.get(String(a.vm_id))},${String(a.address)}`));
  const out: string[] = [];
  for (const e of expected) if (!reserved.has(e)) out.push(`the allocation ${e} has no reservation in dnsmasq's hosts file`);
  for (const r of reserved) if (!expected.has(r)) out.push(`dnsmasq reserves ${r}, which no allocation accounts for`);
  return out;
}

/** Both ways between a running VM's QEMU and the disks recorded attached to it. */
async function blockDisagreements(vm: Record<string, unknown>, disks: Array<Record<string, unknown>>, hardwareOf: string): Promise<string[]> {
  const out: string[] = [];
  const view = await qemuBlockView(String(vm.storage_dir));
  const attached = disks.filter((d) => d.vm_id === vm.id && d.state === 'attached');
  const expected = new Set<string>();
  for (const id of [...ownDiskIdsOf(hardwareOf), ...attached.map((d) => String(d.id))]) {
    const names = blockNamesOf(id);
    expected.add(names.device);
    names.nodes.forEach((n) => expected.add(n));
  }
  // Its own disks (the cloud-init seed; a root overlay when its template boots from an image) are there whichever way it came up.
  for (const id of ownDiskIdsOf(hardwareOf).filter((d) => vm.base_image_path !== null || !d.startsWith('root-'))) {
    const { device, nodes } = blockNamesOf(id);
    const missing = [device, ...nodes].filter((n) => !view.devices.includes(n) && !view.nodes.includes(n));
    if (missing.length > 0) out.push(`QEMU of ${vm.name} holds no ${missing.join(', ')} of its own disk ${id}`);
  }
  for (const d of attached) {
    const { device, nodes } = blockNamesOf(String(d.id));
    if (!view.devices.includes(device)) out.push(`disk ${d.name} is recorded attached to ${vm.name} but QMP does not list ${device}`);
    else if (view.fileOf[device] !== d.path) out.push(`QEMU of ${vm.name} reads ${view.fileOf[device]} for ${device}, not ${String(d.path)}`);
    for (const n of nodes) if (!view.nodes.includes(n)) out.push(`disk ${d.name} is recorded attached to ${vm.name} but QEMU has no node ${n}`);
  }
  const strays = [...view.devices, ...view.nodes].filter((n) => !expected.has(n));
  if (strays.length > 0) out.push(`QEMU of ${vm.name} holds ${strays.join(', ')}, which no disk recorded attached to it accounts for`);
  return out;
}

/** Every snapshot row has its folder with its files; every snapshot folder has its row. */
async function snapshotDisagreements(storage: string, vms: Array<Record<string, unknown>>, snapshots: Array<Record<string, unknown>>): Promise<string[]> {
  const out: string[] = [];
  for (const s of snapshots) {
    const dir = String(s.dir);
    const files = await readdir(dir).catch(() => undefined);
    if (!files) { out.push(`snapshot ${s.name} is recorded at ${dir} but the folder is missing`); continue; }
    if (Number(s.with_memory) === 1 && !files.includes('memory.state')) out.push(`snapshot ${s.name} is recorded with memory but ${dir} holds no memory.state`);
    for (const d of JSON.parse(String(s.disks)) as Array<{ image: string }>) {
      if (!files.includes(path.basename(d.image))) out.push(`snapshot ${s.name} is recorded with ${d.image}, which is missing`);
    }
  }
  const known = new Set(snapshots.map((s) => String(s.dir)));
  for (const vm of vms) {
    const root = path.join(storage, 'vms', String(vm.id), 'snapshots');
    for (const f of await readdir(root).catch(() => [] as string[])) {
      if (!known.has(path.join(root, f))) out.push(`the snapshot folder ${path.join(root, f)} belongs to no snapshot row`);
    }
  }
  return out;
}
