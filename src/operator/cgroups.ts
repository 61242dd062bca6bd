// Confinement (issue "Confinement", item 5): each VM's QEMU in a cgroup of its
// own with a memory limit and a pids limit, on whichever layout the host has.
// What vman may do is never guessed from permissions or mount flags: detection
// makes and removes a test cgroup where the VM cgroups will go.
//
// - cgroup v2 (the unified hierarchy at /sys/fs/cgroup with memory and pids):
//   VM cgroups go in `vman-vms/<vmId>` beside vman's own cgroup, under its
//   parent. Not under vman's own cgroup: v2 lets a cgroup hand controllers to
//   its children only while it holds no process itself ("no internal
//   processes"), and vman is in it. Moving vman into a leaf would lift that,
//   but it moves a running process (and whatever shares its cgroup, a login
//   shell say) behind its back. The price: a limit on vman's own cgroup
//   (MemoryMax= of vman.service) does not cover the VMs, one on its parent
//   (the slice) does; and VMs, which outlive vman (KillMode=process), are not
//   the unit's processes.
// - cgroup v1 (hybrid hosts: memory and pids hierarchies on a tmpfs at
//   /sys/fs/cgroup, beside an empty cgroup2 at /sys/fs/cgroup/unified): VM
//   cgroups go in `vman/<vmId>` under the cgroup vman is in, per hierarchy, so
//   that a limit above vman (a harness's, a unit's) covers them too. v1 has no
//   internal-process rule.
// - neither: `none`, with the reason, for `vman doctor`.
// The `vman-vms` and `vman` folders stay once made (an empty cgroup costs
// nothing); vman removes only VM cgroups and detection's test cgroup.
import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assertId } from '../names.ts';
import { pollUntil, TerminalStateError, WaitTimeoutError } from '../poll.ts';

export type CgroupSupport =
  | { kind: 'v2'; base: string } // directory under which VM cgroups are made
  | { kind: 'v1'; memoryBase: string; pidsBase: string }
  | { kind: 'none'; why: string };

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

export interface VmCgroup {
  readonly vmId: string;
  readonly paths: string[];
  /** moves a process (all its threads) in */
  addProcess(pid: number): Promise<void>;
}

/** One line of /proc/<pid>/cgroup: `hierarchy-id:controllers:path` (v2: `0::path`). */
export interface ProcCgroup {
  hierarchy: string;
  controllers: string[];
  path: string;
}

/**
 * What QEMU needs beyond the guest's RAM: its own heap, device emulation,
 * block-layer caches, a migration's buffers while a snapshot is saved and,
 * under TCG, the translation cache (bounded to TCG_TB_SIZE_MB, 256, in
 * qemu-command.ts). Measured here: a Debian guest of 1024 MB, saving its
 * memory to a snapshot, reached 1308 MB of anonymous memory and was killed
 * under a 256 MB allowance (the cache was 1 GB then).
 */
export const QEMU_MEMORY_OVERHEAD_MB = 512;
/** Tasks, not processes: QEMU's main loop, RCU, one thread per vCPU, its I/O worker pool (up to 64 per context). */
export const QEMU_PIDS_MAX = 256;

const MiB = 2 ** 20;
const V2_BASE = 'vman-vms';
const V1_BASE = 'vman';
const CONTROLLERS = ['memory', 'pids'] as const;

export function limitsForTemplate(memoryMb: number): CgroupLimits {
  if (!Number.isInteger(memoryMb) || memoryMb <= 0) throw new RangeError(`a template's memory is a positive whole number of MiB, not ${memoryMb}`);
  return { memoryBytes: (memoryMb + QEMU_MEMORY_OVERHEAD_MB) * MiB, pids: QEMU_PIDS_MAX };
}

const detected = new Map<string, Promise<CgroupSupport>>();

/** What this host offers, probed by really creating and removing a test cgroup (not guessed from permissions). Cached per process. */
export function detectCgroups(opts: { procRoot?: string; cgroupRoot?: string; fresh?: boolean } = {}): Promise<CgroupSupport> {
  const procRoot = path.resolve(opts.procRoot ?? '/proc');
  const cgroupRoot = path.resolve(opts.cgroupRoot ?? '/sys/fs/cgroup');
  const key = `${procRoot}\0${cgroupRoot}`;
  let support = detected.get(key);
  if (support === undefined || opts.fresh) {
    support = detect(procRoot, cgroupRoot).catch((err: unknown): CgroupSupport => ({ kind: 'none', why: explain(err) }));
    detected.set(key, support);
  }
  return support;
}

async function detect(procRoot: string, cgroupRoot: string): Promise<CgroupSupport> {
  const own = parseProcCgroup(await readFile(path.join(procRoot, 'self/cgroup'), 'utf8'));
  const mounts = await readCgroupMounts(procRoot, cgroupRoot);
  // The unified hierarchy mounted at the root itself: a hybrid host has a tmpfs there.
  const rootControllers = await readWords(path.join(cgroupRoot, 'cgroup.controllers'));
  if (rootControllers !== undefined) return detectV2(cgroupRoot, rootControllers, own, mounts);
  return detectV1(procRoot, cgroupRoot, own, mounts);
}

async function detectV2(cgroupRoot: string, rootControllers: string[], own: ProcCgroup[], mounts: CgroupMount[]): Promise<CgroupSupport> {
  const missing = CONTROLLERS.filter((c) => !rootControllers.includes(c));
  if (missing.length > 0) throw new Error(`cgroup v2 at ${cgroupRoot} offers no ${missing.join(' and ')} controller (it offers: ${rootControllers.join(' ') || 'none'})`);
  const line = own.find((l) => l.hierarchy === '0' && l.controllers.length === 0);
  if (line === undefined) throw new Error('/proc/self/cgroup has no cgroup v2 line (0::/path)');
  const mount = mounts.find((m) => m.fsType === 'cgroup2' && m.mountPoint === cgroupRoot);
  const ownDir = dirOf(cgroupRoot, mount?.root ?? '/', line.path);
  if (ownDir === undefined) throw new Error(`vman's cgroup ${line.path} is outside the part of the hierarchy ${cgroupRoot} shows (${mount?.root})`);
  const base = path.join(ownDir === cgroupRoot ? cgroupRoot : path.dirname(ownDir), V2_BASE);
  await prepareV2Base(base);
  await probe([base]);
  return { kind: 'v2', base };
}

async function detectV1(procRoot: string, cgroupRoot: string, own: ProcCgroup[], mounts: CgroupMount[]): Promise<CgroupSupport> {
  const bases: string[] = [];
  for (const c of CONTROLLERS) {
    const line = own.find((l) => l.controllers.includes(c));
    if (line === undefined) throw new Error(`no cgroup v2 at ${cgroupRoot}, and no cgroup v1 ${c} hierarchy (${procRoot}/self/cgroup names none)`);
    const mount = mounts.find((m) => m.fsType === 'cgroup' && m.options.includes(c));
    const mountPoint = mount?.mountPoint ?? path.join(cgroupRoot, c);
    const ownDir = dirOf(mountPoint, mount?.root ?? '/', line.path);
    if (ownDir === undefined || !(await isDirectory(ownDir))) {
      throw new Error(`vman's ${c} cgroup ${line.path} is not to be found under ${mountPoint}${mount ? ` (mounted from ${mount.root})` : ''}`);
    }
    bases.push(path.join(ownDir, V1_BASE));
  }
  for (const base of bases) await mkdirOnce(base);
  await probe(bases);
  return { kind: 'v1', memoryBase: bases[0]!, pidsBase: bases[1]! };
}

/** Makes and removes a test cgroup in each base: the proof that VM cgroups can be made and removed there. */
async function probe(bases: string[]): Promise<void> {
  const made: string[] = [];
  let failure: string | undefined;
  for (const base of bases) {
    const dir = path.join(base, `probe-${process.pid}`);
    try {
      await mkdirOnce(dir);
      made.push(dir);
    } catch (err) {
      failure = `cannot create a cgroup in ${base}: ${explain(err)}`;
      break;
    }
  }
  for (const dir of made) {
    await rmdir(dir).catch((err: unknown) => {
      failure ??= `created the test cgroup ${dir} but cannot remove it: ${explain(err)}`;
    });
  }
  if (failure !== undefined) throw new Error(failure);
}

/** v2: the base made, and memory and pids handed down to it and from it to the VM cgroups. */
async function prepareV2Base(base: string): Promise<void> {
  const parent = path.dirname(base);
  const available = (await readWords(path.join(parent, 'cgroup.controllers'))) ?? [];
  const missing = CONTROLLERS.filter((c) => !available.includes(c));
  if (missing.length > 0) throw new Error(`${parent} is not given ${missing.join(' and ')} by its parent (its cgroup.controllers: ${available.join(' ') || 'none'})`);
  await enableForChildren(parent);
  await mkdirOnce(base);
  await enableForChildren(base);
}

async function enableForChildren(dir: string): Promise<void> {
  const file = path.join(dir, 'cgroup.subtree_control');
  const enabled = (await readWords(file)) ?? [];
  const wanted = CONTROLLERS.filter((c) => !enabled.includes(c));
  if (wanted.length === 0) return;
  try {
    await writeFile(file, wanted.map((c) => `+${c}`).join(' '));
  } catch (err) {
    const rule = code(err) === 'EBUSY' ? ` (${dir} holds processes itself: cgroup v2 lets only a cgroup without processes hand controllers to its children)` : '';
    throw new Error(`cannot enable ${wanted.join(' and ')} for the children of ${dir}: ${explain(err)}${rule}`, { cause: err });
  }
}

/** Makes (or reuses) the VM's cgroup with the limits set. Returns its path(s). */
export async function createVmCgroup(support: CgroupSupport, vmId: string, limits: CgroupLimits): Promise<VmCgroup> {
  assertId('VM id', vmId);
  for (const [what, n] of [['memory limit', limits.memoryBytes], ['pids limit', limits.pids]] as const) {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`a VM's ${what} is a positive whole number, not ${n}`);
  }
  if (support.kind === 'none') throw new Error(`no cgroup for VM ${vmId}: ${support.why}`);
  if (support.kind === 'v2') {
    await prepareV2Base(support.base);
    const dir = path.join(support.base, vmId);
    await mkdirOnce(dir);
    await writeControl(dir, 'memory.max', String(limits.memoryBytes));
    // Memory and swap together, as memsw on v1: a guest cannot grow past its limit into swap.
    if (await exists(path.join(dir, 'memory.swap.max'))) await writeControl(dir, 'memory.swap.max', '0');
    await writeControl(dir, 'pids.max', String(limits.pids));
    return vmCgroup(vmId, [dir]);
  }
  const [memoryDir, pidsDir] = leafDirs(support, vmId) as [string, string];
  for (const dir of [support.memoryBase, support.pidsBase, memoryDir, pidsDir]) await mkdirOnce(dir);
  await setMemoryV1(memoryDir, limits.memoryBytes);
  await moveChargeOnImmigrate(memoryDir);
  await writeControl(pidsDir, 'pids.max', String(limits.pids));
  return vmCgroup(vmId, [memoryDir, pidsDir]);
}

/** memory.memsw (memory and swap) may never be below memory alone: raised before the limit, lowered after it. */
async function setMemoryV1(dir: string, bytes: number): Promise<void> {
  if (!(await exists(path.join(dir, 'memory.memsw.limit_in_bytes')))) return writeControl(dir, 'memory.limit_in_bytes', String(bytes));
  const current = BigInt((await readFile(path.join(dir, 'memory.limit_in_bytes'), 'utf8')).trim());
  const order = BigInt(bytes) > current ? ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes'] : ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'];
  for (const file of order) await writeControl(dir, file, String(bytes));
}

/**
 * Pages QEMU touched before it was moved in move with it, counted against the
 * VM's limit. Linux 6.13 and later refuse (EINVAL; the file stays and reads 0):
 * charge moving is gone, and such pages stay charged where QEMU started, which
 * is vman's own cgroup, above the VM's.
 */
async function moveChargeOnImmigrate(dir: string): Promise<void> {
  const file = path.join(dir, 'memory.move_charge_at_immigrate');
  if (!(await exists(file))) return;
  try {
    await writeFile(file, '1');
  } catch (err) {
    if (code(err) !== 'EINVAL') throw new Error(`cannot write 1 to ${file}: ${explain(err)}`, { cause: err });
  }
}

function vmCgroup(vmId: string, paths: string[]): VmCgroup {
  return {
    vmId,
    paths: Object.freeze([...paths]) as string[],
    async addProcess(pid: number): Promise<void> {
      if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`not a process id: ${pid}`);
      // cgroup.procs moves the whole process, every thread; `tasks` (v1) would move one thread.
      for (const dir of paths) await writeControl(dir, 'cgroup.procs', String(pid));
    },
  };
}

/**
 * Removes the VM's cgroup(s) once no process is left in them; true if removed or absent.
 * Waits up to timeoutMs for the kernel to let go (EBUSY right after the last process exited);
 * false if it did not. Any other refusal is thrown.
 */
export async function removeVmCgroup(support: CgroupSupport, vmId: string, timeoutMs = 5_000): Promise<boolean> {
  assertId('VM id', vmId);
  for (const dir of leafDirs(support, vmId)) {
    try {
      await pollUntil(`the cgroup ${dir} removed`, async () => {
        try {
          await rmdir(dir);
          return { done: true, value: undefined };
        } catch (err) {
          if (code(err) === 'ENOENT') return { done: true, value: undefined };
          if (code(err) !== 'EBUSY') throw new TerminalStateError(`cannot remove the cgroup ${dir}: ${explain(err)}`);
          const procs = (await readWords(path.join(dir, 'cgroup.procs')).catch(() => undefined)) ?? [];
          return { done: false, seen: procs.length > 0 ? `EBUSY, processes ${procs.join(' ')} in it` : 'EBUSY, no process left in it' };
        }
      }, { timeoutMs, intervalMs: 20 });
    } catch (err) {
      if (err instanceof WaitTimeoutError) return false;
      throw err;
    }
  }
  return true;
}

/** Where a process is: parsed /proc/<pid>/cgroup. */
export async function processCgroups(pid: number): Promise<ProcCgroup[]> {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`not a process id: ${pid}`);
  return parseProcCgroup(await readFile(`/proc/${pid}/cgroup`, 'utf8'));
}

export function parseProcCgroup(text: string): ProcCgroup[] {
  return text.split('\n').flatMap((line) => {
    // The path may hold colons: only the first two separate.
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    return m ? [{ hierarchy: m[1]!, controllers: m[2] ? m[2].split(',') : [], path: m[3]! }] : [];
  });
}

/** The VM cgroup's memory limit and pids.max read back from the files; undefined when it has no cgroup. "max" reads as Infinity. */
export async function readVmLimits(support: CgroupSupport, vmId: string): Promise<CgroupLimits | undefined> {
  assertId('VM id', vmId);
  if (support.kind === 'none') return undefined;
  const [memoryFile, pidsFile] = support.kind === 'v2'
    ? [path.join(support.base, vmId, 'memory.max'), path.join(support.base, vmId, 'pids.max')]
    : [path.join(support.memoryBase, vmId, 'memory.limit_in_bytes'), path.join(support.pidsBase, vmId, 'pids.max')];
  const [memoryBytes, pids] = await Promise.all([readLimit(memoryFile), readLimit(pidsFile)]);
  return memoryBytes === undefined || pids === undefined ? undefined : { memoryBytes, pids };
}

/** Human words for `vman doctor`. */
export function describeCgroups(s: CgroupSupport): string {
  switch (s.kind) {
    case 'v2':
      return `cgroup v2 memory and pids under ${s.base}`;
    case 'v1':
      return `cgroup v1 memory and pids under ${s.memoryBase} and ${s.pidsBase}`;
    case 'none':
      return `no cgroup for VMs (no memory or pids limit): ${s.why}`;
  }
}

function leafDirs(support: CgroupSupport, vmId: string): string[] {
  switch (support.kind) {
    case 'v2':
      return [path.join(support.base, vmId)];
    case 'v1':
      return [path.join(support.memoryBase, vmId), path.join(support.pidsBase, vmId)];
    case 'none':
      return [];
  }
}

interface CgroupMount {
  mountPoint: string;
  /** The part of the hierarchy the mount shows: not "/" in a container that sees its own subtree only. */
  root: string;
  fsType: string;
  options: string[];
}

/** The cgroup mounts under cgroupRoot from mountinfo; none when it is unreadable (then the usual places are assumed). */
async function readCgroupMounts(procRoot: string, cgroupRoot: string): Promise<CgroupMount[]> {
  const text = await readFile(path.join(procRoot, 'self/mountinfo'), 'utf8').catch(() => '');
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return text.split('\n').flatMap((line) => {
    // "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory": optional fields end at " - ".
    const [left, right] = line.split(' - ');
    const f = left?.split(' ');
    const [fsType, , superOptions] = right?.split(' ') ?? [];
    if (f === undefined || f.length < 5 || (fsType !== 'cgroup' && fsType !== 'cgroup2')) return [];
    const mountPoint = unescape(f[4]!);
    if (mountPoint !== cgroupRoot && !mountPoint.startsWith(`${cgroupRoot}/`)) return [];
    return [{ mountPoint, root: unescape(f[3]!), fsType, options: (superOptions ?? '').split(',') }];
  });
}

/** Where a /proc/self/cgroup path is under a mount that shows the hierarchy from mountRoot down. */
function dirOf(mountPoint: string, mountRoot: string, cgroupPath: string): string | undefined {
  if (mountRoot === '/') return path.resolve(mountPoint, `.${cgroupPath}`);
  if (cgroupPath === mountRoot) return mountPoint;
  return cgroupPath.startsWith(`${mountRoot}/`) ? path.resolve(mountPoint, `.${cgroupPath.slice(mountRoot.length)}`) : undefined;
}

/** A limit file's value; "max" (v2) and v1's "no limit" (near 2^63) read as Infinity. */
async function readLimit(file: string): Promise<number | undefined> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw err;
  }
  if (text === 'max') return Infinity;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${file} holds ${JSON.stringify(text)}, not a limit`);
  return n > Number.MAX_SAFE_INTEGER ? Infinity : n;
}

async function writeControl(dir: string, file: string, value: string): Promise<void> {
  try {
    await writeFile(path.join(dir, file), value);
  } catch (err) {
    throw new Error(`cannot write ${value} to ${path.join(dir, file)}: ${explain(err)}`, { cause: err });
  }
}

/** Words of a control file, undefined when it is absent. */
async function readWords(file: string): Promise<string[] | undefined> {
  try {
    return (await readFile(file, 'utf8')).split(/\s+/).filter(Boolean);
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** mkdir that finds an existing folder fine; never recursive, so nothing is made above a base by mistake. */
async function mkdirOnce(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    if (code(err) !== 'EEXIST') throw err;
  }
}

const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);
const isDirectory = (dir: string): Promise<boolean> => stat(dir).then((s) => s.isDirectory(), () => false);
const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

/** The error's message, and what it means here for the two refusals a host gives most. */
function explain(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  if (code(err) === 'EACCES' || code(err) === 'EPERM') return `${text} (vman is not root and has no cgroup delegated to it)`;
  if (code(err) === 'EROFS') return `${text} (the cgroup file system is mounted read-only)`;
  return text;
}
