// The baseline: the same guest started by a bare qemu-system-x86_64 with the
// argument vector vman would use (buildQemuArgs on an equivalent spec), timed
// from spawn. The protocol clients are vman's (they are the wire protocols,
// nothing more); nothing of vman's launcher, operator or services is used.
import { spawn } from 'node:child_process';
import { newDeviceModel } from '../../src/model/device-model.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { HostInfo } from '../../src/host/probe.ts';
import { DEFAULT_NETWORK } from '../../src/network/config.ts';
import { buildQemuArgs, vmPaths, type QemuVmSpec, type VmPaths } from '../../src/operator/qemu-command.ts';
import { GuestAgentClient } from '../../src/operator/guest-agent-client.ts';
import { QmpClient } from '../../src/operator/qmp-client.ts';
import { isAlive } from '../../src/operator/proc.ts';
import { pollUntil, TerminalStateError } from '../../src/poll.ts';
import { BUILTIN_TEMPLATES } from '../../src/services/template-service.ts';
import { assertNotAborting, killQemusUnder, onCleanup } from './cleanup.ts';

const AGENT_ATTEMPT_MS = 10_000;
const SMALL = BUILTIN_TEMPLATES.find((t) => t.name === 'small')!;

export function randomMac(): string {
  return `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
}

/** What vman builds for a VM of the `small` template on the default user-mode network. */
export function smallGuestSpec(host: HostInfo, dir: string, id: string): QemuVmSpec {
  const [first] = DEFAULT_NETWORK.range.split('-');
  return {
    id,
    dir,
    qemuBinary: host.qemu.path,
    accel: host.accel.accel,
    cpus: SMALL.cpus,
    memoryMb: SMALL.memoryMb,
    boot: { kernel: host.guest.kernel, initrd: host.guest.initrd, cmdline: host.guest.cmdline },
    disks: [],
    network: { mode: 'user', subnet: DEFAULT_NETWORK.subnet, gateway: DEFAULT_NETWORK.gateway, address: first!, mac: randomMac() },
    deviceModel: newDeviceModel(id, false),
  };
}

export interface BareBootTimes {
  /** spawn → the -daemonize parent exits (QEMU initialised). */
  parentExitMs: number;
  /** spawn → QMP greeting received. */
  greetingMs: number;
  /** spawn → guest-ping answered. */
  agentMs: number;
  /** spawn → ready marker on the serial console. */
  markerMs: number;
  /** Agent connections tried (each: connect, guest-sync with a 10 s budget, guest-ping). */
  agentAttempts: number;
  /** spawn → the start of the attempt that got the answer. */
  agentAttemptStartMs: number;
}

export class BareQemu {
  qmp: QmpClient | undefined;
  pid: number | undefined;
  readonly paths: VmPaths;
  private unregister: () => void;

  private constructor(readonly spec: QemuVmSpec) {
    this.paths = vmPaths(spec.dir);
    this.unregister = onCleanup(`bare QEMU ${spec.id}`, () => this.destroy());
  }

  /**
   * Spawns QEMU and waits for the QMP greeting, the guest agent and the serial
   * ready marker, all polled concurrently with short intervals: the limit of
   * what QEMU and the guest need.
   */
  static async boot(spec: QemuVmSpec, marker: string, timeoutMs = 60_000, opts: { agentWithAddress?: boolean } = {}): Promise<{ vm: BareQemu; times: BareBootTimes }> {
    assertNotAborting();
    await mkdir(spec.dir, { recursive: true, mode: 0o700 });
    const vm = new BareQemu(spec);
    try {
      const times = await vm.#boot(marker, timeoutMs, opts.agentWithAddress ?? false);
      return { vm, times };
    } catch (err) {
      await vm.destroy();
      throw err;
    }
  }

  async #boot(marker: string, timeoutMs: number, agentWithAddress: boolean): Promise<BareBootTimes> {
    // QEMU as vman started it before confinement: as root, no sandbox, daemonizing itself (vman's launcher no longer asks it to).
    const args = [...buildQemuArgs(this.spec), '-daemonize'];
    let stderr = '';
    let parentExit: { code: number | null; at: number } | undefined;
    const t0 = performance.now();
    const child = spawn(this.spec.qemuBinary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code) => { parentExit = { code, at: performance.now() }; resolve(); });
      child.once('error', (err) => { stderr += String(err); parentExit = { code: -1, at: performance.now() }; resolve(); });
    });
    const failed = (): void => {
      if (parentExit && parentExit.code !== 0) throw new TerminalStateError(`QEMU failed to start (exit ${parentExit.code}): ${stderr.trim()}`);
    };

    // Every poller stops as soon as one of them fails.
    const stop = new AbortController();
    const { signal } = stop;

    let greetingAt: number | undefined;
    const greeting = pollUntil(`the QMP greeting of ${this.spec.id}`, async () => {
      failed();
      this.qmp = await QmpClient.connect(this.paths.qmp, {
        timeoutMs: 10_000,
        log: (e) => {
          if (greetingAt === undefined && e.direction === 'in' && typeof e.message === 'object' && e.message !== null && 'QMP' in e.message) greetingAt = performance.now();
        },
      });
      return { done: true, value: undefined };
    }, { timeoutMs, intervalMs: 5, signal });

    let agentAttempts = 0;
    let attemptStart = 0;
    const agent = pollUntil(`the guest agent of ${this.spec.id}`, async () => {
      failed();
      agentAttempts++;
      attemptStart = performance.now();
      if (this.pid !== undefined && !(await isAlive(this.pid))) throw new TerminalStateError(`QEMU ${this.pid} exited`);
      // One long attempt: the guest-sync waits in the socket until qemu-ga opens its port, so
      // the answer comes as soon as the agent runs (a short budget would add reconnect gaps).
      const ga = await GuestAgentClient.connect(this.paths.guestAgent, { timeoutMs: AGENT_ATTEMPT_MS });
      try {
        await ga.ping(1_000);
        // As vman's agent readiness asks: the agent answers and the guest has an IPv4 address.
        if (agentWithAddress) {
          const ifaces = await ga.networkInterfaces();
          const has = ifaces.some((i) => i.name !== 'lo' && (i['ip-addresses'] ?? []).some((a) => a['ip-address-type'] === 'ipv4'));
          if (!has) return { done: false, seen: 'the agent answers; no IPv4 address yet' };
        }
      } finally {
        await ga.close();
      }
      return { done: true, value: performance.now() };
    }, { timeoutMs, intervalMs: 20, signal });

    const serial = waitForSerialMarker(this.paths.serialLog, marker, timeoutMs, failed, signal);
    const parent = exited.then(async () => {
      failed();
      this.pid = await readPid(this.paths.pidfile);
      if (this.pid === undefined) throw new Error(`QEMU wrote no pidfile: ${stderr.trim()}`);
    });
    try {
      const [, , agentAt, markerAt] = await Promise.all([parent, greeting, agent, serial]);
      return {
        parentExitMs: parentExit!.at - t0, greetingMs: greetingAt! - t0, agentMs: agentAt - t0, markerMs: markerAt - t0,
        agentAttempts, agentAttemptStartMs: attemptStart - t0,
      };
    } catch (err) {
      stop.abort();
      throw err;
    }
  }

  /** system_powerdown → the process has exited (polled every 5 ms). */
  async powerdown(timeoutMs = 30_000): Promise<number> {
    const pid = this.pid;
    if (!this.qmp || pid === undefined) throw new Error('not running');
    const t0 = performance.now();
    await this.qmp.execute('system_powerdown');
    await pollUntil(`QEMU ${pid} to exit after system_powerdown`, async () => (
      (await isAlive(pid)) ? { done: false, seen: 'still running' } : { done: true, value: undefined }
    ), { timeoutMs, intervalMs: 5 });
    return performance.now() - t0;
  }

  /** Kills the QEMU (whatever state it is in) and removes its folder. */
  async destroy(): Promise<void> {
    this.unregister();
    await this.qmp?.close().catch(() => undefined);
    await killQemusUnder(this.spec.dir);
    await rm(this.spec.dir, { recursive: true, force: true });
  }
}

export async function readPid(pidfile: string): Promise<number | undefined> {
  const pid = Number.parseInt((await readFile(pidfile, 'utf8').catch(() => '')).trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Polls a serial log (every 20 ms) until it holds the marker; resolves to performance.now() then. */
export function waitForSerialMarker(
  file: string,
  marker: string,
  timeoutMs: number,
  check: () => void = () => undefined,
  signal?: AbortSignal,
): Promise<number> {
  return pollUntil(`"${marker}" in ${path.basename(path.dirname(file))}/serial.log`, async () => {
    check();
    const text = await readFile(file, 'utf8').catch(() => '');
    return text.includes(marker) ? { done: true, value: performance.now() } : { done: false, seen: `${text.length} bytes` };
  }, signal ? { timeoutMs, intervalMs: 20, signal } : { timeoutMs, intervalMs: 20 });
}

export function shortId(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}
