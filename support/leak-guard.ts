// The host as the leak guard sees it, before the run and after: QEMU and
// dnsmasq processes, tap devices, network namespaces, vman temp folders and
// VM cgroups.
// Whatever appeared during the run and is still there at its end is a leak,
// unless it belongs to another run that is still going (--parallel workers).
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hostProcesses } from './proc-reader.ts';
import { namespaces } from './netns.ts';
import { processExists, RUN_PREFIX } from './run-context.ts';
import { processesIn, vmCgroupDirs } from './cgroup-reader.ts';

export interface HostView {
  processes: Map<number, string>;
  taps: Set<string>;
  netns: Set<string>;
  tmp: Set<string>;
  /** VM cgroups with no process left in them (one with a QEMU in it is that QEMU's, judged above). */
  emptyCgroups: Set<string>;
}

const isDnsmasq = (argv: readonly string[]): boolean => (argv[0]?.split('/').at(-1) ?? '') === 'dnsmasq';
const isQemuSystem = (argv: readonly string[]): boolean => /^qemu-system-/.test(argv[0]?.split('/').at(-1) ?? '');

export async function hostView(): Promise<HostView> {
  const processes = new Map<number, string>();
  for (const p of await hostProcesses()) {
    if (isQemuSystem(p.argv) || isDnsmasq(p.argv)) processes.set(p.pid, p.argv.join(' '));
  }
  const taps = new Set<string>();
  for (const dev of await readdir('/sys/class/net').catch(() => [] as string[])) {
    // Only tun/tap devices have tun_flags.
    if (await readdir(path.join('/sys/class/net', dev)).then((e) => e.includes('tun_flags'), () => false)) taps.add(dev);
  }
  const tmp = new Set((await readdir(os.tmpdir())).filter((e) => e.startsWith('vman-')));
  const emptyCgroups = new Set<string>();
  for (const dir of await vmCgroupDirs()) if ((await processesIn(dir)).length === 0) emptyCgroups.add(dir);
  return { processes, taps, netns: new Set(await namespaces()), tmp, emptyCgroups };
}

/** Runs other than this one that are still going: their folders, names and processes are not ours to judge. */
function otherLiveRuns(after: HostView, selfId: string): string[] {
  return [...after.tmp]
    .filter((e) => e.startsWith(RUN_PREFIX) && e !== `${RUN_PREFIX}${selfId}`)
    .map((e) => e.slice(RUN_PREFIX.length))
    .filter((id) => processExists(Number.parseInt(id, 10)));
}

export function leaks(before: HostView, after: HostView, selfId: string): string[] {
  const others = otherLiveRuns(after, selfId);
  const theirs = (text: string): boolean => others.some((id) => text.includes(`${RUN_PREFIX}${id}`) || text.includes(`vman-${id}-`));
  const out: string[] = [];
  for (const [pid, cmd] of after.processes) {
    if (!before.processes.has(pid) && !theirs(cmd)) out.push(`process ${pid} (${cmd.slice(0, 120)}) was started during the run and is still running`);
  }
  for (const tap of after.taps) if (!before.taps.has(tap)) out.push(`tap device ${tap} appeared during the run and is still there`);
  for (const ns of after.netns) if (!before.netns.has(ns) && !theirs(ns)) out.push(`network namespace ${ns} appeared during the run and is still there`);
  for (const e of after.tmp) if (!before.tmp.has(e) && !theirs(e)) out.push(`temp folder ${path.join(os.tmpdir(), e)} appeared during the run and is still there`);
  // An empty one is nobody's: the other worker's vman removes its VM's cgroup as it settles the VM (lastingLeaks waits that out).
  for (const dir of after.emptyCgroups) if (!before.emptyCgroups.has(dir)) out.push(`VM cgroup ${dir} appeared during the run and is still there, empty`);
  return out;
}

/**
 * Leaks that last: what looks leaked is looked at again until it is gone or
 * 5 s have passed. A process the other worker of this run has just started
 * (a `qemu-system-x86_64 --version`, a dnsmasq being replaced) is not a leak.
 */
export async function lastingLeaks(before: HostView, selfId: string): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = leaks(before, await hostView(), selfId);
    if (found.length === 0 || Date.now() >= deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 200)); // poll interval until the deadline
  }
}
