// Starts QEMU so that it outlives vman: QEMU daemonizes itself (-daemonize),
// its parent returns once the VM is initialised, and the pidfile, QMP and
// guest-agent sockets and the serial log sit in the VM's folder.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { buildQemuArgs, qemuName, vmPaths, type QemuVmSpec } from './qemu-command.ts';
import { listVmanQemuProcesses, qemuNameOf, readProcess, signal, waitForExit } from './proc.ts';

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

export interface LaunchResult {
  pid: number;
  argv: string[];
}

/** Remove what a previous QEMU of this VM may have left, so stale sockets are never mistaken for live ones. */
export async function removeRuntimeFiles(dir: string): Promise<void> {
  const p = vmPaths(dir);
  await Promise.all([p.qmp, p.qmpAux, p.guestAgent, p.pidfile].map((f) => rm(f, { force: true })));
}

/**
 * Launches QEMU. `incoming` is a descriptor vman opened on a saved state
 * (read-only): QEMU gets it as `spec.incomingFd` and waits for
 * `migrate-incoming fd:N` before it runs anything.
 */
export async function launchQemu(spec: QemuVmSpec, timeoutMs = 30_000, incoming?: number): Promise<LaunchResult> {
  const args = buildQemuArgs(spec);
  const argv = [spec.qemuBinary, ...args];
  if ((spec.incomingFd === undefined) !== (incoming === undefined)) throw new Error('a resume needs both the descriptor and its number in the spec');
  await mkdir(spec.dir, { recursive: true, mode: 0o700 });
  await removeRuntimeFiles(spec.dir);

  const { code, output, error } = await run(spec.qemuBinary, args, timeoutMs, incoming === undefined ? [] : descriptorsAt(spec.incomingFd!, incoming));
  if (code !== 0) {
    // A parent killed on timeout may leave its daemonized child behind.
    await killOwnQemuFromPidfile(spec);
    await removeRuntimeFiles(spec.dir);
    throw new QemuLaunchError(
      error?.killed ? `QEMU did not finish starting within ${timeoutMs} ms` : 'QEMU failed to start',
      argv,
      code,
      output,
      error ? { cause: error } : undefined,
    );
  }

  const pidText = await readFile(vmPaths(spec.dir).pidfile, 'utf8').catch(() => '');
  const pid = Number.parseInt(pidText.trim(), 10);
  const proc = Number.isInteger(pid) ? await readProcess(pid) : undefined;
  if (!proc || qemuNameOf(proc.argv) !== qemuName(spec.id)) {
    await removeRuntimeFiles(spec.dir);
    throw new QemuLaunchError('QEMU exited right after starting', argv, code, output || `pidfile said ${JSON.stringify(pidText)}`);
  }
  return { pid, argv };
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

async function killOwnQemuFromPidfile(spec: QemuVmSpec): Promise<void> {
  const pid = Number.parseInt(await readFile(vmPaths(spec.dir).pidfile, 'utf8').catch(() => ''), 10);
  const proc = Number.isInteger(pid) ? await readProcess(pid) : undefined;
  if (proc && qemuNameOf(proc.argv) === qemuName(spec.id)) {
    signal(pid, 'SIGKILL');
    await waitForExit(pid, 5_000);
  }
}

interface RunResult {
  code: number | null;
  output: string;
  error?: (Error & { killed?: boolean }) | undefined;
}

/** stdio entries after stdin/out/err that put `fd` at number `at` in the child. */
function descriptorsAt(at: number, fd: number): Array<number | 'ignore'> {
  return [...Array<'ignore'>(at - 3).fill('ignore'), fd];
}

/** Runs QEMU's launching parent (it exits once the daemon is up), with extra descriptors from fd 3 on. */
function run(file: string, args: string[], timeoutMs: number, extra: Array<number | 'ignore'>): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe', ...extra] });
    let output = '';
    const take = (d: Buffer): void => {
      if (output.length < 1 << 20) output += d.toString('utf8');
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, output: output || error.message, error });
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ code: 0, output });
      const error = Object.assign(new Error(`QEMU exited with ${code ?? sig}`), { killed });
      resolve({ code: code ?? -1, output, error });
    });
  });
}
