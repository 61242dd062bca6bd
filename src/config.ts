// vman's configuration: environment variables, overridden by `vman serve`
// flags of the same names. Validated once, at start-up.
import os from 'node:os';
import path from 'node:path';
import type { AccelRequest } from './host/accel-probe.ts';
import { parseNetworkConfig, type NetworkConfig, type NetworkSettings } from './network/config.ts';
import { isCrashPoint } from './crash-points.ts';
import { parseUidRange, type UidRange } from './operator/confinement.ts';
import { DEFAULT_REPLAY_LIMIT } from './services/events.ts';

export interface VmanConfig {
  storagePath: string;
  dbPath: string;
  listen: { host: string; port: number };
  dryRun: boolean;
  accel: AccelRequest;
  /** Seconds between observer checks; 0 turns the loop off. */
  observerInterval: number;
  bootTimeoutMs: number;
  /** How long a QMP command (and a hot-plug step) may take before QEMU counts as unresponsive. */
  qmpTimeoutMs: number;
  guestDir: string | undefined;
  network: NetworkConfig;
  apiToken: string | undefined;
  maxDiskGb: number;
  /** A crash point to die at (tests of crash safety only; see crash-points.ts). */
  crashAt: string | undefined;
  /**
   * The only folders templates may take kernels, initrds and base images from.
   * Unset: <storage>/images and the folder of the built-in guest (server.ts).
   */
  imageDirs: string[] | undefined;
  /** How long a stop gives the guest: asked through its agent, then by the ACPI power button. */
  stopTimeouts: { agentMs: number; acpiMs: number };
  /** How long close() waits for requests and operations in flight before it lets go anyway. */
  shutdownTimeoutMs: number;
  /** How many of the latest events vman keeps for event-stream clients that reconnect (Last-Event-ID). */
  eventReplay: number;
  /** vman as root: the uids (and gids) its VMs' QEMU processes run as, one each. Unset: the default range. */
  qemuUidRange: UidRange | undefined;
  /** Start VMs without cgroup limits where the host gives vman none. */
  allowUnlimited: boolean;
  /** GET /metrics without the API token (a Prometheus on the same host that holds no token). */
  metricsPublic: boolean;
}

/** Flag name (without --) → environment variable. */
export const SETTINGS = {
  storage: 'VMAN_STORAGE_PATH',
  db: 'VMAN_DB_PATH',
  listen: 'VMAN_LISTEN',
  'dry-run': 'VMAN_OPERATOR_DRY_RUN',
  accel: 'VMAN_ACCEL',
  'observer-interval': 'VMAN_OBSERVER_INTERVAL',
  'boot-timeout': 'VMAN_BOOT_TIMEOUT',
  'qmp-timeout': 'VMAN_QMP_TIMEOUT',
  'guest-dir': 'VMAN_GUEST_DIR',
  'network-mode': 'VMAN_NETWORK_MODE',
  bridge: 'VMAN_BRIDGE',
  vlan: 'VMAN_VLAN',
  subnet: 'VMAN_SUBNET',
  gateway: 'VMAN_GATEWAY',
  range: 'VMAN_RANGE',
  'api-token': 'VMAN_API_TOKEN',
  'max-disk-gb': 'VMAN_MAX_DISK_GB',
  'crash-at': 'VMAN_CRASH_AT',
  'image-dirs': 'VMAN_IMAGE_DIRS',
  'network-restrict': 'VMAN_NETWORK_RESTRICT',
  'stop-agent-timeout': 'VMAN_STOP_AGENT_TIMEOUT',
  'stop-acpi-timeout': 'VMAN_STOP_ACPI_TIMEOUT',
  'shutdown-timeout': 'VMAN_SHUTDOWN_TIMEOUT',
  'qemu-uid-range': 'VMAN_QEMU_UID_RANGE',
  'allow-unlimited': 'VMAN_ALLOW_UNLIMITED',
  'event-replay': 'VMAN_EVENT_REPLAY',
  'metrics-public': 'VMAN_METRICS_PUBLIC',
} as const;

export type SettingName = keyof typeof SETTINGS;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function defaultStoragePath(): string {
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'vman');
}

/** `VMAN_IMAGE_DIRS`: absolute folders separated by ':'. */
function imageDirs(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const dirs = text.split(':').filter((d) => d !== '');
  const bad = dirs.find((d) => !path.isAbsolute(d) || /[\x00-\x1f\x7f,]/.test(d));
  if (dirs.length === 0 || bad !== undefined) {
    throw new ConfigError(`${SETTINGS['image-dirs']} must be absolute folders separated by ":"${bad !== undefined ? `, not ${JSON.stringify(bad)}` : ''}`);
  }
  return dirs.map((d) => path.resolve(d));
}

function crashAt(name: string | undefined): string | undefined {
  if (name !== undefined && !isCrashPoint(name)) {
    throw new ConfigError(`${SETTINGS['crash-at']} ${JSON.stringify(name)} is not a crash point; they are listed in src/crash-points.ts`);
  }
  return name;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, flags: Partial<Record<SettingName, string>> = {}): VmanConfig {
  const get = (name: SettingName): string | undefined => flags[name] ?? (env[SETTINGS[name]] || undefined);

  const storagePath = path.resolve(get('storage') ?? defaultStoragePath());
  const dbPath = path.resolve(get('db') ?? path.join(storagePath, 'vman.db'));

  const listenText = get('listen') ?? '127.0.0.1:8600';
  const m = /^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(listenText);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`${SETTINGS.listen} ${JSON.stringify(listenText)} is not host:port`);
  const listen = { host: (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port: Number(m[2]) };

  const accel = get('accel') ?? 'auto';
  if (accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') throw new ConfigError(`${SETTINGS.accel} must be auto, kvm or tcg, not ${JSON.stringify(accel)}`);

  const number = (name: SettingName, fallback: number, min: number, max: number): number => {
    const text = get(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max) throw new ConfigError(`${SETTINGS[name]} must be a number from ${min} to ${max}, not ${JSON.stringify(text)}`);
    return n;
  };

  const integer = (name: SettingName, fallback: number, min: number, max: number): number => {
    const n = number(name, fallback, min, max);
    if (!Number.isInteger(n)) throw new ConfigError(`${SETTINGS[name]} must be a whole number from ${min} to ${max}, not ${JSON.stringify(get(name))}`);
    return n;
  };

  // A switch that opens something up takes only what it says: a typo must not open it, nor silently keep it shut.
  const flag = (name: SettingName): boolean => {
    const text = get(name);
    if (text === undefined || text === '0' || text === 'false') return false;
    if (text === '1' || text === 'true') return true;
    throw new ConfigError(`${SETTINGS[name]} must be 1, true, 0 or false, not ${JSON.stringify(text)}`);
  };

  const networkSettings: NetworkSettings = {
    mode: get('network-mode'), bridge: get('bridge'), vlan: get('vlan'),
    subnet: get('subnet'), gateway: get('gateway'), range: get('range'), restrict: get('network-restrict'),
  };
  let network: NetworkConfig;
  try {
    network = parseNetworkConfig(networkSettings);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }

  const dry = get('dry-run');
  const uidRange = get('qemu-uid-range');
  let qemuUidRange: UidRange | undefined;
  try {
    qemuUidRange = uidRange === undefined ? undefined : parseUidRange(uidRange);
  } catch (err) {
    throw new ConfigError(`${SETTINGS['qemu-uid-range']}: ${(err as Error).message}`);
  }
  const unlimited = get('allow-unlimited');
  return {
    qemuUidRange,
    allowUnlimited: unlimited === '1' || unlimited === 'true',
    storagePath,
    dbPath,
    listen,
    dryRun: dry === '1' || dry === 'true',
    accel,
    observerInterval: number('observer-interval', 30, 0, 86_400),
    bootTimeoutMs: number('boot-timeout', 60, 1, 3_600) * 1000,
    qmpTimeoutMs: number('qmp-timeout', 10, 0.5, 600) * 1000,
    guestDir: get('guest-dir'),
    network,
    apiToken: get('api-token'),
    maxDiskGb: number('max-disk-gb', 1024, 1, 1024 * 1024),
    crashAt: crashAt(get('crash-at')),
    imageDirs: imageDirs(get('image-dirs')),
    stopTimeouts: {
      agentMs: number('stop-agent-timeout', 30, 1, 3_600) * 1000,
      acpiMs: number('stop-acpi-timeout', 20, 1, 3_600) * 1000,
    },
    shutdownTimeoutMs: number('shutdown-timeout', 30, 0, 3_600) * 1000,
    eventReplay: integer('event-replay', DEFAULT_REPLAY_LIMIT, 0, 100_000),
    metricsPublic: flag('metrics-public'),
  };
}
