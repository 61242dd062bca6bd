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
import type { ProtocolLogEntry } from './operator/qmp-client.ts';
import { TemplateService, type BootFiles } from './services/template-service.ts';
import { ImageDirs } from './services/image-dirs.ts';
import { VmService } from './services/vm-service.ts';
import { DiskService } from './services/disk-service.ts';
import { IntentJournal } from './services/intent-journal.ts';
import { NetworkService } from './services/network-service.ts';
import { recover } from './services/recovery.ts';
import { RepairService } from './services/repair.ts';
import { VmRuntime } from './services/vm-runtime.ts';
import { Observer } from './observer/observer.ts';
import { defaultSources } from './observer/snapshot.ts';
import { StorageLock } from './storage-lock.ts';
import { armCrashPoint } from './crash-points.ts';

export interface Vman {
  config: VmanConfig;
  app: FastifyInstance;
  db: VmanDb;
  templates: TemplateService;
  vms: VmService;
  disks: DiskService;
  /** Live QEMU handles and per-VM locks (see vm-runtime.ts). */
  runtime: VmRuntime;
  observer: Observer;
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
      operator = opts.operator ?? new QemuOperator(opts.protocolLog ? { protocolLog: opts.protocolLog } : {});
      boot = info.guest;
      qemuBinary = info.qemu.path;
      qemuImg = info.qemuImg.path;
      accel = info.accel.accel;
      host = {
        qemu_version: formatVersion(info.qemu.version), qemu_path: info.qemu.path, qemu_img_path: info.qemuImg.path,
        accelerator: info.accel.accel, accelerator_reason: info.accel.reason, host_kernel: info.hostKernel,
        guest_image: describeGuest(info.guest), dry_run: false,
      };
    }
  }

  const db = openDatabase(config.dbPath);
  // The database holds every VM's layout: only vman's user may read it.
  await chmod(config.dbPath, 0o600);
  let network: NetworkBackend | undefined;
  let log: (msg: string) => void = () => undefined;
  try {
    // Templates take boot files only from here: by default vman's own images folder and the built-in guest's.
    const imageDirs = config.imageDirs ?? [path.join(config.storagePath, 'images'), path.dirname(boot.kernel)];
    await mkdir(path.join(config.storagePath, 'images'), { recursive: true, mode: 0o700 });
    host.image_dirs = imageDirs;
    const templates = new TemplateService(db, { imageDirs: new ImageDirs(imageDirs), qemuImg });
    templates.ensureBuiltins(boot);
    const pool = new AddressPool(config.network, db.addresses);
    const net: NetworkBackend = opts.networkBackend ?? (config.network.mode === 'bridge'
      ? new BridgeNetworkBackend(config.network, { storagePath: config.storagePath, reservations: () => reservationsFrom(db), log: (m) => log(m) })
      : new UserNetworkBackend(config.network));
    network = net;
    await net.open();
    const runtime = new VmRuntime({ db, operator, pool, network: net, log: (m) => log(m) });
    const journal = new IntentJournal(db);
    const vms = new VmService({
      db, runtime, journal, templates, pool, storagePath: config.storagePath,
      qemuBinary, qemuImg, accel, bootTimeoutMs: config.bootTimeoutMs, stopTimeouts: config.stopTimeouts, log: (m) => log(m),
    });
    const disks = new DiskService({
      db, runtime, journal, storagePath: config.storagePath, qemuImg, maxDiskGb: config.maxDiskGb, qmpTimeoutMs: config.qmpTimeoutMs, log: (m) => log(m),
    });
    const observer = new Observer({
      sources: defaultSources(db, config.storagePath, {
        owner: journal.owner,
        ...(net.inventory ? { networkInventory: () => net.inventory!() } : {}),
      }),
      storagePath: config.storagePath,
      intervalSeconds: config.observerInterval,
      log: (msg, findings) => log(`${msg}: ${findings.map((f) => `${f.kind} ${f.resourceId} (${f.observed})`).join('; ')}`),
    });
    const repairs = new RepairService({ db, runtime, log: (m) => log(m) });
    const app = await buildApp({ templates, vms, disks, observer, repairs, network: new NetworkService(config.network, db), host }, {
      apiToken: config.apiToken,
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    });
    log = (m) => app.log.info(m);
    // What was wrong while vman was away, before recovery settles it: the first report.
    const startup = await observer.check();
    if (startup.findings.length > 0) log(`start-up check found ${startup.findings.length} disagreement(s)`);
    // Adopt the VMs that kept running; finish or undo what a dead vman left half-done.
    await recover({ db, journal, runtime, forgetVm: (id) => vms.forget(id), log: (m) => log(m) });
    observer.start();

    let closed = false;
    return {
      config, app, db, templates, vms, disks, runtime, observer, host, operator,
      async listen() {
        const url = await app.listen({ host: config.listen.host, port: config.listen.port });
        lock.serving(url);
        return url;
      },
      async close() {
        if (closed) return;
        closed = true;
        // The loop first: no check may run against a closed database.
        await observer.stop();
        await app.close();
        await runtime.release();
        await net.close();
        db.close();
        lock.release();
      },
    };
  } catch (err) {
    // Whatever was started for this vman stops with it (dnsmasq in bridge mode).
    await network?.close().catch(() => undefined);
    db.close();
    throw err;
  }
}
