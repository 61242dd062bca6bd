// A running QEMU VM: its process, its QMP connection and its guest agent.
// Whatever starts a VM gets one of these and can always stop it: through its
// guest agent when it answers, else the ACPI power button, then QMP `quit`,
// then SIGKILL, each with a deadline of its own.
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { GuestAgentClient, GuestAgentError, type GuestNetworkInterface } from './guest-agent-client.ts';
import { QmpClient, type ProtocolLogEntry, type QmpEvent } from './qmp-client.ts';
import type { ExitInfo, VmHandle } from './operator.ts';
import { describeSignal, launchQemu, readQemuLog, removeRuntimeFiles, type QemuExit } from './qemu-launcher.ts';
import { Confinement, type QemuIdentity } from './confinement.ts';
import { qemuName, vmPaths, type DiskSpec, type QemuVmSpec, type VmPaths } from './qemu-command.ts';
import { blockInventory, hotplugDisk, removeBlock, unplugDisk, type BlockInventory, type HotplugProgress } from './hotplug.ts';
import { crashPoint, type CrashPoint } from '../crash-points.ts';
import { waitForGuestDisk } from './guest-disks.ts';
import { isAlive, qemuNameOf, readProcess, signal, waitForExit } from './proc.ts';
import { pollUntil, TerminalStateError } from '../poll.ts';
import path from 'node:path';
import { INCOMING_FD, loadState, openState, saveState, type SavedState } from './vm-state-file.ts';
import { queryBlockStats, type DiskIoStats } from './block-stats.ts';

/** How a resume went: QEMU started, the state read, the guest running on. */
export interface ResumeTimings {
  launchMs: number;
  loadMs: number;
}

export type StopMethod = 'already-stopped' | 'agent' | 'acpi' | 'quit' | 'kill';

export interface StopOptions {
  /** Skip the guest (agent and ACPI) and go straight to `quit`. */
  force?: boolean;
  /** How long a guest asked through its agent has to power off. */
  agentTimeoutMs?: number;
  /** How long a guest has after the ACPI power button. */
  powerdownTimeoutMs?: number;
  quitTimeoutMs?: number;
  /** Told each rung the stop tried, as it ends: what it waited and what it saw. */
  onRung?: (rung: StopRung) => void;
}

/** One rung of the stop ladder, as it went. */
export interface StopRung {
  rung: 'agent' | 'acpi' | 'quit' | 'kill';
  /** How long this rung took, asking and waiting. */
  ms: number;
  /** Whether QEMU exited on this rung. */
  exited: boolean;
  /** What was seen, in words: the agent's error, no exit within the deadline. */
  saw: string;
}

/** How a guest shows it is ready (its template says which). */
export type ReadinessRule =
  | { kind: 'agent' }
  | { kind: 'ssh'; host: string; port: number }
  | { kind: 'serial'; pattern: RegExp }
  | { kind: 'none' };

export interface Readiness {
  /** The guest's own IPv4 address, when it said it (agent readiness). */
  guestAddress: string | null;
  ms: number;
  /** With `setClock`: the guest's clock minus the host's once set, in ms. */
  clockOffsetMs?: number;
}

export interface VmHandleOptions {
  /** Every QMP message sent and received, for the report. */
  protocolLog?: (vmId: string, entry: ProtocolLogEntry) => void;
  /** Who QEMU runs as, what it may touch, its limits; by default the sandbox alone. */
  confinement?: Confinement;
}

export class QemuVm implements VmHandle {
  readonly paths: VmPaths;
  private exitListeners = new Set<(info: ExitInfo) => void>();
  private exitInfo: ExitInfo | undefined;
  private shutdownEvent: QmpEvent | undefined;
  private stopping = false;
  private disconnected = false;

  private exitStatus: QemuExit | undefined;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly pid: number,
    readonly qmp: QmpClient,
    private readonly opts: VmHandleOptions,
    /** The user QEMU runs as when it is not vman's: its disks are handed to it. */
    readonly identity: QemuIdentity | undefined,
    private readonly exited?: Promise<QemuExit>,
  ) {
    void exited?.then((e) => (this.exitStatus = e));
    this.paths = vmPaths(dir);
    qmp.onEvent((ev) => {
      if (ev.event === 'SHUTDOWN') this.shutdownEvent = ev;
    });
    // QEMU closes its monitor when it exits: that is how vman learns the VM is gone.
    void qmp.closed.then(() => this.onQmpClosed());
  }

  /** How its start resumed a saved state, when it did. */
  resumed: ResumeTimings | undefined;

  /**
   * Launches QEMU and connects to it. With `stateFile`, the guest does not
   * boot: QEMU reads the saved state from a descriptor vman opened and is left
   * paused, for the caller to `resume()` once it has put the rest in place.
   */
  static async start(spec: QemuVmSpec, opts: VmHandleOptions & { launchTimeoutMs?: number; stateFile?: string } = {}): Promise<QemuVm> {
    const started = Date.now();
    const state = opts.stateFile === undefined ? undefined : await openState(opts.stateFile);
    let pid: number;
    let exited: Promise<QemuExit>;
    const confinement = opts.confinement ?? Confinement.sandboxOnly();
    try {
      ({ pid, exited } = await launchQemu(state ? { ...spec, incomingFd: INCOMING_FD } : spec, confinement, opts.launchTimeoutMs, state?.fd));
    } finally {
      await state?.close();
    }
    crashPoint('vm.start.after-launch');
    try {
      const qmp = await QmpClient.connect(vmPaths(spec.dir).qmp, qmpOptions(spec.id, opts));
      const vm = new QemuVm(spec.id, spec.dir, pid, qmp, opts, spec.identity, exited);
      if (state) {
        const launchMs = Date.now() - started;
        vm.resumed = { launchMs, loadMs: await loadState(qmp) };
      }
      return vm;
    } catch (err) {
      signal(pid, 'SIGKILL');
      await waitForExit(pid, 5_000);
      // QEMU opens its monitor before it loads the kernel and the disks: a failure there closes the monitor. Its own words say why.
      const said = await readQemuLog(spec.dir);
      await removeRuntimeFiles(spec.dir);
      await confinement.release(spec.id).catch(() => undefined);
      if (said.trim()) throw new Error(`${(err as Error).message}: QEMU said: ${said.trim()}`, { cause: err });
      throw err;
    }
  }

  /** Reconnects to a QEMU left running by an earlier vman, if its pidfile names a live QEMU of this VM. */
  static async adopt(id: string, dir: string, opts: VmHandleOptions = {}): Promise<QemuVm | undefined> {
    const pid = await readPidfile(dir);
    if (pid === undefined) return undefined;
    const proc = await readProcess(pid);
    if (!proc || proc.state === 'Z' || qemuNameOf(proc.argv) !== qemuName(id)) return undefined;
    const qmp = await QmpClient.connect(vmPaths(dir).qmp, qmpOptions(id, opts));
    return new QemuVm(id, dir, pid, qmp, opts, await processIdentity(pid));
  }

  /** How QEMU ended, when this vman started it and it ends within `ms`. */
  private exitedWithin(ms: number): Promise<QemuExit | undefined> {
    if (!this.exited) return Promise.resolve(undefined);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
    return Promise.race([this.exited, late]).finally(() => clearTimeout(timer));
  }

  /** Called once when the QEMU process has gone, whoever ended it. */
  onExit(listener: (info: ExitInfo) => void): () => void {
    const info = this.exitInfo;
    if (info) queueMicrotask(() => listener(info));
    else this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  async isRunning(): Promise<boolean> {
    return !this.qmp.isClosed && (await isAlive(this.pid));
  }

  /** QMP `query-status`: running, paused, shutdown, ... */
  async runState(): Promise<string> {
    const r = await this.qmp.execute<{ status: string; running: boolean }>('query-status');
    return r.status;
  }

  /** QMP `stop`: the guest's CPUs halt (the clock of a paused guest stands still). */
  async pause(): Promise<void> {
    await this.qmp.execute('stop');
  }

  /** QMP `cont`: from paused, or from a save (its disks taken up again) or a load. */
  async resume(): Promise<void> {
    await this.qmp.execute('cont');
  }

  /** The paused guest's memory and device state to `file`, through a socket in the VM's folder. */
  saveState(file: string): Promise<SavedState> {
    return saveState(this.qmp, path.join(this.dir, 'save.sock'), file, { beforeMigrate: (sock) => this.confinement.grantSocket(sock, this.identity) });
  }

  private get confinement(): Confinement {
    return this.opts.confinement ?? Confinement.sandboxOnly();
  }

  /**
   * Sets the guest's clock to the host's through its agent (a resumed guest's
   * clock stands at the moment it was saved). Returns the guest's clock minus
   * the host's afterwards, in ms, as the agent reads it back.
   */
  async setGuestTime(timeoutMs = 5_000): Promise<number> {
    return this.withGuestAgent(async (ga) => {
      await ga.ping(timeoutMs);
      return setClockThrough(ga, timeoutMs);
    }, timeoutMs);
  }

  /** A short-lived agent connection: the socket takes one client, and tests need their own turn. */
  async withGuestAgent<T>(fn: (ga: GuestAgentClient) => Promise<T>, timeoutMs = 5_000): Promise<T> {
    const ga = await GuestAgentClient.connect(this.paths.guestAgent, { timeoutMs });
    try {
      return await fn(ga);
    } finally {
      await ga.close();
    }
  }

  /**
   * Waits until the guest is ready by its template's rule: its agent answers
   * and it reports an IPv4 address; its SSH server greets; a console line
   * matches; or at once (QEMU runs). Stops early if QEMU exits.
   */
  async waitUntilReady(rule: ReadinessRule, timeoutMs: number, opts: { setClock?: boolean } = {}): Promise<Readiness> {
    const started = Date.now();
    let clockOffsetMs: number | undefined;
    const what = rule.kind === 'agent' ? 'its guest agent to answer and report an address'
      : rule.kind === 'ssh' ? `an SSH server to greet on ${rule.host}:${rule.port}`
        : rule.kind === 'serial' ? `a console line matching ${rule.pattern}` : 'QEMU to run';
    const guestAddress = await pollUntil<string | null>(
      `VM ${this.id}: ${what}`,
      async () => {
        if (!(await this.isRunning())) throw new GuestGoneError(this.id);
        switch (rule.kind) {
          case 'none':
            return { done: true, value: null };
          case 'agent': {
            // A resumed guest's clock is set in the same agent session: each new session costs qemu-ga's poll.
            const address = await this.withGuestAgent(async (ga) => {
              await ga.ping(1_000);
              if (opts.setClock && clockOffsetMs === undefined) clockOffsetMs = await setClockThrough(ga, 5_000);
              return firstIpv4(await ga.networkInterfaces());
            }, 1_500);
            return address ? { done: true, value: address } : { done: false, seen: 'the agent answers; the guest has no IPv4 address yet' };
          }
          case 'ssh':
            return (await sshGreets(rule.host, rule.port)) ? { done: true, value: null } : { done: false, seen: 'no SSH greeting' };
          case 'serial': {
            const text = await this.serialLog();
            return text.split('\n').some((l) => rule.pattern.test(l)) ? { done: true, value: null } : { done: false, seen: `${text.length} bytes of console, no match` };
          }
        }
      },
      { timeoutMs, intervalMs: 100 },
    );
    // Other rules know nothing of an agent: the clock is set apart, where there is one.
    if (opts.setClock && clockOffsetMs === undefined) clockOffsetMs = await this.setGuestTime(2_000).catch(() => undefined);
    return { guestAddress, ms: Date.now() - started, ...(clockOffsetMs === undefined ? {} : { clockOffsetMs }) };
  }

  /**
   * Down the ladder: the guest agent, the ACPI power button, QMP `quit`,
   * SIGKILL. A rung that cannot work (no agent, the agent refused, QMP gone)
   * hands over at once; one that was taken waits its deadline for QEMU to exit.
   */
  async stop(opts: StopOptions = {}): Promise<StopMethod> {
    const { force = false, agentTimeoutMs = 30_000, powerdownTimeoutMs = 20_000, quitTimeoutMs = 5_000 } = opts;
    const report = (rung: StopRung['rung'], started: number, exited: boolean, saw: string): boolean => {
      opts.onRung?.({ rung, ms: Date.now() - started, exited, saw });
      return exited;
    };
    const waitOn = async (rung: StopRung['rung'], started: number, deadlineMs: number, asked: string): Promise<boolean> => {
      const exited = await waitForExit(this.pid, deadlineMs, 5);
      return report(rung, started, exited, exited ? `${asked}; QEMU exited` : `${asked}; QEMU still ran after ${deadlineMs} ms`);
    };
    this.stopping = true;
    try {
      if (!(await isAlive(this.pid))) return 'already-stopped';
      if (!force) {
        const started = Date.now();
        const refusal = await this.askAgentToPowerOff();
        if (refusal === undefined ? await waitOn('agent', started, agentTimeoutMs, 'the agent took guest-shutdown') : report('agent', started, false, refusal)) return 'agent';
      }
      if (!force && !this.qmp.isClosed) {
        const started = Date.now();
        // A live QEMU answers at once; one that does not is no use waiting for.
        const refused = await this.qmp.execute('system_powerdown', undefined, { timeoutMs: 2_000 }).then(() => undefined, (e: unknown) => errorText(e));
        if (refused === undefined ? await waitOn('acpi', started, powerdownTimeoutMs, 'the power button was pressed') : report('acpi', started, false, `system_powerdown failed: ${refused}`)) return 'acpi';
      }
      if (!this.qmp.isClosed) {
        const started = Date.now();
        const failed = await this.qmp.execute('quit', undefined, { timeoutMs: quitTimeoutMs }).then(() => undefined, (e: unknown) => errorText(e));
        // No answer to quit: QEMU closed the monitor as it went, or it is stuck; a moment tells which.
        if (await waitOn('quit', started, failed === undefined ? quitTimeoutMs : 500, failed === undefined ? 'QEMU took quit' : `quit got no answer (${failed})`)) return 'quit';
      }
      const started = Date.now();
      await this.kill();
      report('kill', started, true, 'SIGKILL sent; QEMU exited');
      return 'kill';
    } finally {
      await this.cleanup();
    }
  }

  /**
   * The clean way, as libvirt and Proxmox take it: the guest agent shuts the
   * guest down. guest-shutdown has no reply when it works (the guest goes), so
   * its own timeout is no failure. Undefined when the agent took it; else why
   * not, in words: no agent answered within a second, or it answered with an
   * error (a guest whose shutdown command fails, e.g. systemd without D-Bus).
   */
  private async askAgentToPowerOff(): Promise<string | undefined> {
    return this.withGuestAgent(async (ga) => {
      await ga.ping(1_000);
      return ga.execute('guest-shutdown', { mode: 'powerdown' }, { timeoutMs: 1_000 }).then(
        () => undefined,
        // Only an error reply is a refusal; a timeout or a closed channel is the guest going down.
        (e: unknown) => (e instanceof GuestAgentError && e.errorClass !== undefined ? `the agent refused guest-shutdown: ${e.message}` : undefined),
      );
    }, 1_000).catch((e: unknown) => `no guest agent answered (${errorText(e)})`);
  }

  /** SIGKILL and wait; safe to call twice. */
  async kill(): Promise<void> {
    this.stopping = true;
    signal(this.pid, 'SIGKILL');
    if (!(await waitForExit(this.pid, 10_000))) {
      throw new Error(`QEMU process ${this.pid} of VM ${this.id} survived SIGKILL for 10 s`);
    }
    await this.cleanup();
  }

  async disconnect(): Promise<void> {
    this.disconnected = true;
    await this.qmp.close();
  }

  /** Closes the monitor and removes sockets and pidfile once the process is gone. */
  async cleanup(): Promise<void> {
    await this.qmp.close();
    if (!(await isAlive(this.pid))) {
      await removeRuntimeFiles(this.dir);
      await this.confinement.release(this.id).catch(() => undefined);
    }
  }

  async attachDisk(disk: DiskSpec, opts: { timeoutMs?: number } = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    // QEMU opens the file as its own user: the disk is that user's while attached.
    await this.confinement.grantDisk(disk.path, this.identity);
    // One agent connection for every look at the guest: qemu-ga only notices a
    // new client every 100 ms, so reconnecting per check would add that each time.
    const seeing = this.withGuestAgent((ga) => waitForGuestDisk((fn) => fn(ga), disk.id, { timeoutMs, present: true }), timeoutMs);
    // Handled now, judged later: it may fail while the QMP steps are still running.
    seeing.catch(() => undefined);
    try {
      await hotplugDisk(this.qmp, disk, { timeoutMs, afterStep: (p) => crashAt(ATTACH_POINTS, p) });
    } catch (err) {
      await seeing.catch(() => undefined);
      throw err;
    }
    try {
      const seen = await seeing;
      return seen!.path;
    } catch (err) {
      // The guest never saw it: take it out again so QEMU holds no node for a disk vman calls available.
      await unplugDisk(this.qmp, disk.id, { timeoutMs }).catch(() => undefined);
      throw err;
    }
  }

  detachDisk(diskId: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    return unplugDisk(this.qmp, diskId, { timeoutMs: opts.timeoutMs ?? 15_000, afterStep: (p) => crashAt(DETACH_POINTS, p) });
  }

  releaseDisk(diskId: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    return unplugDisk(this.qmp, diskId, { timeoutMs: opts.timeoutMs ?? 15_000 });
  }

  blockInventory(): Promise<BlockInventory> {
    return blockInventory(this.qmp);
  }

  blockStats(opts: { timeoutMs?: number } = {}): Promise<DiskIoStats[]> {
    return queryBlockStats(this.qmp, opts.timeoutMs ?? 2_000);
  }

  removeBlock(what: BlockInventory, opts: { timeoutMs?: number } = {}): Promise<BlockInventory> {
    return removeBlock(this.qmp, what, opts);
  }

  async guestDevicePath(diskId: string, opts: { timeoutMs?: number } = {}): Promise<string | undefined> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const seen = await this.withGuestAgent((ga) => waitForGuestDisk((fn) => fn(ga), diskId, { timeoutMs, present: true }), timeoutMs);
    return seen?.path;
  }

  async serialLog(): Promise<string> {
    return readFile(this.paths.serialLog, 'utf8').catch(() => '');
  }

  private async onQmpClosed(): Promise<void> {
    if (this.disconnected) return; // vman let go; QEMU runs on
    // The monitor closes just before the process ends; give it a moment.
    await waitForExit(this.pid, 5_000);
    if (await isAlive(this.pid)) return;
    if (!this.stopping) {
      await removeRuntimeFiles(this.dir);
      await this.confinement.release(this.id).catch(() => undefined);
    }
    const guestInitiated = this.shutdownEvent?.data?.guest === true;
    const reason = this.shutdownEvent?.data?.reason;
    // Started by this vman: how it ended is known (reaped a moment after the monitor closed).
    const status = this.exitStatus ?? (await this.exitedWithin(1_000));
    const info: ExitInfo = {
      guestInitiated,
      detail: this.shutdownEvent
        ? `QEMU ${this.pid} shut down (${typeof reason === 'string' ? reason : 'no reason given'})`
        : status?.signal
          ? `QEMU ${this.pid} was ${describeSignal(status)}`
          : `QEMU ${this.pid} exited without a shutdown event (killed or crashed)`,
    };
    this.exitInfo = info;
    for (const l of this.exitListeners) l(info);
    this.exitListeners.clear();
  }
}

// The hot-plug steps of a user's attach and detach, as crash points.
const ATTACH_POINTS: Partial<Record<HotplugProgress, CrashPoint>> = {
  'file-node-added': 'disk.attach.after-file-node',
  'format-node-added': 'disk.attach.after-format-node',
  'device-added': 'disk.attach.after-device-add',
};
const DETACH_POINTS: Partial<Record<HotplugProgress, CrashPoint>> = {
  'device-del-sent': 'disk.detach.after-device-del',
  'device-deleted': 'disk.detach.after-device-deleted',
  'format-node-deleted': 'disk.detach.after-format-node-del',
};

function crashAt(points: Partial<Record<HotplugProgress, CrashPoint>>, progress: HotplugProgress): void {
  const point = points[progress];
  if (point) crashPoint(point);
}

/**
 * Sets the guest's clock to the host's through its agent and returns the
 * guest's clock minus the host's afterwards (ms), as the agent reads it back.
 * qemu-ga sets the clock, then runs hwclock -w; qemu-ga 7.2 refuses outright
 * ("not supported") where there is no /sbin/hwclock (a busybox guest), and
 * then the guest's own date sets it. What the clock reads afterwards decides.
 */
async function setClockThrough(ga: GuestAgentClient, timeoutMs: number): Promise<number> {
  const refusal = await ga.execute('guest-set-time', { time: Date.now() * 1_000_000 }, { timeoutMs }).then(() => undefined, (e: unknown) => e);
  if (refusal !== undefined && !(refusal instanceof GuestAgentError)) throw refusal;
  if (refusal instanceof GuestAgentError && /not currently supported/.test(refusal.message)) {
    const r = await ga.exec('date', ['-s', `@${Math.round(Date.now() / 1000)}`], { timeoutMs });
    if (r.exitCode !== 0) throw new Error(`the guest's date -s failed (${r.exitCode}): ${r.stderr}`);
  }
  const guestNs = await ga.execute<number>('guest-get-time', undefined, { timeoutMs });
  const offset = Math.round(guestNs / 1_000_000 - Date.now());
  if (Math.abs(offset) > 2_000) throw new Error(`the guest's clock is ${offset} ms off the host's after guest-set-time${refusal ? ` (${errorText(refusal)})` : ''}`);
  return offset;
}

/** The first IPv4 address a guest reports outside loopback. */
function firstIpv4(ifaces: GuestNetworkInterface[]): string | undefined {
  return ifaces
    .filter((i) => i.name !== 'lo')
    .flatMap((i) => i['ip-addresses'] ?? [])
    .find((a) => a['ip-address-type'] === 'ipv4')?.['ip-address'];
}

/** True when an SSH server greets ("SSH-2.0-…") on host:port within two seconds. */
function sshGreets(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let seen = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.on('data', (d) => {
      seen += d.toString('latin1');
      if (seen.startsWith('SSH-')) done(true);
      else if (seen.length >= 4) done(false);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(seen.startsWith('SSH-')));
  });
}

export class GuestGoneError extends TerminalStateError {
  constructor(vmId: string) {
    super(`QEMU of VM ${vmId} exited before its guest became ready`);
    this.name = 'GuestGoneError';
  }
}

/** The uid and gid a running process has (adopted QEMU: the user it was started as). */
async function processIdentity(pid: number): Promise<QemuIdentity | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  const gid = /^Gid:\s+(\d+)/m.exec(status)?.[1];
  if (uid === undefined || gid === undefined || Number(uid) === (process.geteuid?.() ?? 0)) return undefined;
  return { uid: Number(uid), gid: Number(gid) };
}

async function readPidfile(dir: string): Promise<number | undefined> {
  const text = await readFile(vmPaths(dir).pidfile, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function qmpOptions(vmId: string, opts: VmHandleOptions) {
  const log = opts.protocolLog;
  return log ? { timeoutMs: 5_000, log: (e: ProtocolLogEntry) => log(vmId, e) } : { timeoutMs: 5_000 };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
