// The suite's own look at the process table (/proc), sharing no code with
// vman's: which QEMU runs which VM is read here from the command lines.
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { pollUntil, WaitTimeoutError } from './poll.ts';

export interface HostProcess {
  pid: number;
  argv: string[];
}

let buffer = Buffer.allocUnsafe(64 * 1024);

/**
 * A file of /proc, whole, as text. Into one buffer kept for the process: a
 * /proc file says it is empty, so readFileSync gives each read a fresh 64 KiB
 * buffer, which made scanning the process table most of a scenario's CPU in
 * the suite (5 of 10 s in 401 validation scenarios).
 */
function readProcText(file: string): string {
  const fd = openSync(file, 'r');
  try {
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        const bigger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(bigger);
        buffer = bigger;
      }
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) return buffer.toString('utf8', 0, length);
      length += n;
    }
  } finally {
    closeSync(fd);
  }
}

// Read synchronously: /proc answers at once, and a scan through the libuv
// thread pool costs several times as long, in every teardown.
function readArgv(pid: number): HostProcess | undefined {
  try {
    const cmdline = readProcText(`/proc/${pid}/cmdline`);
    if (cmdline.length === 0) return undefined; // a kernel thread, or a zombie
    const stat = readProcText(`/proc/${pid}/stat`);
    // A zombie has exited: it runs nothing.
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined;
    const argv = cmdline.split('\0');
    if (argv.at(-1) === '') argv.pop();
    return { pid, argv };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** A process's CPU time in clock ticks (user + system, all threads) and resident memory, as the kernel counts them. */
export interface ProcessFigures {
  cpuTicks: number;
  rssBytes: number;
}

/** Linux reports process times in USER_HZ ticks: 100 a second on every architecture's user ABI. */
export const TICKS_PER_SECOND = 100;

export function processFigures(pid: number): ProcessFigures {
  const stat = readProcText(`/proc/${pid}/stat`);
  // After "pid (comm) " come state (field 3) ... utime (14) and stime (15): proc(5).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readProcText(`/proc/${pid}/status`));
  if (!rss) throw new Error(`/proc/${pid}/status has no VmRSS: the process is gone or a zombie`);
  return { cpuTicks: Number(fields[11]) + Number(fields[12]), rssBytes: Number(rss[1]) * 1024 };
}

export async function hostProcesses(): Promise<HostProcess[]> {
  const pids = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
  return pids.map(readArgv).filter((p): p is HostProcess => p !== undefined);
}

/** QEMU system emulators whose command line points inside `folder`. */
export async function qemusUnder(folder: string): Promise<HostProcess[]> {
  const prefix = folder.endsWith('/') ? folder : `${folder}/`;
  return (await hostProcesses()).filter((p) => /(^|\/)qemu-system-[^/]+$/.test(p.argv[0] ?? '') && p.argv.some((a) => a.includes(prefix)));
}

/** The `-name` a QEMU was given (without sub-options). */
export function qemuNameIn(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('-name');
  return i >= 0 ? argv[i + 1]?.split(',')[0] : undefined;
}

/** The QEMU running a VM: named vman-<id>, with its files in the VM's folder. */
export async function qemuOfVm(vmId: string, vmDir: string): Promise<HostProcess | undefined> {
  return (await qemusUnder(vmDir)).find((p) => qemuNameIn(p.argv) === `vman-${vmId}`);
}

/** Sends a signal; false when there is no such process. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Present and not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  return readArgv(pid) !== undefined;
}

/** Polls /proc until the process is gone; true if it went within the time. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  return pollUntil(`process ${pid} to exit`, async () => ((await isAlive(pid)) ? { done: false, seen: 'alive' } : { done: true, value: true }), { timeoutMs, intervalMs: 25 })
    .catch((err: unknown) => {
      if (err instanceof WaitTimeoutError) return false;
      throw err;
    });
}

/** SIGKILL, then wait for each to be gone. */
export async function killProcesses(procs: readonly HostProcess[]): Promise<void> {
  for (const p of procs) signal(p.pid, 'SIGKILL');
  await Promise.all(procs.map((p) => waitForExit(p.pid, 10_000)));
}
