// The vman a scenario talks to: in-process on an ephemeral port (fast), or a
// child process (`vman serve`) when the scenario kills and restarts it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import got, { type Got } from 'got';
import { loadConfig } from '../src/config.ts';
import { probeHost, type HostInfo } from '../src/host/probe.ts';
import type { AccelRequest } from '../src/host/accel-probe.ts';
import type { NetworkMode } from '../src/network/config.ts';
import { runContext } from '../support/run-context.ts';
import { hostStatus } from '../support/host.ts';
import type { ProtocolLogEntry } from '../src/operator/qmp-client.ts';
import { createVman, type Vman } from '../src/server.ts';
import { pollUntil } from '../support/poll.ts';
import { freePort } from '../support/free-port.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface VmanEndpoint {
  baseUrl: string;
  http: Got;
  /** How many requests sent through `http` have not been answered yet (or failed): the after-scenario judge lets a VM be starting or stopping only while one is. */
  inFlight(): number;
  storagePath: string;
  dbPath: string;
  /** The network mode vman was configured with (its own settings, not a file it may have left). */
  networkMode: NetworkMode;
  /** Lines vman logged, for the report when a scenario fails. */
  log(): string;
  stop(): Promise<void>;
}

export interface VmanSettings {
  storagePath: string;
  /** VMAN_IMAGE_DIRS: where templates may take boot files from. */
  imageDirs?: string[];
  env?: Record<string, string>;
  protocolLog?: (vmId: string, entry: ProtocolLogEntry) => void;
  /**
   * Child only: run `vman serve` inside this network namespace (`ip netns
   * exec`), listening on an address of that namespace the suite can reach.
   */
  netns?: { name: string; listenHost: string; listenPort: number };
}

/** A client for one vman that counts its unanswered requests (streams, e.g. the event stream, are not operations and are not counted). */
function client(baseUrl: string): { http: Got; inFlight: () => number } {
  let pending = 0;
  const http = got.extend({
    prefixUrl: baseUrl,
    throwHttpErrors: false,
    responseType: 'json',
    retry: { limit: 0 },
    timeout: { request: 120_000 },
    handlers: [
      (options, next) => {
        if (options.isStream) return next(options);
        pending += 1;
        const answer = next(options);
        const done = (): void => { pending -= 1; };
        void Promise.resolve(answer).then(done, done);
        return answer;
      },
    ],
  });
  return { http, inFlight: () => pending };
}

async function baseEnv(s: VmanSettings): Promise<Record<string, string>> {
  const guestDir = await suiteGuestDir();
  return {
    // The built guest where a VM's QEMU, running as a user of its own, can read it (support/host.ts).
    ...(guestDir ? { VMAN_GUEST_DIR: guestDir } : {}),
    VMAN_STORAGE_PATH: s.storagePath,
    VMAN_OBSERVER_INTERVAL: '0',
    VMAN_BOOT_TIMEOUT: '60',
    VMAN_QEMU_UID_RANGE: workerUidRange(),
    ...(s.imageDirs ? { VMAN_IMAGE_DIRS: s.imageDirs.join(':') } : {}),
    ...(process.env.VMAN_ACCEL ? { VMAN_ACCEL: process.env.VMAN_ACCEL } : {}),
    ...s.env,
  };
}

/**
 * Each worker's vmans give their VMs' QEMU users from a range of their own:
 * two vmans that share a range would give two VMs one uid (vman as root).
 */
export function workerUidRange(): string {
  const worker = Number.parseInt(runContext().workerId, 10) || 0;
  // vman's default range starts here too (above systemd's container uids, below 2^31).
  const first = 1_879_048_192 + worker * 4096;
  return `${first}-${first + 4095}`;
}

let vmanHost: Promise<HostInfo> | undefined;

/**
 * vman's own host probe, once per worker, handed to every in-process vman so
 * that each scenario does not probe again (a child `vman serve` probes itself).
 * Part of starting vman, not evidence: the suite's facts are support/host.ts.
 * The report shows its decision (the accelerator and why) as vman's own
 * account of the host (support/run-environment.ts), not as a fact checked.
 */
export function vmanHostInfo(): Promise<HostInfo> {
  vmanHost ??= suiteGuestDir().then((guestDir) => probeHost({
    storagePath: runContext().root, requestedAccel: (process.env.VMAN_ACCEL as AccelRequest | undefined) ?? 'auto', ...(guestDir ? { guestDir } : {}),
  }));
  return vmanHost;
}

/** The test guest's folder as the suite found it, within reach of a VM's own user. */
async function suiteGuestDir(): Promise<string | undefined> {
  const status = await hostStatus();
  return status.ok ? status.host.guest.dir : undefined;
}

export async function startInProcessVman(s: VmanSettings): Promise<VmanEndpoint & { vman: Vman }> {
  const config = loadConfig(await baseEnv(s), { listen: '127.0.0.1:0' });
  const lines: string[] = [];
  const vman = await createVman(config, {
    hostInfo: await vmanHostInfo(),
    ...(s.protocolLog ? { protocolLog: s.protocolLog } : {}),
    logger: { level: 'info', stream: { write: (line: string) => void lines.push(line.trimEnd()) } },
  });
  const baseUrl = `${await vman.listen()}/`;
  return {
    vman, baseUrl, ...client(baseUrl), storagePath: config.storagePath, dbPath: config.dbPath, networkMode: config.network.mode,
    log: () => lines.join('\n'),
    stop: () => vman.close(),
  };
}

export interface ChildVman extends VmanEndpoint {
  pid: number;
  /** How the process ended: settles when it does. */
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export async function startChildVman(s: VmanSettings, port?: number): Promise<ChildVman> {
  const listenHost = s.netns?.listenHost ?? '127.0.0.1';
  const listenPort = port ?? s.netns?.listenPort ?? (await freePort());
  const baseUrl = `http://${listenHost}:${listenPort}/`;
  const lines: string[] = [];
  const serve = [path.join(REPO, 'bin', 'vman.mjs'), 'serve', '--listen', `${listenHost}:${listenPort}`];
  // nsenter joins the namespace's network only and execs node itself: the child's pid is vman's, and signals reach it.
  // Not `ip netns exec`: it also remounts /sys for the namespace, which hides the cgroups vman confines QEMU in.
  const [file, args]: [string, string[]] = s.netns
    ? ['nsenter', [`--net=/run/netns/${s.netns.name}`, '--', process.execPath, ...serve]]
    : [process.execPath, serve];
  const child: ResultPromise = execa(file, args, {
    env: { ...(await baseEnv(s)), VMAN_LOG_LEVEL: 'info' },
    reject: false,
    all: true,
    cleanup: true,
  });
  child.all?.on('data', (d: Buffer) => lines.push(d.toString().trimEnd()));
  const { http, inFlight } = client(baseUrl);
  await pollUntil(
    `vman serve to answer on ${baseUrl}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`vman serve exited with ${child.exitCode}: ${lines.join('\n').slice(-500)}`);
      const r = await http.get('health', { timeout: { request: 1_000 } }).catch(() => undefined);
      return r?.statusCode === 200 ? { done: true, value: undefined } : { done: false, seen: r ? `HTTP ${r.statusCode}` : 'no answer' };
    },
    { timeoutMs: 30_000, intervalMs: 25 },
  );
  const config = loadConfig(await baseEnv(s));
  const exited = (child as unknown as Promise<{ exitCode?: number; signal?: string }>).then(
    (r) => ({ code: r.exitCode ?? null, signal: r.signal ?? null }),
    () => ({ code: child.exitCode, signal: child.signalCode }),
  );
  return {
    baseUrl, http, inFlight, storagePath: config.storagePath, dbPath: config.dbPath, networkMode: config.network.mode, pid: child.pid!, exited,
    log: () => lines.join('\n'),
    async kill(signal) {
      child.kill(signal);
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** How a `vman serve` run to its end ended: its exit code, what it printed, and where it was told to listen. */
export interface ServeToEnd {
  exitCode: number | undefined;
  output: string;
  url: string;
}

/** A `vman serve` expected to refuse to start: runs it to its end (with a deadline) and reports how it ended. */
export async function runVmanServeToEnd(s: VmanSettings, timeoutMs = 30_000): Promise<ServeToEnd> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const r = await execa(process.execPath, [path.join(REPO, 'bin', 'vman.mjs'), 'serve', '--listen', `127.0.0.1:${port}`], {
    env: { ...(await baseEnv(s)), VMAN_LOG_LEVEL: 'info' }, reject: false, all: true, timeout: timeoutMs, forceKillAfterDelay: 1_000,
  });
  return { exitCode: r.exitCode, output: r.all ?? '', url };
}
