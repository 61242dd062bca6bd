// Puts vman together: storage, database, host probe, operator, services,
// API. `createVman` is what `vman serve` runs and what tests start in-process.
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { buildApp } from './api/app.ts';
import type { HostSummary } from './api/routes/system.ts';
import type { VmanConfig } from './config.ts';
import { openDatabase, type VmanDb } from './db/database.ts';
import { formatVersion, MissingPrerequisiteError } from './host/binaries.ts';
import { defaultGuestDir, describeGuest, loadGuestImage } from './host/guest-image.ts';
import { probeHost, type HostInfo } from './host/probe.ts';
import { AddressPool } from './network/address-pool.ts';
import { UserNetworkBackend, type NetworkBackend } from './network/backend.ts';
import { BridgeNetworkBackend, reservationsFrom } from './network/bridge-backend.ts';
import { DryRunOperator } from './operator/dry-run-operator.ts';
import { QemuOperator, UnavailableOperator, type Operator } from './operator/operator.ts';
import { Confinement } from './operator/confinement.ts';
import type { ProtocolLogEntry } from './operator/qmp-client.ts';
import { TemplateService, type BootFiles } from './services/template-service.ts';
import { ImageDirs } from './services/image-dirs.ts';
import { VmService, type LogFields } from './services/vm-service.ts';
import { SnapshotService } from './services/snapshot-service.ts';
import { DiskService } from './services/disk-service.ts';
import { IntentJournal } from './services/intent-journal.ts';
import { NetworkService } from './services/network-service.ts';
import { recover } from './services/recovery.ts';
import { RepairService } from './services/repair.ts';
import { VmRuntime } from './services/vm-runtime.ts';
import { EventBus } from './services/events.ts';
import { publishingStateChanges } from './services/state-events.ts';
import { findingJson } from './api/routes/observer.ts';
import { Observer } from './observer/observer.ts';
import { defaultSources } from './observer/snapshot.ts';
import { StorageLock } from './storage-lock.ts';
import { VmanMetrics } from './metrics/metrics.ts';
import { armCrashPoint } from './crash-points.ts';

export interface Vman {
  config: VmanConfig;
  app: FastifyInstance;
  db: VmanDb;
  templates: TemplateService;
  vms: VmService;
  snapshots: SnapshotService;
  disks: DiskService;
  /** Live QEMU handles and per-VM locks (see vm-runtime.ts). */
  runtime: VmRuntime;
  observer: Observer;
  /** VM and disk state changes and observer findings, as they happen (GET /api/v1/events). */
  events: EventBus;
  /** What GET /metrics serves. */
  metrics: VmanMetrics;
  host: HostSummary;
  operator: Operator;
  /** Starts listening; returns the base URL. */
  listen(): Promise<string>;
  /** Stops serving and lets go of QEMU; running VMs keep running (they outlive vman). */
  close(): Promise<void>;
}

export interface CreateOptions {
  /** A shared dry-run operator lets unit tests "restart" vman over the same simulated processes. */
  operator?: Operator;
  /** A host probe already made (the suite probes once per run). */
  hostInfo?: HostInfo;
  logger?: FastifyServerOptions['logger'];
  protocolLog?: (vmId: string, entry: ProtocolLogEntry) => void;
  networkBackend?: NetworkBackend;
}

export async function createVman(config: VmanConfig, opts: CreateOptions = {}): Promise<Vman> {
  // Before anything else: a second vman on this storage must not touch it.
  await mkdir(config.storagePath, { recursive: true, mode: 0o700 });
  const lock = StorageLock.acquire(config.storagePath);
  try {
    return await openVman(config, opts, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function openVman(config: VmanConfig, opts: CreateOptions, lock: StorageLock): Promise<Vman> {
  armCrashPoint(config.crashAt);
  // VM folders hold QMP and guest-agent sockets: not for other users' eyes or hands.
  for (const dir of ['vms', 'disks']) {
    await mkdir(path.join(config.storagePath, dir), { recursive: true, mode: 0o700 });
    await chmod(path.join(config.storagePath, dir), 0o700);
  }
  await mkdir(path.dirname(config.dbPath), { recursive: true, mode: 0o700 });

  let operator: Operator;
  let host: HostSummary;
  let boot: BootFiles;
  let qemuBinary = 'qemu-system-x86_64';
  let qemuImg = 'qemu-img';
  let accel: 'kvm' | 'tcg' = 'tcg';
  let confinement: Confinement | undefined;
  if (config.dryRun) {
    operator = opts.operator ?? new DryRunOperator();
    const guest = await loadGuestImage(config.guestDir).catch(() => undefined);
    const dir = config.guestDir ?? defaultGuestDir();
    boot = guest ?? { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), cmdline: 'console=ttyS0' };
    host = {
      qemu_version: null, qemu_path: null, qemu_img_path: null, accelerator: 'none',
      accelerator_reason: 'dry run: simulated processes (VMAN_OPERATOR_DRY_RUN=1)', host_kernel: os.release(),
      guest_image: guest ? describeGuest(guest) : null, dry_run: true,
    };
  } else {
    const probed = opts.hostInfo ?? (await probeHost({ storagePath: config.storagePath, requestedAccel: config.accel, guestDir: config.guestDir }).catch((err: unknown) => {
      // Missing QEMU or guest image: serve anyway, and say why nothing can start.
      if (err instanceof MissingPrerequisiteError) return err;
      throw err;
    }));
    if (probed instanceof MissingPrerequisiteError) {
      operator = opts.operator ?? new UnavailableOperator(probed.message);
      const dir = config.guestDir ?? defaultGuestDir();
      boot = { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), cmdline: 'console=ttyS0' };
      host = {
        qemu_version: null, qemu_path: null, qemu_img_path: null, accelerator: 'none',
        accelerator_reason: `QEMU is not usable: ${probed.message}`, host_kernel: os.release(), guest_image: null, dry_run: false,
      };
    } else {
      const info = probed;
      confinement = await Confinement.create({
        ...(config.qemuUidRange ? { uidRange: config.qemuUidRange } : {}), allowUnlimited: config.allowUnlimited, needsTun: config.network.mode === 'bridge',
      });
      const refusal = confinement.refusal;
      operator = opts.operator ?? (refusal
        ? new UnavailableOperator(refusal)
        : new QemuOperator({ confinement, ...(opts.protocolLog ? { protocolLog: opts.protocolLog } : {}) }));
      boot = info.guest;
      qemuBinary = info.qemu.path;
      qemuImg = info.qemuImg.path;
      accel = info.accel.accel;
      host = {
        qemu_version: formatVersion(info.qemu.version), qemu_path: info.qemu.path, qemu_img_path: info.qemuImg.path,
        accelerator: info.accel.accel, accelerator_reason: info.accel.reason, host_kernel: info.hostKernel,
        guest_image: describeGuest(info.guest), dry_run: false, confinement: confinement.summary(),
      };
    }
  }

  // Where vman is root, each VM's user passes through the storage to its own folder (0711: pass, not list),
  // and reads base images and kernels from its images folder (0755).
  const dirMode = confinement?.storageDirMode ?? 0o700;
  for (const dir of ['', 'vms', 'disks']) await chmod(path.join(config.storagePath, dir), dirMode);

  const events = new EventBus({ replayLimit: config.eventReplay });
  // Every VM and disk state written through this handle is published once committed.
  const db = publishingStateChanges(openDatabase(config.dbPath), events);
  // The database holds every VM's layout: only vman's user may read it.
  await chmod(config.dbPath, 0o600);
  let network: NetworkBackend | undefined;
  // Fields (vm_id, disk_id, ...) go into the log line as pino bindings, not only into the text.
  let log: (msg: string, fields?: LogFields) => void = () => undefined;
  try {
    // Templates take boot files only from here: by default vman's own images folder and the built-in guest's.
    const imageDirs = config.imageDirs ?? [path.join(config.storagePath, 'images'), path.dirname(boot.kernel)];
    await mkdir(path.join(config.storagePath, 'images'), { recursive: true, mode: 0o700 });
    await chmod(path.join(config.storagePath, 'images'), confinement?.perVmUser ? 0o755 : 0o700);
    host.image_dirs = imageDirs;
    const templates = new TemplateService(db, { imageDirs: new ImageDirs(imageDirs), qemuImg });
    templates.ensureBuiltins(boot);
    const pool = new AddressPool(config.network, db.addresses);
    const net: NetworkBackend = opts.networkBackend ?? (config.network.mode === 'bridge'
      ? new BridgeNetworkBackend(config.network, { storagePath: config.storagePath, reservations: () => reservationsFrom(db), log: (m) => log(m) })
      : new UserNetworkBackend(config.network));
    network = net;
    await net.open();
    const runtime = new VmRuntime({ db, operator, pool, network: net, log: (m, f) => log(m, f) });
    const metrics = new VmanMetrics({
      vms: () => db.vms.list(), disks: () => db.disks.list(), handle: (id) => runtime.handle(id),
      // A simulated QEMU has no process to read.
      ...(operator.dryRun ? { usage: async () => undefined } : {}),
    });
    const journal = new IntentJournal(db);
    const vms = new VmService({
      db, runtime, journal, templates, pool, storagePath: config.storagePath, ...(confinement ? { confinement } : {}),
      qemuBinary, qemuImg, accel, bootTimeoutMs: config.bootTimeoutMs, stopTimeouts: config.stopTimeouts, log: (m, f) => log(m, f),
    });
    const snapshots = new SnapshotService({ db, runtime, journal, vms, templates, log: (m, f) => log(m, f) });
    const disks = new DiskService({
      db, runtime, journal, storagePath: config.storagePath, qemuImg, maxDiskGb: config.maxDiskGb, qmpTimeoutMs: config.qmpTimeoutMs, log: (m, f) => log(m, f),
    });
    const observer = new Observer({
      sources: defaultSources(db, config.storagePath, {
        owner: journal.owner,
        ...(net.inventory ? { networkInventory: () => net.inventory!() } : {}),
      }),
      storagePath: config.storagePath,
      intervalSeconds: config.observerInterval,
      log: (msg, findings) => log(`${msg}: ${findings.map((f) => `${f.kind} ${f.resourceId} (${f.observed})`).join('; ')}`),
      onNewFindings: (found) => found.forEach((f) => events.publish({ type: 'observer.finding', data: findingJson(f) })),
      onReport: (report) => metrics.observed(report),
    });
    metrics.instrument(vms, 'vm', { create: 'create', start: 'start', stop: 'stop', restart: 'restart', delete: 'delete' });
    metrics.instrument(disks, 'disk', { create: 'create', delete: 'delete', attach: 'attach', detach: 'detach' });
    metrics.instrument(snapshots, 'snapshot', { create: 'create', revert: 'revert', delete: 'delete' });
    const repairs = new RepairService({ db, runtime, log: (m) => log(m) });
    const app = await buildApp({ templates, vms, snapshots, disks, observer, repairs, network: new NetworkService(config.network, db), host, events, metrics, storagePath: config.storagePath }, {
      apiToken: config.apiToken, metricsPublic: config.metricsPublic,
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    });
    log = (m, f) => (f ? app.log.info(f, m) : app.log.info(m));
    // What was wrong while vman was away, before recovery settles it: the first report.
    const startup = await observer.check();
    if (startup.findings.length > 0) log(`start-up check found ${startup.findings.length} disagreement(s)`);
    // Adopt the VMs that kept running; finish or undo what a dead vman left half-done.
    metrics.recovered(await recover({ db, journal, runtime, forgetVm: (id) => vms.forget(id), log: (m) => log(m) }));
    observer.start();

    let closing: Promise<void> | undefined;
    return {
      config, app, db, templates, vms, snapshots, disks, runtime, observer, events, metrics, host, operator,
      async listen() {
        const url = await app.listen({ host: config.listen.host, port: config.listen.port });
        lock.serving(url);
        return url;
      },
      close() {
        closing ??= shutDown({ config, app, events, observer, runtime, log: (m) => log(m) }).finally(async () => {
          await net.close();
          db.close();
          lock.release();
        });
        return closing;
      },
    };
  } catch (err) {
    events.close();
    // Whatever was started for this vman stops with it (dnsmasq in bridge mode).
    await network?.close().catch(() => undefined);
    db.close();
    throw err;
  }
}

/**
 * The graceful part of close(): event streams end (an open one would hold the
 * server open), the observer loop stops, no new request is taken, and requests
 * and operations in flight get until the shutdown deadline. Past it vman lets
 * go anyway: connections are cut and QEMU released; an operation cut short is
 * finished or undone by recovery at the next start. Running VMs are never
 * stopped: they outlive vman and are adopted at its next start.
 */
async function shutDown(o: {
  config: VmanConfig; app: FastifyInstance; events: EventBus; observer: Observer; runtime: VmRuntime; log: (msg: string) => void;
}): Promise<void> {
  o.events.close();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), o.config.shutdownTimeoutMs);
  });
  const inFlight = Promise.all([o.observer.stop(), o.app.close()])
    .then(() => o.runtime.locks.drain())
    .then(() => true as const, (err: unknown) => {
      o.log(`shutdown: ${err instanceof Error ? err.message : String(err)}`);
      return true as const;
    });
  try {
    const inTime = await Promise.race([inFlight, deadline]);
    if (!inTime) {
      o.log(`shutdown: ${o.runtime.locks.busy} operation(s) still running after ${o.config.shutdownTimeoutMs / 1000} s: letting go (recovery settles them at the next start)`);
      o.app.server.closeAllConnections();
    }
    await o.runtime.release(deadline);
  } finally {
    clearTimeout(timer);
  }
}
