// Starts QEMU so that it outlives vman: QEMU daemonizes itself (-daemonize),
// its parent returns once the VM is initialised, and the pidfile, QMP and
// guest-agent sockets and the serial log sit in the VM's folder.
import { execFile } from 'node:child_process';
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

export async function launchQemu(spec: QemuVmSpec, timeoutMs = 30_000): Promise<LaunchResult> {
  const args = buildQemuArgs(spec);
  const argv = [spec.qemuBinary, ...args];
  await mkdir(spec.dir, { recursive: true, mode: 0o700 });
  await removeRuntimeFiles(spec.dir);

  const { code, output, error } = await run(spec.qemuBinary, args, timeoutMs);
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

function run(file: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (!error) return resolve({ code: 0, output });
      const code = typeof error.code === 'number' ? error.code : null;
      resolve({ code: code ?? -1, output: output || error.message, error });
    });
  });
}
