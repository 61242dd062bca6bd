// Runs the host's network tools (ip, bridge, dnsmasq) from argument arrays,
// never through a shell, and turns a failure into an error that carries the
// command line and what the tool printed.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { which } from '../host/binaries.ts';

export class HostCommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly exitCode: number | null,
    /** What the tool printed on stderr (or stdout when stderr was empty), trimmed. */
    readonly said: string,
    options?: { cause?: unknown },
  ) {
    super(`${argv.join(' ')} failed (exit code ${exitCode ?? 'none'}): ${said || 'no output'}`, options);
    this.name = 'HostCommandError';
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

// The tools live in /usr/sbin, which an unprivileged PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
const resolved = new Map<string, Promise<string>>();

/** Absolute path of a host tool; the error names the Debian package that has it. */
export function resolveTool(name: 'ip' | 'bridge' | 'dnsmasq'): Promise<string> {
  let found = resolved.get(name);
  if (!found) {
    const searchPath = [process.env.PATH ?? '', ...EXTRA_DIRS].filter(Boolean).join(path.delimiter);
    found = which([name], searchPath).then((p) => {
      if (!p) {
        resolved.delete(name);
        const pkg = name === 'dnsmasq' ? 'dnsmasq-base' : 'iproute2';
        throw new Error(`${name} not found on PATH or in /usr/sbin; install the Debian package ${pkg} (./setup.sh does)`);
      }
      return p;
    });
    resolved.set(name, found);
  }
  return found;
}

/** Runs `file args...`; rejects with HostCommandError on a non-zero exit or a timeout. */
export function runCommand(file: string, args: readonly string[], { timeoutMs = 15_000 } = {}): Promise<CommandResult> {
  const argv = [file, ...args];
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      if (!error) {
        resolve({ stdout, stderr });
        return;
      }
      const said = (stderr.trim() || stdout.trim()).replace(/\s*\n\s*/g, '; ');
      const e = error as Error & { code?: unknown; killed?: boolean };
      const code = typeof e.code === 'number' ? e.code : null;
      reject(new HostCommandError(argv, code, e.killed ? `killed after ${timeoutMs} ms${said ? `: ${said}` : ''}` : said || e.message, { cause: error }));
    });
  });
}

/** `ip args...`, with -j output parsed when asked for. */
export async function ip(args: readonly string[]): Promise<CommandResult> {
  return runCommand(await resolveTool('ip'), args);
}

export async function ipJson<T>(args: readonly string[]): Promise<T> {
  const { stdout } = await ip(['-j', ...args]);
  return (stdout.trim() ? JSON.parse(stdout) : []) as T;
}

export async function bridgeTool(args: readonly string[]): Promise<CommandResult> {
  return runCommand(await resolveTool('bridge'), args);
}

/** iproute2's ways of saying "no such interface". */
export function isNoSuchDevice(err: unknown): boolean {
  return err instanceof HostCommandError && /Cannot find device|does not exist|No such device/i.test(err.said);
}
