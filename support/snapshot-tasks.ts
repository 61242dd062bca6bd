// Snapshots, reverts and clones as a user asks for them through vman's API,
// and what the suite reads itself to judge them: the guest (through its
// agent), QEMU's command line in /proc and its monitor, the database file and
// the snapshot's files.
import type { Response } from 'got';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus } from './vm-tasks.ts';
import { withGuestAgent } from './guest-agent.ts';
import { qemuOfVm } from './proc-reader.ts';
import { requireGuestDisk } from './disk-facts.ts';
import { recordedVm } from './vm-facts.ts';
import { withQmp } from './qmp-reader.ts';

/** Where a guest keeps a marker in RAM only: a tmpfs the step mounts itself. */
const RAM_DIR = '/run/vman-ram';

export interface SnapshotJson {
  id: string;
  name: string;
  with_memory: boolean;
  pause_ms: number | null;
  state_bytes: number | null;
  clones: string[];
}

export async function requestSnapshot(world: VmanWorld, vmRef: string, name: string): Promise<Response<unknown>> {
  const res = await world.api().http.post(`api/v1/vms/${encodeURIComponent(vmRef)}/snapshots`, { json: { name } });
  world.lastResponse = res;
  return res;
}

export async function takeSnapshot(world: VmanWorld, vm: string, name: string): Promise<SnapshotJson> {
  const started = Date.now();
  const snap = expectStatus<SnapshotJson>(await requestSnapshot(world, world.idOf(vm), name), 201, `snapshot ${name} of ${vm}`);
  world.timings.push({ what: `snapshot ${name} of ${vm}`, ms: Date.now() - started, status: 201 });
  return snap;
}

export async function requestRevert(world: VmanWorld, vm: string, name: string, opts: { force?: boolean } = {}): Promise<Response<unknown>> {
  const started = Date.now();
  const res = await world.api().http.post(`api/v1/vms/${world.idOf(vm)}/snapshots/${encodeURIComponent(name)}/restore`, opts.force ? { searchParams: { force: 'true' } } : {});
  world.timings.push({ what: `revert ${vm} to ${name}`, ms: Date.now() - started, status: res.statusCode });
  world.lastResponse = res;
  return res;
}

export async function requestClone(world: VmanWorld, clone: string, vmRef: string, snapshot: string): Promise<Response<unknown>> {
  const res: Response<unknown> = await world.api().http.post('api/v1/vms', { json: { name: clone, from_snapshot: { vm: vmRef, name: snapshot } } });
  world.lastResponse = res;
  if (res.statusCode === 201) world.ids.set(clone, (res.body as { id: string }).id);
  return res;
}

export async function deleteSnapshot(world: VmanWorld, vm: string, name: string): Promise<Response<unknown>> {
  const res = await world.api().http.delete(`api/v1/vms/${world.idOf(vm)}/snapshots/${encodeURIComponent(name)}`);
  world.lastResponse = res;
  return res;
}

/** The guest mounts a tmpfs of its own (once) and keeps a new random marker there: in its RAM and nowhere else. */
export async function guestKeepsRamMarker(dir: string): Promise<string> {
  const marker = `ram-${randomBytes(8).toString('hex')}`;
  const script = `mkdir -p ${RAM_DIR} && { grep -qs " ${RAM_DIR} tmpfs " /proc/mounts || mount -t tmpfs vman-ram ${RAM_DIR}; } && printf '%s' "$1" > ${RAM_DIR}/marker`;
  await withGuestAgent(dir, async (ga) => {
    const r = await ga.exec('/bin/sh', ['-c', script, 'ram-marker', marker], { timeoutMs: 10_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not keep a marker in RAM (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
  });
  return marker;
}

/** The marker the guest holds in its tmpfs now, with the proof that the folder is a tmpfs. */
export async function guestRamMarker(dir: string): Promise<{ onTmpfs: boolean; marker: string }> {
  return withGuestAgent(dir, async (ga) => {
    const r = await ga.exec('/bin/sh', ['-c', `grep -qs " ${RAM_DIR} tmpfs " /proc/mounts && echo tmpfs; cat ${RAM_DIR}/marker 2>/dev/null`], { timeoutMs: 10_000 });
    const [first, ...rest] = r.stdout.split('\n');
    return first === 'tmpfs' ? { onTmpfs: true, marker: rest.join('\n') } : { onTmpfs: false, marker: r.stdout };
  });
}

/** The sha256 of the first 4 MiB of a data disk as the guest reads it from the device (past its page cache). */
export async function guestDiskChecksum(dir: string, diskId: string): Promise<string> {
  return withGuestAgent(dir, async (ga) => {
    const device = await requireGuestDisk(ga, diskId);
    const r = await ga.exec('/bin/sh', ['-c', 'dd if="$1" bs=1M count=4 iflag=direct 2>/dev/null | sha256sum', 'checksum', device.path], { timeoutMs: 20_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not read ${device.path} (exit ${r.exitCode}): ${r.stderr}`);
    return r.stdout.split(/\s+/)[0]!;
  });
}

/** True when the VM's QEMU was started to load a saved state (-incoming on its command line), as /proc shows it. */
export async function qemuResumedAState(world: VmanWorld, vm: string): Promise<boolean> {
  const v = await recordedVm(world, vm);
  const proc = await qemuOfVm(v.id, v.dir);
  if (!proc) throw new Error(`no QEMU runs ${vm}`);
  return proc.argv.includes('-incoming');
}

/** The guest's clock minus the host's, in ms, as the guest agent reads the guest's (guest-get-time). */
export async function guestClockOffsetMs(dir: string): Promise<number> {
  return withGuestAgent(dir, async (ga) => {
    const ns = await ga.execute<number>('guest-get-time');
    return Math.round(ns / 1e6 - Date.now());
  });
}

/**
 * The VM generation id in the guest's memory: the guest's ACPI tables name the
 * guest-physical address of QEMU's buffer (VGIA, patched in by its firmware),
 * read through the agent; the 16 bytes of the GUID, 40 bytes in, are read from
 * the guest's memory over the suite's own monitor (xp): what the guest's
 * kernel would read there. Formatted as QEMU prints it.
 */
export async function guestGenerationId(dir: string): Promise<string> {
  const script = 'for t in /sys/firmware/acpi/tables/SSDT*; do od -An -tx1 -v "$t" | tr -d " \\n" | grep -o "0856474941.\\{10\\}"; done | head -n1';
  const found = await withGuestAgent(dir, async (ga) => (await ga.exec('/bin/sh', ['-c', script], { timeoutMs: 10_000 })).stdout.trim());
  // Name (VGIA, DWordConst 0x0c): 08 "VGIA" 0c and 4 bytes, little endian.
  const m = /^08564749410c([0-9a-f]{8})$/.exec(found);
  if (!m) throw new Error(`the guest's ACPI tables hold no VGIA address (found ${JSON.stringify(found)})`);
  const address = Number.parseInt(m[1]!.match(/../g)!.reverse().join(''), 16) + 40;
  const dump = await withQmp(dir, (qmp) => qmp.execute<string>('human-monitor-command', { 'command-line': `xp /16xb 0x${address.toString(16)}` }));
  // "000000001ffff028: 0xa3 0xf3 ...": the address, then one 0x.. per byte.
  const hex = [...dump.matchAll(/\b0x([0-9a-f]{2})\b/g)].map((x) => x[1]!).join('');
  if (hex.length !== 32) throw new Error(`xp did not show 16 bytes at 0x${address.toString(16)}: ${dump}`);
  return guidFromBytes(hex);
}

/** The generation id QEMU gives the VM (query-vm-generation-id on the suite's monitor). */
export async function qemuGenerationId(dir: string): Promise<string> {
  return (await withQmp(dir, (qmp) => qmp.execute<{ guid: string }>('query-vm-generation-id'))).guid;
}

/** A GUID as QEMU prints it, from its 16 bytes in memory (the first three fields little endian). */
function guidFromBytes(hex: string): string {
  const b = hex.match(/../g)!;
  const le = (from: number, to: number): string => b.slice(from, to).reverse().join('');
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${b.slice(8, 10).join('')}-${b.slice(10, 16).join('')}`;
}

/** Size of a snapshot's memory.state on disk, or undefined. */
export async function memoryStateBytes(world: VmanWorld, vm: string, snapshot: string): Promise<number | undefined> {
  const row = await world.db().one('SELECT s.dir FROM snapshots s JOIN vms v ON v.id = s.vm_id WHERE v.name = ? AND s.name = ?', [vm, snapshot]);
  if (!row) return undefined;
  return (await stat(path.join(String(row.dir), 'memory.state')).catch(() => undefined))?.size;
}

/** The guest writes a new random marker into the last 4 KiB of its root disk (found by its serial), synced to the device. */
export async function guestWritesRootTail(dir: string, rootId: string): Promise<string> {
  const marker = `tail-${randomBytes(8).toString('hex')}`;
  await withGuestAgent(dir, async (ga) => {
    const device = await requireGuestDisk(ga, rootId);
    const script = 'b=$(cat /sys/block/$(basename "$2")/size); printf "%s" "$1" | dd of="$2" bs=4096 seek=$((b / 8 - 1)) conv=notrunc,sync,fsync 2>&1';
    const r = await ga.exec('/bin/sh', ['-c', script, 'write-tail', marker, device.path], { timeoutMs: 20_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not write to ${device.path} (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
  });
  return marker;
}

/** What the last 4 KiB of the guest's root disk start with, read past its page cache. */
export async function guestReadsRootTail(dir: string, rootId: string, length: number): Promise<string> {
  return withGuestAgent(dir, async (ga) => {
    const device = await requireGuestDisk(ga, rootId);
    const script = 'b=$(cat /sys/block/$(basename "$1")/size); dd if="$1" bs=4096 skip=$((b / 8 - 1)) count=1 iflag=direct 2>/dev/null | head -c ' + String(length);
    const r = await ga.exec('/bin/sh', ['-c', script, 'read-tail', device.path], { timeoutMs: 20_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not read ${device.path} (exit ${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  });
}

/** The guest sets its own clock (date -s), as its administrator would. */
export async function setGuestClock(dir: string, epochMs: number): Promise<void> {
  await withGuestAgent(dir, async (ga) => {
    const r = await ga.exec('date', ['-s', `@${Math.round(epochMs / 1000)}`], { timeoutMs: 10_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not set its clock (exit ${r.exitCode}): ${r.stderr}`);
  });
}

/** The public SSH host keys a guest holds (/etc/ssh/ssh_host_*_key.pub), read through its agent, sorted. */
export async function guestHostKeys(dir: string): Promise<string[]> {
  return withGuestAgent(dir, async (ga) => {
    const r = await ga.exec('/bin/sh', ['-c', 'cat /etc/ssh/ssh_host_*_key.pub'], { timeoutMs: 10_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not read its host keys (exit ${r.exitCode}): ${r.stderr}`);
    return r.stdout.split('\n').map((l) => l.split(' ').slice(0, 2).join(' ')).filter(Boolean).sort();
  });
}
