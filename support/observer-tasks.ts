// The observer through vman's API, and the inconsistencies a scenario makes by
// hand (outside the API) for it to find.
import { appendFile, chown, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus } from './vm-tasks.ts';
import { pollUntil } from './poll.ts';
import { blockNamesOf } from './block-names.ts';
import { withQmp } from './qmp-reader.ts';
import { BRIDGE_NET } from './netns.ts';
import { scenarioNetns } from './bridge-vman.ts';

export interface FindingJson {
  kind: string;
  resource_type: string;
  resource_id: string;
  vm_id?: string;
  recorded: string;
  observed: string;
  pid?: number;
  path?: string;
}

export interface ReportJson {
  checked_at: string;
  findings: FindingJson[];
}

/** What vman answers a request to repair what its observer finds (the part the suite reads). */
export interface RepairJson {
  removed_from_qemu: Array<{ vm_id: string; devices: string[]; nodes: string[] }>;
}

export async function checkNow(world: VmanWorld): Promise<ReportJson> {
  const report = expectStatus<ReportJson>(await world.api().http.post('api/v1/observer/check'), 200, 'observer check');
  world.notes.observerReport = report;
  return report;
}

/** Asks vman to repair what its observer finds; notes its answer. */
export async function askForRepair(world: VmanWorld): Promise<RepairJson> {
  const answer = expectStatus<RepairJson>(await world.api().http.post('api/v1/observer/reconcile'), 200, 'observer reconcile');
  world.notes.repairAnswer = answer;
  return answer;
}

export async function latestReport(world: VmanWorld): Promise<ReportJson | undefined> {
  const res = await world.api().http.get('api/v1/observer/report');
  return res.statusCode === 200 ? (res.body as unknown as ReportJson) : undefined;
}

export function lastReport(world: VmanWorld): ReportJson {
  return world.noted('observerReport', 'an observer report fetched in this scenario');
}

/** The one finding of this kind about this resource; the error lists what the report did say. */
export function findingAbout(report: ReportJson, kind: string, resourceId: string): FindingJson {
  const f = report.findings.find((x) => x.kind === kind && x.resource_id === resourceId);
  if (!f) {
    const said = report.findings.map((x) => `${x.kind} ${x.resource_id} (${x.observed})`).join('; ') || 'no findings';
    throw new Error(`expected a ${kind} finding about ${resourceId}; the report said: ${said}`);
  }
  return f;
}

export async function waitForPeriodicFinding(world: VmanWorld, kind: string, resourceId: string, timeoutMs: number): Promise<FindingJson> {
  return pollUntil(
    `a periodic report with a ${kind} finding about ${resourceId}`,
    async () => {
      const r = await latestReport(world);
      const f = r?.findings.find((x) => x.kind === kind && x.resource_id === resourceId);
      return f ? { done: true, value: f } : { done: false, seen: r ? `report of ${r.checked_at} with ${r.findings.length} finding(s)` : 'no report yet' };
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** A QEMU nobody asked vman for, paused (-S) so it costs nothing, whose files sit in vman's storage. */
export async function startQemuByHand(world: VmanWorld): Promise<number> {
  const dir = path.join(world.api().storagePath, 'by-hand');
  await mkdir(dir, { recursive: true });
  const pidfile = path.join(dir, 'qemu.pid');
  await execa(world.host.qemu.path, [
    '-machine', 'pc,accel=tcg', '-m', '64', '-nodefaults', '-display', 'none', '-S',
    '-serial', `file:${path.join(dir, 'serial.log')}`, '-pidfile', pidfile, '-daemonize',
  ]);
  const pid = Number.parseInt(await readFile(pidfile, 'utf8'), 10);
  world.notes.handQemuPid = pid;
  return pid;
}

export async function makeDiskFileByHand(world: VmanWorld): Promise<string> {
  const file = path.join(world.api().storagePath, 'disks', 'made-by-hand.qcow2');
  await execa(world.host.qemuImg.path, ['create', '-q', '-f', 'qcow2', file, '1G']);
  world.notes.handDiskFile = file;
  return file;
}

/**
 * Plugs a disk into a VM's QEMU over its second monitor, under the names vman
 * gives its own disks, without telling vman: what an attach cut short by a
 * crash leaves behind.
 */
export async function plugDiskBehindVmansBack(vmDir: string, disk: { id: string; path: string }): Promise<void> {
  const names = blockNamesOf(disk.id);
  // An attach cut short has handed the file to the VM's QEMU user already (vman as root): so does the suite, as root.
  const st = await stat(path.join(vmDir, 'qemu.pid'));
  await chown(disk.path, st.uid, st.gid);
  await withQmp(vmDir, async (qmp) => {
    await qmp.execute('blockdev-add', { driver: 'file', 'node-name': names.nodes[1], filename: disk.path });
    await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': names.nodes[0], file: names.nodes[1] });
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', id: names.device, drive: names.nodes[0], serial: disk.id });
  });
}

/**
 * Takes a disk's device out of a VM's QEMU over its second monitor, without
 * telling vman (what a person at the monitor, or a guest that ejected it,
 * does): waits for QEMU's DEVICE_DELETED, the guest having let go.
 */
export async function unplugDeviceBehindVmansBack(vmDir: string, diskId: string): Promise<void> {
  const { device } = blockNamesOf(diskId);
  await withQmp(vmDir, async (qmp) => {
    await qmp.execute('device_del', { id: device });
    await qmp.event('DEVICE_DELETED', (data) => data.device === device, 20_000);
  });
}

/** A folder under <storage>/vms named as vman names a VM's, that no VM record owns. */
export async function makeVmFolderByHand(world: VmanWorld): Promise<string> {
  const folder = path.join(world.api().storagePath, 'vms', 'vm-0000feedface');
  await mkdir(folder, { recursive: true });
  return folder;
}

/** A snapshot taken through vman's API, as the database file then records it: its id and its folder. */
export interface RecordedSnapshot {
  vm: string;
  name: string;
  id: string;
  dir: string;
}

/** Takes a snapshot of a VM through vman's API and notes its row, read with sqlite3, for a later step to tamper with. */
export async function snapshotThroughApi(world: VmanWorld, vm: string, name: string): Promise<RecordedSnapshot> {
  expectStatus(await world.api().http.post(`api/v1/vms/${world.idOf(vm)}/snapshots`, { json: { name } }), 201, `snapshot ${name} of ${vm}`);
  const row = await world.db().one('SELECT id, dir FROM snapshots WHERE vm_id = ? AND name = ?', [world.idOf(vm), name]);
  if (!row) throw new Error(`vman answered 201 to snapshot ${name} of ${vm}, but the database file has no such snapshot`);
  const snapshot = { vm, name, id: String(row.id), dir: String(row.dir) };
  world.notes.recordedSnapshot = snapshot;
  return snapshot;
}

/** The snapshot an earlier step took through the API, checked to be the one a step names. */
export function notedSnapshot(world: VmanWorld, vm: string, name: string): RecordedSnapshot {
  const s = world.noted('recordedSnapshot', 'a snapshot taken through vman\'s API');
  if (s.vm !== vm || s.name !== name) throw new Error(`the snapshot taken was ${s.name} of ${s.vm}, not ${name} of ${vm}`);
  return s;
}

/** A tap device named as vman names a VM's, on the bridge of the scenario's namespace, that no VM holds. */
export async function putTapOnBridgeByHand(world: VmanWorld): Promise<string> {
  const ns = scenarioNetns(world);
  const tap = 'vt0000deadbeef';
  await execa('ip', ['-n', ns.name, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await execa('ip', ['-n', ns.name, 'link', 'set', 'dev', tap, 'master', BRIDGE_NET.bridge]);
  world.notes.handTap = tap;
  return tap;
}

/** A line in dnsmasq's hosts file that no allocation backs. */
export async function reserveByHand(world: VmanWorld): Promise<string> {
  const reservation = { mac: '52:54:00:de:ad:01', address: '192.168.77.19' };
  await appendFile(path.join(world.api().storagePath, 'network', 'dhcp-hosts'), `${reservation.mac},${reservation.address}\n`);
  world.notes.handReservation = `${reservation.mac} ${reservation.address}`;
  return `${reservation.mac} ${reservation.address}`;
}
