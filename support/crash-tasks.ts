// The vocabulary of the @crash feature: the operations a user asks of vman,
// how each is set up and asked for, what "done" means for it, and the picture
// of everything (records, QEMU, files, data) taken before it was asked, to
// prove an operation cut short was undone. Evidence comes from the suite's
// own readers: sqlite3, /proc, QMP on the second monitor, qemu-io, the files.
import { randomInt } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { cloneWarm, createVm, deleteVm, expectStatus, vmAction } from './vm-tasks.ts';
import { attachDisk, createDisk, deleteDisk, detachDisk } from './disk-tasks.ts';
import { qemuOfVm, qemusUnder } from './proc-reader.ts';
import { qemuBlockView } from './qmp-reader.ts';
import { serveInNetns, startVmanInNetns } from './bridge-vman.ts';
import { scenarioVmFolders } from './warm-start.ts';
import type { Row } from './db-reader.ts';
import { sha256File } from './file-digest.ts';

/** The VM and the disk every crash scenario is about. */
export const VM = 'app';
export const DISK = 'data';

/** What the set-up does, in order, before the operation is asked for. */
type SetupStep = 'create the VM' | 'create the disk' | 'start the VM' | 'attach the disk' | 'stop the VM' | 'snapshot the VM'
  | 'snapshot a running origin' | 'clone the VM from it' | 'clone the VM from the warm snapshot';

/** The VM a clone is made from (the clone is the scenario's VM). */
export const ORIGIN = 'origin';

/** The snapshot the snapshot and revert operations make and go back to. */
export const SNAPSHOT = 'warm';

// A disk is attached to a running VM (a hot-plug) or to one that ran before: vman refuses disks to a VM never started.
const RUNNING_WITH_DISK: SetupStep[] = ['create the VM', 'create the disk', 'start the VM', 'attach the disk'];

interface Operation {
  setup: SetupStep[];
  /** vman in bridge mode, in a network namespace of the scenario's own. */
  bridge?: boolean;
  request(world: VmanWorld): Promise<Response<unknown>>;
  /** The answer of a request that went through. */
  status: number;
  /** Proof, from the suite's own readers, that it happened. */
  done(world: VmanWorld): Promise<void>;
}

export const OPERATIONS = {
  'create a VM': { setup: [], status: 201, request: (w) => post(w, 'api/v1/vms', { name: VM, template: 'small' }), done: vmIs('created') },
  'start the VM': { setup: ['create the VM'], status: 200, request: (w) => vmAction(w, VM, 'start'), done: vmIs('running') },
  'start the VM on the bridge': { setup: ['create the VM'], bridge: true, status: 200, request: (w) => vmAction(w, VM, 'start'), done: vmIs('running') },
  'stop the VM': { setup: RUNNING_WITH_DISK, status: 200, request: (w) => vmAction(w, VM, 'stop'), done: vmIs('stopped') },
  'stop the VM on the bridge': { setup: ['create the VM', 'start the VM'], bridge: true, status: 200, request: (w) => vmAction(w, VM, 'stop'), done: vmIs('stopped') },
  'restart the VM': { setup: RUNNING_WITH_DISK, status: 200, request: (w) => vmAction(w, VM, 'restart'), done: vmIs('running') },
  'delete the VM': { setup: RUNNING_WITH_DISK, status: 204, request: (w) => deleteVm(w, VM, { force: true }), done: vmIsGone },
  'create a disk': { setup: [], status: 201, request: (w) => post(w, 'api/v1/disks', { name: DISK, size_gb: 1 }), done: diskIs('available') },
  'attach the disk to the running VM': { setup: ['create the VM', 'create the disk', 'start the VM'], status: 200, request: (w) => attachDisk(w, DISK, VM), done: diskIs('attached') },
  'attach the disk to the stopped VM': { setup: ['create the VM', 'create the disk', 'start the VM', 'stop the VM'], status: 200, request: (w) => attachDisk(w, DISK, VM), done: diskIs('attached') },
  'detach the disk from the running VM': { setup: RUNNING_WITH_DISK, status: 200, request: (w) => detachDisk(w, DISK), done: diskIs('available') },
  'delete the disk': { setup: ['create the disk'], status: 204, request: (w) => deleteDisk(w, DISK), done: diskIsGone },
  'snapshot the running VM': {
    setup: RUNNING_WITH_DISK, status: 201, request: (w) => post(w, `api/v1/vms/${w.idOf(VM)}/snapshots`, { name: SNAPSHOT }), done: snapshotIsRecorded,
  },
  'start the clone': {
    setup: ['snapshot a running origin', 'clone the VM from it'], status: 200, request: (w) => vmAction(w, VM, 'start'), done: vmIs('running'),
  },
  'revert the running VM': {
    setup: [...RUNNING_WITH_DISK, 'snapshot the VM'], status: 200,
    request: (w) => w.api().http.post(`api/v1/vms/${w.idOf(VM)}/snapshots/${SNAPSHOT}/restore`, { searchParams: { force: 'true' } }), done: vmIs('running'),
  },
} satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

const READY_TO = /^everything is ready to (.+), with vman set to die at "[^"]+"$/;

/**
 * Whether a crash example's set-up starts a VM that is not the subject of the
 * crash (stop, restart, delete, attach, detach, snapshot, revert): that VM may
 * come up as a clone of the worker's warm snapshot. A start cut short, and
 * anything on the bridge (no clone from memory there), boots cold.
 */
export function crashSetupClones(stepText: string): boolean {
  const name = READY_TO.exec(stepText)?.[1];
  if (name === undefined || !(name in OPERATIONS)) return false;
  const op: Operation = OPERATIONS[name as OperationName];
  return !op.bridge && (op.setup.includes('start the VM') || op.setup.includes('snapshot a running origin'));
}

/**
 * The set-up as a scenario that clones runs it: the VM is made as a clone of
 * the worker's warm snapshot instead of from the template, and a clone's
 * origin is that snapshot instead of a VM booted and snapshotted here.
 */
function setupSteps(op: Operation, clonesWarm: boolean): SetupStep[] {
  if (!clonesWarm) return op.setup;
  return op.setup.flatMap((step): SetupStep[] =>
    step === 'snapshot a running origin' ? []
      : step === 'clone the VM from it' || step === 'create the VM' ? ['clone the VM from the warm snapshot']
        : [step]);
}

/** What a stop, a delete or a detach cut short must have become once vman is back. */
export const OUTCOMES = {
  'the VM is stopped': vmIs('stopped'),
  'the VM is gone': vmIsGone,
  'the disk is detached': diskIs('available'),
  'the disk is gone': diskIsGone,
} satisfies Record<string, (w: VmanWorld) => Promise<void>>;

export type OutcomeName = keyof typeof OUTCOMES;

/** Cucumber parameter regexps for the closed sets above: a typo is an undefined step. */
export const operationPattern = new RegExp(alternatives(Object.keys(OPERATIONS)));
export const outcomePattern = new RegExp(alternatives(Object.keys(OUTCOMES)));

function alternatives(names: string[]): string {
  return names.sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

function post(world: VmanWorld, url: string, json: object): Promise<Response<unknown>> {
  return world.api().http.post(url, { json });
}

// ---- vman, as a separate process that can die -------------------------------

// The crash points each set-up step passes through.
const PASSES: Record<SetupStep, string[]> = {
  'create the VM': ['vm.create.'],
  'create the disk': ['disk.create.'],
  'start the VM': ['vm.start.', 'network.setup.'],
  'attach the disk': ['disk.attach.'],
  'stop the VM': ['vm.stop.', 'network.release.'],
  'snapshot the VM': ['vm.snapshot.'],
  'snapshot a running origin': ['vm.create.', 'vm.start.', 'network.setup.', 'vm.snapshot.'],
  'clone the VM from it': ['vm.create.'],
  'clone the VM from the warm snapshot': ['vm.create.'],
};

/** Whether prepare() passes this crash point itself: arming it would kill vman during the set-up. */
function setupPasses(setup: SetupStep[], point: string): boolean {
  return setup.some((step) => PASSES[step].some((prefix) => point.startsWith(prefix)));
}

/** Starts (or starts again) the scenario's vman as a separate process, in its namespace if it has one. */
export async function startVmanAgain(world: VmanWorld, crashAt?: string): Promise<void> {
  if (world.notes.netns !== undefined) await serveInNetns(world, crashAt ? { VMAN_CRASH_AT: crashAt } : {});
  else await world.startVman({ child: true, ...(crashAt ? { crashAt } : {}) });
}

/**
 * Brings vman up (set to die at `point`) with everything the operation needs.
 * Where the set-up itself would pass the point, it runs on a vman that is not
 * set to die, which is then shut down and started again set to.
 */
export async function prepare(world: VmanWorld, name: OperationName, point: string): Promise<void> {
  const op: Operation = OPERATIONS[name];
  const setup = setupSteps(op, world.clonesWarm);
  const armedLater = setupPasses(setup, point);
  if (op.bridge) {
    await startVmanInNetns(world, armedLater ? {} : { crashAt: point });
  } else {
    await world.startVman({ child: true, env: {}, ...(armedLater ? {} : { crashAt: point }) });
  }
  for (const step of setup) {
    switch (step) {
      case 'create the VM': await createVm(world, VM, 'small'); break;
      case 'clone the VM from the warm snapshot': await cloneWarm(world, VM); break;
      case 'create the disk':
        await createDisk(world, DISK, 1);
        await writeMarker(world, DISK);
        break;
      case 'start the VM': expectStatus(await vmAction(world, VM, 'start'), 200, `start ${VM}`); break;
      case 'attach the disk': expectStatus(await attachDisk(world, DISK, VM), 200, `attach ${DISK} to ${VM}`); break;
      case 'stop the VM': expectStatus(await vmAction(world, VM, 'stop'), 200, `stop ${VM}`); break;
      case 'snapshot the VM': expectStatus(await post(world, `api/v1/vms/${world.idOf(VM)}/snapshots`, { name: SNAPSHOT }), 201, `snapshot ${VM}`); break;
      case 'snapshot a running origin':
        await createVm(world, ORIGIN, 'small');
        expectStatus(await vmAction(world, ORIGIN, 'start'), 200, `start ${ORIGIN}`);
        expectStatus(await post(world, `api/v1/vms/${world.idOf(ORIGIN)}/snapshots`, { name: SNAPSHOT }), 201, `snapshot ${ORIGIN}`);
        break;
      case 'clone the VM from it': {
        const vm = expectStatus<{ id: string }>(await post(world, 'api/v1/vms', { name: VM, from_snapshot: { vm: ORIGIN, name: SNAPSHOT } }), 201, `clone ${VM}`);
        world.ids.set(VM, vm.id);
        break;
      }
    }
  }
  if (armedLater) {
    await world.child!.stop();
    await startVmanAgain(world, point);
  }
}

// ---- what "done" means, read from the database, /proc, QMP and the files ----

async function recordedVmRow(world: VmanWorld): Promise<Row | undefined> {
  return world.db().one('SELECT * FROM vms WHERE name = ?', [VM]);
}

function vmIs(state: 'created' | 'running' | 'stopped'): (w: VmanWorld) => Promise<void> {
  return async (world) => {
    const vm = await recordedVmRow(world);
    if (!vm) throw new Error(`the database has no VM ${VM}; expected it ${state}`);
    const proc = await qemuOfVm(String(vm.id), String(vm.storage_dir));
    const address = await world.db().addressOf(String(vm.id));
    const seen = `recorded ${String(vm.state)}${vm.state_reason ? ` (${String(vm.state_reason)})` : ''}, QEMU ${proc ? `pid ${proc.pid}` : 'none'}, address ${address ?? 'none'}`;
    const ok = state === 'running'
      ? vm.state === 'running' && proc !== undefined && proc.pid === vm.pid && address !== undefined
      : vm.state === state && proc === undefined && vm.pid === null && address === undefined;
    if (!ok) throw new Error(`expected VM ${VM} ${state}, saw: ${seen}`);
  };
}

async function vmIsGone(world: VmanWorld): Promise<void> {
  const vm = await recordedVmRow(world);
  const folders = await scenarioVmFolders(world);
  const qemus = await qemusUnder(path.join(world.api().storagePath, 'vms'));
  const disk = await world.db().one('SELECT state, vm_id FROM disks WHERE name = ?', [DISK]);
  const seen = `row ${vm ? String(vm.state) : 'none'}, folders ${folders.join(', ') || 'none'}, QEMU ${qemus.map((p) => p.pid).join(', ') || 'none'}, disk ${disk ? `${String(disk.state)} to ${String(disk.vm_id)}` : 'none'}`;
  if (vm || folders.length > 0 || qemus.length > 0 || disk?.state !== 'available' || disk.vm_id !== null) {
    throw new Error(`expected VM ${VM} gone (no row, folder or QEMU) and its disk available, saw: ${seen}`);
  }
}

function diskIs(state: 'available' | 'attached'): (w: VmanWorld) => Promise<void> {
  return async (world) => {
    const disk = await world.db().one('SELECT * FROM disks WHERE name = ?', [DISK]);
    if (!disk) throw new Error(`the database has no disk ${DISK}; expected it ${state}`);
    const vm = await recordedVmRow(world);
    const held = vm?.state === 'running' ? await qemuBlockView(String(vm.storage_dir)) : undefined;
    const inQemu = held ? [...held.devices, ...held.nodes].filter((n) => n.endsWith(String(disk.id))) : [];
    const file = await stat(String(disk.path)).then(() => true, () => false);
    const seen = `recorded ${String(disk.state)} to ${String(disk.vm_id)}, QEMU holds ${inQemu.join(', ') || 'nothing of it'}, file ${file ? 'present' : 'missing'}`;
    const ok = state === 'attached'
      ? disk.state === 'attached' && disk.vm_id === vm?.id && (vm?.state !== 'running' || inQemu.length === 3) && file
      : disk.state === 'available' && disk.vm_id === null && inQemu.length === 0 && file;
    if (!ok) throw new Error(`expected disk ${DISK} ${state}${state === 'attached' ? ` to ${VM}` : ''}, saw: ${seen}`);
  };
}

async function diskIsGone(world: VmanWorld): Promise<void> {
  const disk = await world.db().one('SELECT * FROM disks WHERE name = ?', [DISK]);
  const files = await readdir(path.join(world.api().storagePath, 'disks'));
  if (disk || files.length > 0) throw new Error(`expected disk ${DISK} gone (no row, no file), saw: row ${disk ? String(disk.state) : 'none'}, files ${files.join(', ') || 'none'}`);
}

// ---- the data on the disks ------------------------------------------------------

interface Marker { offset: number; length: number; pattern: number }

/** Writes a pattern into the disk's image with qemu-io (no VM uses it yet), to read back after the crash. */
export async function writeMarker(world: VmanWorld, name: string): Promise<void> {
  const disk = await world.db().one('SELECT path FROM disks WHERE name = ?', [name]);
  if (!disk) throw new Error(`no disk ${name} to write to`);
  const marker: Marker = { offset: 1 << 20, length: 64 << 10, pattern: randomInt(1, 255) };
  await execa('qemu-io', ['-f', 'qcow2', '-c', `write -P ${marker.pattern} ${marker.offset} ${marker.length}`, String(disk.path)]);
  world.diskNoted(name).imageMarker = marker;
}

/** Reads every marker back with qemu-io (-U: a running QEMU may hold the image); lists what does not read back. */
export async function damagedMarkers(world: VmanWorld): Promise<string[]> {
  const problems: string[] = [];
  for (const [name, notes] of world.diskNotes) {
    const m = notes.imageMarker;
    if (!m) continue;
    const disk = await world.db().one('SELECT path FROM disks WHERE name = ?', [name]);
    if (!disk) continue; // deleted on purpose; its absence is checked where that is the point
    const r = await execa('qemu-io', ['-f', 'qcow2', '-r', '-U', '-c', `read -P ${m.pattern} ${m.offset} ${m.length}`, String(disk.path)], { reject: false });
    if (r.exitCode !== 0 || /failed/i.test(r.stdout)) problems.push(`disk ${name}: ${r.stdout.trim() || r.stderr.trim()}`);
  }
  return problems;
}

// ---- everything, before and after ---------------------------------------------

/** What is compared to prove an operation was undone. */
export interface Picture {
  /** Every table, rows without updated_at (a row put back is written again). */
  database: Record<string, Row[]>;
  /** Per VM: its QEMU's pid and what QEMU holds of block storage. */
  qemu: Record<string, { pid: number | null; devices: string[]; nodes: string[] }>;
  /** Every file under the storage folder, with a content hash where content is state. */
  files: Record<string, string>;
}

// Logs and lock files say when, not what: they are not part of the state.
const NOT_STATE = new Set(['serial.log', 'vman.db', 'vman.db-wal', 'vman.db-shm', 'vman.lock', 'vman.owner', 'dnsmasq.pid', 'dnsmasq.log', 'leases']);

export async function picture(world: VmanWorld): Promise<Picture> {
  const database: Picture['database'] = {};
  for (const t of ['templates', 'vms', 'disks', 'address_allocations', 'intents', 'schema_migrations']) {
    database[t] = (await world.db().all(`SELECT * FROM ${t} ORDER BY 1`)).map(({ updated_at: _u, applied_at: _a, ...r }) => r);
  }
  const qemu: Picture['qemu'] = {};
  for (const vm of await world.db().all('SELECT id, name, storage_dir FROM vms')) {
    const proc = await qemuOfVm(String(vm.id), String(vm.storage_dir));
    const block = proc ? await qemuBlockView(String(vm.storage_dir)) : { devices: [], nodes: [] };
    qemu[String(vm.name)] = { pid: proc?.pid ?? null, devices: block.devices, nodes: block.nodes };
  }
  return { database, qemu, files: await filesUnder(world.api().storagePath) };
}

async function filesUnder(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      const rel = path.relative(root, full);
      if (NOT_STATE.has(e.name)) continue;
      if (e.isDirectory()) {
        out[`${rel}/`] = 'folder';
        await walk(full);
      } else if (e.isSocket()) {
        out[rel] = 'socket';
      } else {
        out[rel] = `sha256 ${await sha256File(full)}`;
      }
    }
  };
  await walk(root);
  return out;
}

/** The snapshot is recorded with memory, and its folder holds the saved state (sqlite3 and the file system). */
async function snapshotIsRecorded(world: VmanWorld): Promise<void> {
  const row = await world.db().one('SELECT s.dir, s.with_memory FROM snapshots s JOIN vms v ON v.id = s.vm_id WHERE v.name = ? AND s.name = ?', [VM, SNAPSHOT]);
  if (!row) throw new Error(`no snapshot ${SNAPSHOT} of ${VM} is recorded`);
  const state = await stat(path.join(String(row.dir), 'memory.state')).catch(() => undefined);
  if (Number(row.with_memory) !== 1 || !state || state.size === 0) throw new Error(`snapshot ${SNAPSHOT} is recorded ${Number(row.with_memory) === 1 ? 'with' : 'without'} memory, its state file ${state ? `${state.size} bytes` : 'missing'}`);
}
