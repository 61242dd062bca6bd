// Starts QEMU so that it outlives vman, confined: vman spawns it detached in
// a session of its own (QEMU's own -daemonize would die under the seccomp
// sandbox on QEMU 7.x, whose filter is in place before it forks), as the VM's
// user where vman is root (src/operator/confinement.ts), and moves it into its
// cgroup. The launch is done once QEMU wrote its pidfile and opened its QMP
// socket; the pidfile, QMP and guest-agent sockets, serial log and QEMU's own
// messages (qemu.log) sit in the VM's folder.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { buildQemuArgs, qemuName, vmPaths, type QemuVmSpec } from './qemu-command.ts';
import { listVmanQemuProcesses, qemuNameOf, readProcess, signal, waitForExit } from './proc.ts';
import { openVmFile, type Confinement } from './confinement.ts';
import { pollUntil, TerminalStateError } from '../poll.ts';

export class QemuLaunchError extends Error {
  constructor(
    message: string,
    readonly argv: string[],
    readonly exitCode: number | null,
    readonly output: string,
    options?: { cause?: unknown },
  ) {
    super(`${message} (exit code ${exitCode ?? 'none'}): ${output.trim() || 'no output'}\ncommand: ${argv.join(' ')}`, options);
    this.name = 'QemuLaunchError';
  }
}

/** How a QEMU vman started ended: its exit code, or the signal that ended it. */
export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  pid: number;
  argv: string[];
  /** Settles when the process ends, while this vman runs (a later vman only finds it gone). */
  exited: Promise<QemuExit>;
}

/** QEMU's own messages (stderr), in the VM's folder. */
export function qemuLogPath(dir: string): string {
  return path.join(dir, 'qemu.log');
}

/** Remove what a previous QEMU of this VM may have left, so stale sockets are never mistaken for live ones. */
export async function removeRuntimeFiles(dir: string): Promise<void> {
  const p = vmPaths(dir);
  await Promise.all([p.qmp, p.qmpAux, p.guestAgent, p.pidfile, qemuLogPath(dir)].map((f) => rm(f, { force: true })));
}

/** What QEMU wrote to its stderr (the first 64 KiB), read without following a link planted in its folder. */
export async function readQemuLog(dir: string): Promise<string> {
  const handle = await openVmFile(qemuLogPath(dir)).catch(() => undefined);
  if (!handle) return '';
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Launches QEMU. `incoming` is a descriptor vman opened on a saved state
 * (read-only): QEMU gets it as `spec.incomingFd` and waits for
 * `migrate-incoming fd:N` before it runs anything.
 */
export async function launchQemu(spec: QemuVmSpec, confinement: Confinement, timeoutMs = 30_000, incoming?: number): Promise<LaunchResult> {
  const args = [...buildQemuArgs(spec), ...confinement.qemuArgs()];
  const argv = [spec.qemuBinary, ...args];
  if ((spec.incomingFd === undefined) !== (incoming === undefined)) throw new Error('a resume needs both the descriptor and its number in the spec');
  await mkdir(spec.dir, { recursive: true, mode: 0o700 });
  await removeRuntimeFiles(spec.dir);
  const p = vmPaths(spec.dir);
  await confinement.prepareLaunch(spec.identity, {
    // A VM's folder is <storage>/vms/<id>.
    dir: spec.dir, serialLog: p.serialLog, storagePath: path.dirname(path.dirname(spec.dir)),
    writable: [...(spec.rootDisk ? [spec.rootDisk.path] : []), ...spec.disks.map((d) => d.path)],
    readOnly: spec.seed ? [spec.seed.path] : [],
    sharedImages: spec.sharedImages ?? [],
  });

  // Opened by vman, never through a link planted in the folder: QEMU writes its messages to the descriptor.
  const log = await open(qemuLogPath(spec.dir), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  let started: Started;
  try {
    started = await spawnDetached(spec, args, log.fd, incoming);
  } finally {
    await log.close();
  }
  const { pid, exited } = started;
  const fail = async (message: string, cause?: unknown): Promise<never> => {
    signal(pid, 'SIGKILL');
    const end = await Promise.race([exited, waitForExit(pid, 5_000).then(() => undefined)]);
    const output = await readQemuLog(spec.dir);
    await removeRuntimeFiles(spec.dir);
    await confinement.release(spec.id).catch(() => undefined);
    throw new QemuLaunchError(message, argv, end?.code ?? null, output + describeSignal(end), cause === undefined ? undefined : { cause });
  };
  let ended: QemuExit | undefined;
  void exited.then((e) => (ended = e));
  try {
    await confinement.limit(spec.id, pid, spec.memoryMb);
  } catch (err) {
    // Gone already (ESRCH): what QEMU said is the reason, not the cgroup.
    if (ended || !(await readProcess(pid))) return fail('QEMU failed to start', err);
    return fail(`QEMU could not be put in its cgroup: ${(err as Error).message}`, err);
  }
  try {
    await pollUntil('QEMU to write its pidfile and open its QMP socket', async () => {
      if (ended) throw new TerminalStateError(`QEMU exited while starting`);
      const [pidText, sock] = await Promise.all([readFile(p.pidfile, 'utf8').catch(() => ''), listening(p.qmp)]);
      const ready = Number.parseInt(pidText.trim(), 10) === pid && sock;
      return ready ? { done: true, value: true } : { done: false, seen: `pidfile ${JSON.stringify(pidText.trim())}, QMP socket ${sock ? 'listening' : 'not listening yet'}` };
    }, { timeoutMs, intervalMs: 10 });
  } catch (err) {
    return fail(ended ? 'QEMU failed to start' : `QEMU did not finish starting within ${timeoutMs} ms`, err);
  }
  const proc = await readProcess(pid);
  if (!proc || qemuNameOf(proc.argv) !== qemuName(spec.id)) return fail('QEMU exited right after starting');
  return { pid, argv, exited };
}

/** True once something accepts connections on the unix socket (QEMU binds, then listens: a connect between the two is refused). */
function listening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(socketPath);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

interface Started {
  pid: number;
  exited: Promise<QemuExit>;
}

/** QEMU as its own session leader (it outlives vman, and vman's signals), as the VM's user when there is one. */
function spawnDetached(spec: QemuVmSpec, args: string[], logFd: number, incoming: number | undefined): Promise<Started> {
  return new Promise((resolve, reject) => {
    const extra = incoming === undefined ? [] : descriptorsAt(spec.incomingFd!, incoming);
    // libuv drops supplementary groups (setgroups(0)) before setgid and setuid; the uid change clears every capability.
    const child = spawn(spec.qemuBinary, args, {
      detached: true,
      stdio: ['ignore', logFd, logFd, ...extra],
      ...(spec.identity ? { uid: spec.identity.uid, gid: spec.identity.gid } : {}),
    });
    const exited = new Promise<QemuExit>((done) => child.once('exit', (code, sig) => done({ code, signal: sig })));
    child.once('error', (err) => reject(new QemuLaunchError('QEMU could not be run', [spec.qemuBinary, ...args], null, err.message, { cause: err })));
    child.once('spawn', () => {
      child.unref();
      resolve({ pid: child.pid!, exited });
    });
  });
}

/** ", killed by SIGSYS: ..." for a QEMU a signal ended. */
export function describeSignal(end: QemuExit | undefined): string {
  if (!end?.signal) return '';
  return end.signal === 'SIGSYS'
    ? `killed by SIGSYS: its seccomp sandbox refused a system call`
    : `killed by ${end.signal}`;
}

/**
 * Ends the QEMU of a VM that vman holds no connection to (SIGKILL), found by
 * its pidfile or by its -name and folder; removes its runtime files. True if
 * one was running.
 */
export async function terminateQemu(vmId: string, dir: string): Promise<boolean> {
  const pidText = await readFile(vmPaths(dir).pidfile, 'utf8').catch(() => '');
  const fromPidfile = Number.parseInt(pidText.trim(), 10);
  const pids = new Set<number>();
  const proc = Number.isInteger(fromPidfile) ? await readProcess(fromPidfile) : undefined;
  if (proc && proc.state !== 'Z' && qemuNameOf(proc.argv) === qemuName(vmId)) pids.add(proc.pid);
  // No pidfile yet (or a stale one): the process table names it too.
  for (const p of await listVmanQemuProcesses()) {
    if (p.vmId === vmId && p.argv.some((a) => a.includes(`${dir}/`))) pids.add(p.pid);
  }
  for (const pid of pids) signal(pid, 'SIGKILL');
  for (const pid of pids) {
    if (!(await waitForExit(pid, 10_000))) throw new Error(`QEMU process ${pid} of VM ${vmId} survived SIGKILL for 10 s`);
  }
  await removeRuntimeFiles(dir);
  return pids.size > 0;
}

/** stdio entries after stdin/out/err that put `fd` at number `at` in the child. */
function descriptorsAt(at: number, fd: number): Array<number | 'ignore'> {
  return [...Array<'ignore'>(at - 3).fill('ignore'), fd];
}
