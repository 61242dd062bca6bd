// Tasks about disks: what a user asks of vman's disk API, and what a guest does
// with a disk it was given. One call each; steps stay one line.
//
// Every request first notes what vman has recorded and stored (the database
// dump and the disk folder), so a step can later check that a refused request
// changed nothing; and it notes when it was sent and answered, so the watch of
// a running VM can tell which samples fell before, during and after it.
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus } from './vm-tasks.ts';
import { requireGuestDisk } from './disk-facts.ts';
import { noteHoldings } from './validation-state.ts';
import { withGuestAgent } from './vm-facts.ts';

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

export type DiskAction = 'create' | 'get' | 'attach' | 'detach' | 'delete';

/** When a disk request was sent and answered (ms since the epoch). */
export interface DiskRequestTiming {
  action: DiskAction;
  disk: string;
  sentAt: number;
  answeredAt: number;
  status: number;
  /** vman's answer. */
  body: unknown;
}

export function diskRequestTimings(world: VmanWorld): DiskRequestTiming[] {
  return (world.notes.diskRequests ??= []);
}

/** The last request of this kind (about this disk, if named); throws if there was none. */
export function lastDiskRequest(world: VmanWorld, action: DiskAction, disk?: string): DiskRequestTiming {
  const found = diskRequestTimings(world).filter((t) => t.action === action && (disk === undefined || t.disk === disk)).at(-1);
  if (!found) throw new Error(`no ${action} request${disk ? ` about the disk ${disk}` : ''} was made in this scenario`);
  return found;
}

async function send(world: VmanWorld, action: DiskAction, disk: string, request: () => Promise<Response<unknown>>): Promise<Response<unknown>> {
  await noteHoldings(world);
  const sentAt = Date.now();
  const res = await request();
  diskRequestTimings(world).push({ action, disk, sentAt, answeredAt: Date.now(), status: res.statusCode, body: res.body });
  world.timings.push({ what: `${action} disk ${disk}`, ms: Date.now() - sentAt, status: res.statusCode });
  world.lastResponse = res;
  return res;
}

/** POST /disks with whatever size it is given (a refusal test passes 1.5, "ten", ...); the answer is not judged. */
export function requestDisk(world: VmanWorld, name: string, sizeGb: unknown): Promise<Response<unknown>> {
  return send(world, 'create', name, () => world.api().http.post('api/v1/disks', { json: { name, size_gb: sizeGb, format: 'qcow2' } }));
}

export async function createDisk(world: VmanWorld, name: string, sizeGb: number): Promise<DiskJson> {
  const disk = expectStatus<DiskJson>(await requestDisk(world, name, sizeGb), 201, `create a ${sizeGb} GB disk ${name}`);
  world.ids.set(name, disk.id);
  return disk;
}

export function getDisk(world: VmanWorld, name: string): Promise<Response<unknown>> {
  return send(world, 'get', name, () => world.api().http.get(`api/v1/disks/${world.idOf(name)}`));
}

export function attachDisk(world: VmanWorld, disk: string, vm: string): Promise<Response<unknown>> {
  return send(world, 'attach', disk, () =>
    world.api().http.post(`api/v1/disks/${world.idOf(disk)}/attach`, { json: { vm_id: world.idOf(vm) } }));
}

export function detachDisk(world: VmanWorld, disk: string): Promise<Response<unknown>> {
  return send(world, 'detach', disk, () => world.api().http.post(`api/v1/disks/${world.idOf(disk)}/detach`));
}

export function deleteDisk(world: VmanWorld, disk: string): Promise<Response<unknown>> {
  return send(world, 'delete', disk, () => world.api().http.delete(`api/v1/disks/${world.idOf(disk)}`));
}

export async function createAttachedDisk(world: VmanWorld, disk: string, sizeGb: number, vm: string): Promise<DiskJson> {
  await createDisk(world, disk, sizeGb);
  return expectStatus<DiskJson>(await attachDisk(world, disk, vm), 200, `attach the disk ${disk} to ${vm}`);
}

/** A disk that existed once and was deleted: its id is well-formed but unknown to vman. */
export async function createDeletedDisk(world: VmanWorld, name: string): Promise<void> {
  await createDisk(world, name, 1);
  expectStatus(await deleteDisk(world, name), 204, `delete the disk ${name}`);
}

// Where the guest writes its marker: 1 MiB into the disk, clear of anything a
// partition table or filesystem probe would touch.
const MARKER_OFFSET_BLOCKS = 256;
const BLOCK = 4096;

/** The guest finds the disk by its serial (the disk id) and writes a random marker to it, synced to the device. */
export async function guestWritesMarker(dir: string, diskId: string): Promise<string> {
  const marker = `vman-marker-${randomBytes(8).toString('hex')}`;
  await withGuestAgent(dir, async (ga) => {
    const device = await requireGuestDisk(ga, diskId);
    const script = `printf '%s' "$1" | dd of="$2" bs=${BLOCK} seek=${MARKER_OFFSET_BLOCKS} conv=notrunc,sync,fsync 2>&1`;
    const r = await ga.exec('/bin/sh', ['-c', script, 'write-marker', marker, device.path], { timeoutMs: 20_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not write to ${device.path} (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
  });
  return marker;
}

/**
 * What the image file holds where the guest writes its marker, read on the
 * host with qemu-io (-U: a QEMU may hold the image), no guest involved: the
 * proof that what a guest wrote reached the file.
 */
export async function imageReadsMarker(file: string, length: number): Promise<string> {
  const r = await execa('qemu-io', ['-f', 'qcow2', '-r', '-U', '-c', `read -v ${MARKER_OFFSET_BLOCKS * BLOCK} ${length}`, file], { reject: false });
  if (r.exitCode !== 0) throw new Error(`qemu-io could not read ${file} (exit ${r.exitCode}): ${r.stderr || r.stdout}`);
  // Lines of `read -v`: "00100000:  76 6d 61 6e ...  vman...".
  const bytes = r.stdout.split('\n').flatMap((line) => {
    const m = /^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} ?)+)/.exec(line);
    return m ? m[1]!.trim().split(/\s+/).map((h) => Number.parseInt(h, 16)) : [];
  });
  return Buffer.from(bytes.slice(0, length)).toString('latin1');
}

/** What the guest reads back from the marker's place on the disk with this serial (bypassing its page cache). */
export async function guestReadsMarker(dir: string, diskId: string, length: number): Promise<string> {
  return withGuestAgent(dir, async (ga) => {
    const device = await requireGuestDisk(ga, diskId);
    const script = `dd if="$1" bs=${BLOCK} skip=${MARKER_OFFSET_BLOCKS} count=1 iflag=direct 2>/dev/null | head -c ${length}`;
    const r = await ga.exec('/bin/sh', ['-c', script, 'read-marker', device.path], { timeoutMs: 20_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not read ${device.path} (exit ${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  });
}

/**
 * The guest writes `mib` MiB of zeros over the start of the disk with this
 * serial, with O_DIRECT and a final fsync, so that every byte reaches the
 * device now; returns the bytes dd says it wrote (busybox's dd counts records
 * of bs=1M: "8+0 records out" is 8 whole ones and no partial one).
 */
export async function guestWritesBytes(dir: string, diskId: string, mib: number): Promise<number> {
  return withGuestAgent(dir, async (ga) => {
    const device = await requireGuestDisk(ga, diskId);
    const r = await ga.exec('/bin/dd', ['if=/dev/zero', `of=${device.path}`, 'bs=1M', `count=${mib}`, 'oflag=direct', 'conv=fsync'], { timeoutMs: 60_000 });
    const out = /(\d+)\+(\d+) records out/.exec(r.stderr);
    if (r.exitCode !== 0 || !out || out[2] !== '0') throw new Error(`dd in the guest to ${device.path} did not write whole MiB records (exit ${r.exitCode}): ${r.stderr}${r.stdout}`);
    return Number(out[1]) * 1024 * 1024;
  });
}
