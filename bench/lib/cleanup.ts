// Nothing a benchmark starts outlives it: every QEMU is found by the run's own
// folder (/tmp/vman-bench-*) and killed, the folder removed, also on Ctrl-C
// or SIGTERM. Modules register undo actions for what they start themselves
// (an in-process vman, a child suite run); the QEMU sweep catches the rest.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isQemuSystem, listProcesses, signal, waitForExit } from '../../src/operator/proc.ts';

export const BENCH_PREFIX = 'vman-bench-';

type Action = { what: string; fn: () => Promise<void> };
const actions = new Set<Action>();
const roots = new Set<string>();
/** Every root ever made, for the last sweep before exiting on a signal. */
const allRoots = new Set<string>();
let handlersInstalled = false;
let exiting = false;

export class AbortedError extends Error {
  constructor() {
    super('the benchmark run is being stopped');
    this.name = 'AbortedError';
  }
}

/** True once SIGINT/SIGTERM arrived: nothing new may start. */
export function isAborting(): boolean {
  return exiting;
}

/** Called before starting anything (a QEMU, a vman, a module). */
export function assertNotAborting(): void {
  if (exiting) throw new AbortedError();
}

/** A fresh folder under the system temp folder, removed by cleanupAll(). */
export function makeBenchRoot(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), BENCH_PREFIX));
  // vman as root runs each VM's QEMU as a user of its own, who must pass through to its folder.
  chmodSync(dir, 0o711);
  roots.add(dir);
  allRoots.add(dir);
  return dir;
}

/** Registers an undo action; the returned function unregisters it (call it once done normally). */
export function onCleanup(what: string, fn: () => Promise<void>): () => void {
  const action: Action = { what, fn };
  actions.add(action);
  return () => {
    actions.delete(action);
  };
}

/** QEMU processes whose command line points inside `dir`, i.e. started for this run. */
export async function qemuProcessesUnder(dir: string) {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return (await listProcesses()).filter((p) => isQemuSystem(p.argv) && p.argv.some((a) => a.includes(prefix)));
}

/** SIGKILLs every QEMU started under `dir` and waits until each is gone. */
export async function killQemusUnder(dir: string): Promise<number> {
  const procs = await qemuProcessesUnder(dir);
  for (const p of procs) signal(p.pid, 'SIGKILL');
  await Promise.all(procs.map((p) => waitForExit(p.pid, 10_000)));
  return procs.length;
}

async function withDeadline(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
}

/** Runs every registered action (newest first), kills this run's QEMUs and removes its folders. */
export async function cleanupAll(log: (msg: string) => void = () => undefined): Promise<void> {
  for (const a of [...actions].reverse()) {
    actions.delete(a);
    await withDeadline(a.fn(), 60_000);
  }
  for (const dir of roots) {
    const killed = await killQemusUnder(dir).catch(() => 0);
    if (killed > 0) log(`killed ${killed} QEMU process(es) left under ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    roots.delete(dir);
  }
}

/** On SIGINT/SIGTERM: clean up, then exit 130/143. A second signal while cleaning is ignored. */
export function installSignalHandlers(log: (msg: string) => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (exiting) {
        log(`${sig} again: still cleaning up, please wait`);
        return;
      }
      exiting = true;
      log(`${sig}: stopping, cleaning up`);
      void cleanupAll(log)
        .then(async () => {
          // A launch that was in flight may have daemonized a QEMU meanwhile: sweep once more.
          for (const dir of allRoots) {
            await killQemusUnder(dir).catch(() => 0);
            rmSync(dir, { recursive: true, force: true });
          }
        })
        .finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

