// Running the real `vman` command (bin/vman.mjs, as an operator would) against
// the scenario's vman: an args array, never a shell; VMAN_URL points at it.
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VmanWorld } from '../world/vman-world.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'vman.mjs');

export interface CliRun {
  args: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** "vman vm list --json" → ['vm', 'list', '--json']: the words of a command line written in a feature. */
export function commandWords(line: string): string[] {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'vman') throw new Error(`a vman command line starts with "vman": ${line}`);
  return words.slice(1);
}

/** Runs `vman <args>` against the scenario's vman; whatever the exit code, the run is kept and attached. */
export async function runVman(world: VmanWorld, args: string[], timeoutMs = 5 * 60_000): Promise<CliRun> {
  const r = await execa('node', [BIN, ...args], {
    reject: false, timeout: timeoutMs,
    env: { VMAN_URL: world.api().baseUrl, VMAN_API_TOKEN: '' },
  });
  const run: CliRun = { args, exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  world.notes.lastCliRun = run;
  world.attach(`$ vman ${args.join(' ')}\n${run.stdout}\n--- stderr ---\n${run.stderr}\n--- exit ${run.exitCode} ---`, { mediaType: 'text/plain', fileName: `vman ${args.join(' ')}` });
  return run;
}

/** Runs `vman <args>` and requires it to succeed (exit 0), saying what it printed when not. */
export async function runVmanOk(world: VmanWorld, args: string[]): Promise<CliRun> {
  const run = await runVman(world, args);
  if (run.exitCode !== 0) throw new Error(`vman ${args.join(' ')} exited ${run.exitCode}: ${run.stderr.trim() || run.stdout.trim()}`);
  return run;
}

export function lastRun(world: VmanWorld): CliRun {
  return world.noted('lastCliRun', 'a vman command run in this scenario');
}

/** The rows of a table the command printed, by column header; `-` stands for nothing. */
export function tableRows(stdout: string): Record<string, string>[] {
  const [head, ...lines] = stdout.split('\n').filter((l) => l.trim() !== '');
  if (!head) return [];
  const headers = head.trim().split(/\s+/);
  return lines.map((l) => {
    const cells = l.trim().split(/\s+/);
    return Object.fromEntries(headers.map((h, i) => [h, cells[i] ?? '']));
  });
}
