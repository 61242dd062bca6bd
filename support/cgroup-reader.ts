// The cgroups vman makes for its VMs' QEMU processes, as the suite finds them
// itself: from /proc/<pid>/cgroup and the cgroup file system, not from vman.
// On hosts with cgroup v1 memory and pids hierarchies (these machines), a VM's
// cgroup is `vman/<vm id>` under the cgroup of the process that started it;
// with cgroup v2, `vman-vms/<vm id>` beside it. vman serve runs as a child of
// the worker, in the worker's cgroups, so both are found from the worker's own.
import { readdir, readFile, rmdir } from 'node:fs/promises';
import path from 'node:path';

const ROOT = '/sys/fs/cgroup';

export interface ProcessCgroup {
  /** v1: the controllers of the hierarchy ("memory", "pids"); v2: []. */
  controllers: string[];
  /** The cgroup's path below its hierarchy's root. */
  path: string;
  /** Its folder in the cgroup file system. */
  dir: string;
}

/** Where a process is, one entry per hierarchy (/proc/<pid>/cgroup). */
export async function cgroupsOf(pid: number | 'self'): Promise<ProcessCgroup[]> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  const out: ProcessCgroup[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const [, controllers = '', rel = ''] = line.split(':');
    const list = controllers.split(',').filter((c) => c && !c.startsWith('name='));
    const mount = list.length === 0 ? (controllers === '' ? path.join(ROOT, 'unified') : '') : path.join(ROOT, list.join(','));
    if (!mount) continue;
    out.push({ controllers: list, path: rel, dir: path.join(mount, rel) });
  }
  return out;
}

/** A cgroup's memory limit in bytes and its pids limit, read from its files (v1 or v2). */
export async function limitsOf(cgroups: ProcessCgroup[]): Promise<{ memoryBytes?: number; pids?: number }> {
  const read = async (file: string): Promise<number | undefined> => {
    const t = (await readFile(file, 'utf8').catch(() => '')).trim();
    return t === '' || t === 'max' ? undefined : Number(t);
  };
  const mem = cgroups.find((c) => c.controllers.includes('memory'));
  const pids = cgroups.find((c) => c.controllers.includes('pids'));
  const v2 = cgroups.find((c) => c.controllers.length === 0);
  const memoryBytes = mem ? await read(path.join(mem.dir, 'memory.limit_in_bytes')) : v2 ? await read(path.join(v2.dir, 'memory.max')) : undefined;
  const pidsMax = pids ? await read(path.join(pids.dir, 'pids.max')) : v2 ? await read(path.join(v2.dir, 'pids.max')) : undefined;
  return { ...(memoryBytes === undefined ? {} : { memoryBytes }), ...(pidsMax === undefined ? {} : { pids: pidsMax }) };
}

/** The folders that hold VM cgroups for vmans this worker starts: `vman` under its own v1 cgroups. */
async function vmCgroupParents(): Promise<string[]> {
  const own = await cgroupsOf('self');
  return own.filter((c) => c.controllers.includes('memory') || c.controllers.includes('pids')).map((c) => path.join(c.dir, 'vman'));
}

/** Every VM cgroup folder there now (`.../vman/vm-…`). */
export async function vmCgroupDirs(): Promise<string[]> {
  const out: string[] = [];
  for (const parent of await vmCgroupParents()) {
    for (const e of await readdir(parent).catch(() => [] as string[])) if (e.startsWith('vm-')) out.push(path.join(parent, e));
  }
  return out;
}

/** The processes in a cgroup folder now. */
export async function processesIn(dir: string): Promise<number[]> {
  const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

/**
 * Teardown: the cgroups of these VMs, once their QEMU is gone (vman removes a
 * VM's cgroup when it settles the VM; a vman killed mid-scenario cannot).
 * Returns what could not be removed.
 */
export async function removeVmCgroups(vmIds: Iterable<string>): Promise<string[]> {
  const ids = new Set(vmIds);
  const left: string[] = [];
  for (const dir of await vmCgroupDirs()) {
    if (!ids.has(path.basename(dir))) continue;
    // A process SIGKILLed a moment ago may hold its cgroup until the kernel has reaped it (EBUSY).
    const deadline = Date.now() + 3_000;
    for (;;) {
      const code = await rmdir(dir).then(() => undefined, (err: NodeJS.ErrnoException) => err.code ?? err.message);
      if (code === undefined || code === 'ENOENT') break;
      if (code !== 'EBUSY' || Date.now() >= deadline) {
        left.push(`${dir} (${code}; processes ${(await processesIn(dir)).join(', ') || 'none'})`);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50)); // poll interval until the deadline
    }
  }
  return left;
}

/** The VM ids whose folders are under `folder` (…/vms/vm-…), however deep vman's storage sits in it. */
export async function vmIdsUnder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => /(^|\/)vms\/vm-[0-9a-f]{12}$/.test(e)).map((e) => path.basename(e));
}
