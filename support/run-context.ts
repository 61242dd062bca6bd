// What one run of the suite (one cucumber worker) owns: a root folder whose
// name carries the run's id, the host probe result, and a way to find every
// QEMU process the run started. Everything the run creates lives under
// `root`, so cleanup and the leak guard find it by that name alone.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killProcesses, qemusUnder, type HostProcess } from './proc-reader.ts';

export const RUN_PREFIX = 'vman-run-';

export interface RunContext {
  id: string;
  root: string;
  workerId: string;
}

let current: RunContext | undefined;
let scenarioCounter = 0;

export function runContext(): RunContext {
  if (!current) {
    const workerId = process.env.CUCUMBER_WORKER_ID ?? '0';
    // pid first: a later run tells whether the owner is still alive from the name.
    const id = `${process.pid}-w${workerId}`;
    const root = path.join(os.tmpdir(), `${RUN_PREFIX}${id}`);
    // 0711: a VM's QEMU runs as a user of its own (vman as root) and must pass through to its folder; nobody lists it.
    mkdirSync(root, { recursive: true, mode: 0o711 });
    writeFileSync(path.join(root, 'owner'), `${process.pid}\n`);
    current = { id, root, workerId };
  }
  return current;
}

/** A fresh, short folder per scenario (unix socket paths must stay under 108 bytes). */
export function newScenarioDir(): string {
  const dir = path.join(runContext().root, `s${++scenarioCounter}`);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  return dir;
}

/** QEMU processes whose command line points into `root`. */
export function qemuProcessesUnder(root: string): Promise<HostProcess[]> {
  return qemusUnder(root);
}

export { killProcesses };

/** Removes what crashed runs (SIGKILL, power loss) left in the temp folder, found by their names only. */
export async function reapCrashedRuns(): Promise<string[]> {
  const reaped: string[] = [];
  for (const entry of readdirSync(os.tmpdir())) {
    if (!entry.startsWith(RUN_PREFIX)) continue;
    const dir = path.join(os.tmpdir(), entry);
    const owner = Number.parseInt(readOwner(dir), 10);
    if (Number.isInteger(owner) && owner !== process.pid && processExists(owner)) continue;
    if (owner === process.pid) continue;
    await killProcesses(await qemuProcessesUnder(dir));
    rmSync(dir, { recursive: true, force: true });
    reaped.push(dir);
  }
  return reaped;
}

function readOwner(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'owner'), 'utf8').trim();
  } catch {
    return '';
  }
}

export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
