// Reads the process table from /proc. vman and its suite find QEMU processes
// by what their command line says about them (-name vman-<id>, paths under a
// storage folder), never by a broad process-name match.
import { readFile, readdir } from 'node:fs/promises';
import { sleepUntilNextPoll } from '../poll.ts';

export interface ProcessInfo {
  pid: number;
  argv: string[];
  /** Single-letter state from /proc/<pid>/stat (R, S, D, Z, ...). */
  state: string;
}

/**
 * The fields of /proc/<pid>/stat after "pid (comm) ": [0] is the state (field
 * 3 of proc(5)), [11] and [12] utime and stime (14 and 15). comm may hold
 * spaces or parentheses, so the split starts after its last ")".
 */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export async function readProcess(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`),
      readFile(`/proc/${pid}/stat`, 'utf8'),
    ]);
    const state = statFields(stat)[0] ?? '';
    const argv = cmdline.toString('utf8').split('\0');
    if (argv.at(-1) === '') argv.pop();
    return { pid, argv, state };
  } catch {
    return undefined;
  }
}

export interface ProcessUsage {
  /** User and system time of all its threads, in seconds. */
  cpuSeconds: number;
  /** Resident memory (VmRSS), in bytes. */
  rssBytes: number;
}

/** Linux reports process times in USER_HZ ticks, which is 100 on every architecture's user ABI. */
const USER_HZ = 100;

/** CPU time and resident memory of a live process; undefined when it is gone or a zombie. */
export async function readUsage(pid: number): Promise<ProcessUsage | undefined> {
  try {
    const [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
    const fields = statFields(stat);
    const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (fields[0] === 'Z' || fields[0] === 'X' || !rss) return undefined;
    return { cpuSeconds: (Number(fields[11]) + Number(fields[12])) / USER_HZ, rssBytes: Number(rss[1]) * 1024 };
  } catch {
    return undefined;
  }
}

/** Alive means present and not a zombie: a zombie QEMU has exited already. */
export async function isAlive(pid: number): Promise<boolean> {
  const info = await readProcess(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

export async function listProcesses(): Promise<ProcessInfo[]> {
  const entries = await readdir('/proc');
  const pids = entries.filter((e) => /^\d+$/.test(e)).map(Number);
  const infos = await Promise.all(pids.map((pid) => readProcess(pid)));
  return infos.filter((i): i is ProcessInfo => i !== undefined && i.state !== 'Z' && i.argv.length > 0);
}

/** The value after `-name` in a QEMU command line, without sub-options. */
export function qemuNameOf(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('-name');
  const value = i >= 0 ? argv[i + 1] : undefined;
  return value?.split(',')[0]?.replace(/^guest=/, '');
}

export function isQemuSystem(argv: readonly string[]): boolean {
  const exe = argv[0]?.split('/').at(-1) ?? '';
  return exe.startsWith('qemu-system-') || exe === 'qemu-kvm';
}

/** QEMU processes started for vman: their -name is vman-<id>. */
export async function listVmanQemuProcesses(): Promise<Array<ProcessInfo & { vmId: string }>> {
  const all = await listProcesses();
  const out: Array<ProcessInfo & { vmId: string }> = [];
  for (const p of all) {
    const name = isQemuSystem(p.argv) ? qemuNameOf(p.argv) : undefined;
    if (name?.startsWith('vman-')) out.push({ ...p, vmId: name.slice('vman-'.length) });
  }
  return out;
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Polls until the process is gone (or a zombie); true if it went in time. */
export async function waitForExit(pid: number, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await sleepUntilNextPoll(intervalMs);
  }
}
