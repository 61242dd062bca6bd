// What is true at the moment a crash point names, read after vman died there
// and before it is started again (so before any recovery): the database file
// (through sqlite3: the rows and the intent journal itself), QEMU over its
// second monitor (run state, block devices, block nodes), /proc, the files,
// and the bridge's taps and dnsmasq's reservations. Each phrase is one column
// of the @crash outline: a point that fires a step early or late shows another
// picture, and its example fails.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import type { Row } from './db-reader.ts';
import { qemuOfVm } from './proc-reader.ts';
import { qemuBlockView, qemuRunState } from './qmp-reader.ts';
import { blockNamesOf } from './block-names.ts';
import { withGuestAgent } from './guest-agent.ts';
import { bridgePorts, reservationsInDnsmasq } from './network-facts.ts';
import { BRIDGE_NET } from './netns.ts';
import { scenarioNetns } from './bridge-vman.ts';
import { DISK, VM } from './crash-tasks.ts';
import { scenarioVmFolders } from './warm-start.ts';

/** Everything a moment is judged on, read once. */
interface Seen {
  vm?: Row;
  disk?: Row;
  address?: string;
  intents: Row[];
  /** The snapshot rows of the VM, and the folders under its snapshots/ with what each holds. */
  snapshotRows: number;
  snapshotFolders: Array<{ name: string; files: string[] }>;
  qemuPid?: number;
  /** QMP's run state, or why it could not be read. */
  runState?: string;
  /** What QEMU holds of the disk: its device and nodes by vman's names. */
  diskInQemu: string[];
  vmFolders: string[];
  diskFiles: string[];
}

async function look(world: VmanWorld): Promise<Seen> {
  const db = world.db();
  const vm = await db.one('SELECT * FROM vms WHERE name = ?', [VM]);
  const disk = await db.one('SELECT * FROM disks WHERE name = ?', [DISK]);
  const storage = world.api().storagePath;
  const seen: Seen = {
    ...(vm ? { vm } : {}),
    ...(disk ? { disk } : {}),
    intents: await db.all('SELECT op, vm_id, disk_id, detail FROM intents'),
    snapshotRows: vm ? (await db.all('SELECT id FROM snapshots WHERE vm_id = ?', [vm.id])).length : 0,
    snapshotFolders: vm ? await snapshotFoldersOf(String(vm.storage_dir)) : [],
    diskInQemu: [],
    // The worker's warm origin, which the scenario's clone stands on, is not the scenario's VM.
    vmFolders: await scenarioVmFolders(world),
    diskFiles: (await readdir(path.join(storage, 'disks')).catch(() => [] as string[])).sort(),
  };
  if (vm) {
    const address = await db.addressOf(String(vm.id));
    if (address) seen.address = address;
    const proc = await qemuOfVm(String(vm.id), String(vm.storage_dir));
    if (proc) {
      seen.qemuPid = proc.pid;
      seen.runState = await qemuRunState(String(vm.storage_dir)).catch((e: Error) => `unreadable (${e.message})`);
      if (disk) {
        const view = await qemuBlockView(String(vm.storage_dir));
        const names = blockNamesOf(String(disk.id));
        seen.diskInQemu = [names.device, ...names.nodes].filter((n) => view.devices.includes(n) || view.nodes.includes(n));
      }
    }
  }
  return seen;
}

function describe(s: Seen): string {
  return [
    `VM ${s.vm ? `${String(s.vm.state)}, pid ${String(s.vm.pid)}, address ${s.address ?? 'none'}` : 'no row'}`,
    `QEMU ${s.qemuPid ? `${s.qemuPid} (${s.runState})` : 'none'}`,
    `disk ${s.disk ? `${String(s.disk.state)}${s.disk.vm_id ? ` to ${String(s.disk.vm_id)}` : ''}` : 'no row'}; QEMU holds ${s.diskInQemu.join(', ') || 'nothing of it'}`,
    `intents ${s.intents.map((i) => String(i.op)).join(', ') || 'none'}`,
    `snapshots: ${s.snapshotRows} row(s); folders ${s.snapshotFolders.map((f) => `${f.name} (${f.files.join(', ') || 'empty'})`).join(', ') || 'none'}`,
    `VM folders ${s.vmFolders.join(', ') || 'none'}; disk files ${s.diskFiles.join(', ') || 'none'}`,
  ].join('; ');
}

/** One expectation: what must be so, and whether it is. */
type Claim = [string, boolean];

const pendingOf = (s: Seen): string | undefined => {
  const detail = s.intents.find((i) => String(i.op).startsWith('disk.'))?.detail;
  const pending = detail ? (JSON.parse(String(detail)) as { pending?: string }).pending : undefined;
  return pending ? path.basename(pending) : undefined;
};
const fileOf = (s: Seen): string | undefined => (s.disk ? path.basename(String(s.disk.path)) : undefined);
const diskHolds = (s: Seen, ...names: Array<'device' | 'format' | 'file'>): Claim => {
  const id = String(s.disk?.id ?? '');
  const all = { device: `disk-${id}`, format: `drive-${id}`, file: `file-${id}` };
  const want = names.map((n) => all[n]).sort();
  return [`QEMU holds ${names.join(' and ') || 'nothing'} of the disk`, JSON.stringify([...s.diskInQemu].sort()) === JSON.stringify(want)];
};

async function snapshotFoldersOf(vmDir: string): Promise<Array<{ name: string; files: string[] }>> {
  const root = path.join(vmDir, 'snapshots');
  const names = await readdir(root).catch(() => [] as string[]);
  return Promise.all(names.map(async (name) => ({ name, files: (await readdir(path.join(root, name)).catch(() => [] as string[])).sort() })));
}

/** One snapshot folder that no row records, holding (or not) the saved state. */
const unrecordedSnapshotFolder = (s: Seen, withState: boolean): Claim[] => [
  ['no snapshot row', s.snapshotRows === 0],
  ['one snapshot folder', s.snapshotFolders.length === 1],
  [withState ? 'the saved state in it' : 'no saved state in it yet', s.snapshotFolders[0]?.files.includes('memory.state') === withState],
];

/** The moments, in the outline's words; each lists its claims about what is seen. */
const MOMENTS: Record<string, (s: Seen, world: VmanWorld) => Promise<Claim[]> | Claim[]> = {
  'the VM recorded saving, its QEMU paused, a snapshot folder with no state and no row': (s) => [
    ['the VM recorded saving', s.vm?.state === 'saving'],
    ['QEMU paused', s.runState === 'paused'],
    ...unrecordedSnapshotFolder(s, false),
  ],
  'the VM recorded saving, its QEMU done saving, the saved state in a folder no row records': (s) => [
    ['the VM recorded saving', s.vm?.state === 'saving'],
    ['QEMU done saving (postmigrate)', s.runState === 'postmigrate'],
    ...unrecordedSnapshotFolder(s, true),
  ],
  'the VM recorded saving, its QEMU running, the saved state in a folder no row records': (s) => [
    ['the VM recorded saving', s.vm?.state === 'saving'],
    ['QEMU running', s.runState === 'running'],
    ...unrecordedSnapshotFolder(s, true),
  ],
  'the VM recorded restoring with its address, its snapshot recorded, and no QEMU': (s) => [
    ['the VM recorded restoring', s.vm?.state === 'restoring'],
    ['an address still held', s.address !== undefined],
    ['no QEMU runs it', s.qemuPid === undefined],
    ['its snapshot recorded', s.snapshotRows === 1],
  ],
  'the VM recorded restoring, its QEMU paused with the saved state loaded': (s) => [
    ['the VM recorded restoring', s.vm?.state === 'restoring'],
    ['QEMU runs it under the pid recorded', s.qemuPid !== undefined && s.vm?.pid === s.qemuPid],
    ['QEMU paused, the state loaded and the guest not yet run on', s.runState === 'paused'],
  ],
  'a VM folder that no row records': (s) => [
    ['no VM row', s.vm === undefined],
    ['one VM folder', s.vmFolders.length === 1],
  ],
  'the VM recorded starting with an address, and no QEMU': (s) => [
    ['the VM recorded starting', s.vm?.state === 'starting'],
    ['an address held', s.address !== undefined],
    ['no pid recorded', s.vm?.pid === null],
    ['no QEMU runs it', s.qemuPid === undefined],
  ],
  'QEMU running the VM, and no pid recorded': (s) => [
    ['the VM recorded starting', s.vm?.state === 'starting'],
    ['QEMU runs it', s.qemuPid !== undefined],
    ['no pid recorded (vman had not connected)', s.vm?.pid === null],
  ],
  'QEMU running the VM under the pid recorded, its guest not answering yet': async (s) => [
    ['the VM recorded starting', s.vm?.state === 'starting'],
    ['QEMU runs it under the pid recorded', s.qemuPid !== undefined && s.vm?.pid === s.qemuPid],
    ['its guest does not answer yet', !(await agentAnswers(s))],
  ],
  'the VM recorded starting, its guest answering': async (s) => [
    ['the VM recorded starting', s.vm?.state === 'starting'],
    ['QEMU runs it under the pid recorded', s.qemuPid !== undefined && s.vm?.pid === s.qemuPid],
    ['its guest answers', await agentAnswers(s)],
  ],
  'the VM recorded stopping, its QEMU still running': (s) => [
    ['the VM recorded stopping', s.vm?.state === 'stopping'],
    ['QEMU runs it', s.qemuPid !== undefined && s.runState === 'running'],
    ['an address held', s.address !== undefined],
  ],
  'the VM recorded stopping with its address, and no QEMU': (s) => [
    ['the VM recorded stopping', s.vm?.state === 'stopping'],
    ['no QEMU runs it', s.qemuPid === undefined],
    ['an address still held', s.address !== undefined],
  ],
  'no QEMU, and the VM still recorded': (s) => [
    ['the VM still recorded', s.vm !== undefined],
    ['no QEMU runs it', s.qemuPid === undefined],
    ['its folder still there', s.vmFolders.length === 1],
  ],
  'no VM row, and its folder still there': (s) => [
    ['no VM row', s.vm === undefined],
    ['its folder still there', s.vmFolders.length === 1],
  ],
  'the image under its temporary name only, and no disk row': (s) => [
    ['no disk row', s.disk === undefined],
    ['only the temporary image in the disk folder', pendingOf(s) !== undefined && JSON.stringify(s.diskFiles) === JSON.stringify([pendingOf(s)])],
  ],
  'the image in place, and no disk row': (s) => [
    ['no disk row', s.disk === undefined],
    ['one image, not under its temporary name', s.diskFiles.length === 1 && s.diskFiles[0] !== pendingOf(s)],
  ],
  'QEMU holding the disk file only, the disk recorded available': (s) => [
    diskHolds(s, 'file'),
    ['the disk recorded available', s.disk?.state === 'available'],
  ],
  'QEMU holding the disk file and format, no device, the disk recorded available': (s) => [
    diskHolds(s, 'format', 'file'),
    ['the disk recorded available', s.disk?.state === 'available'],
  ],
  'QEMU holding the disk as a device, the disk recorded available': (s) => [
    diskHolds(s, 'device', 'format', 'file'),
    ['the disk recorded available', s.disk?.state === 'available'],
  ],
  'no QEMU, the disk recorded available': (s) => [
    ['no QEMU runs the VM', s.qemuPid === undefined],
    ['the disk recorded available', s.disk?.state === 'available'],
  ],
  'QEMU holding the disk file and format, the disk recorded attached': (s) => [
    ['QEMU holds the disk\'s format and file nodes', s.diskInQemu.includes(`drive-${String(s.disk?.id)}`) && s.diskInQemu.includes(`file-${String(s.disk?.id)}`)],
    ['the disk recorded attached', s.disk?.state === 'attached'],
  ],
  'QEMU holding the disk file and format but no device, the disk recorded attached': (s) => [
    diskHolds(s, 'format', 'file'),
    ['the disk recorded attached', s.disk?.state === 'attached'],
  ],
  'QEMU holding the disk file only, the disk recorded attached': (s) => [
    diskHolds(s, 'file'),
    ['the disk recorded attached', s.disk?.state === 'attached'],
  ],
  'QEMU holding nothing of the disk, the disk recorded attached': (s) => [
    diskHolds(s),
    ['QEMU runs the VM', s.qemuPid !== undefined],
    ['the disk recorded attached', s.disk?.state === 'attached'],
  ],
  'the image moved aside, the disk still recorded': (s) => [
    ['the disk still recorded', s.disk !== undefined],
    ['only the moved-aside image in the disk folder', pendingOf(s) !== undefined && JSON.stringify(s.diskFiles) === JSON.stringify([pendingOf(s)]) && fileOf(s) !== pendingOf(s)],
  ],
  'the image moved aside, and no disk row': (s) => [
    ['no disk row', s.disk === undefined],
    ['only the moved-aside image in the disk folder', pendingOf(s) !== undefined && JSON.stringify(s.diskFiles) === JSON.stringify([pendingOf(s)])],
  ],
  'the tap device on the bridge, and no reservation yet': async (s, world) => [
    ['the VM\'s tap on the bridge', await tapOnBridge(world, s)],
    ['no reservation for its MAC', !(await reserved(world, s))],
  ],
  'no tap device, and the reservation still there': async (s, world) => [
    ['no tap of the VM on the bridge', !(await tapOnBridge(world, s))],
    ['the reservation for its MAC still there', await reserved(world, s)],
  ],
};

export const MOMENT_NAMES = Object.keys(MOMENTS);
export const momentPattern = new RegExp(MOMENT_NAMES.sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'));

/**
 * What the moment claims and is not so, in words (empty when all holds), and
 * the picture it was judged on. The intent journal must hold the one operation
 * the point belongs to: vman died inside it.
 */
export async function momentFlaws(world: VmanWorld, moment: string, operation: string): Promise<{ flaws: string[]; seen: string }> {
  const judge = MOMENTS[moment];
  if (!judge) throw new Error(`no such moment: ${moment}`);
  const s = await look(world);
  const claims: Claim[] = [['the journal holds the operation that was cut short', JSON.stringify(s.intents.map((i) => String(i.op))) === JSON.stringify([operation])], ...(await judge(s, world))];
  return { flaws: claims.filter(([, ok]) => !ok).map(([what]) => what), seen: describe(s) };
}

/** Whether the guest agent answers within a moment (guest-sync, then a ping): the guest is up. */
async function agentAnswers(s: Seen): Promise<boolean> {
  if (!s.vm) return false;
  return withGuestAgent(String(s.vm.storage_dir), async (ga) => {
    await ga.ping(500);
    return true;
  }, 500).catch(() => false);
}

async function tapOnBridge(world: VmanWorld, s: Seen): Promise<boolean> {
  const tap = `vt${String(s.vm?.id ?? '').replace(/^vm-/, '')}`;
  return (await bridgePorts(scenarioNetns(world), BRIDGE_NET.bridge)).some((p) => p.ifname === tap);
}

async function reserved(world: VmanWorld, s: Seen): Promise<boolean> {
  const mac = String(s.vm?.mac ?? '').toLowerCase();
  return (await reservationsInDnsmasq(world)).some((r) => r.mac.toLowerCase() === mac);
}
