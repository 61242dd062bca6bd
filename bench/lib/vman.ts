// An in-process vman for the benchmarks (as the suite starts one, see
// world/vman-service.ts) and a lean HTTP client: node:http over one
// keep-alive connection, so the client adds as little as possible to what is
// measured.
import http from 'node:http';
import { loadConfig } from '../../src/config.ts';
import type { HostInfo } from '../../src/host/probe.ts';
import type { ProtocolLogEntry } from '../../src/operator/qmp-client.ts';
import { createVman, type Vman } from '../../src/server.ts';
import { assertNotAborting, killQemusUnder, onCleanup } from './cleanup.ts';

export interface HttpResult<T = unknown> {
  status: number;
  body: T;
  ms: number;
}

export class HttpClient {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  constructor(readonly baseUrl: string) {}

  /** One request; `ms` is from just before the request is written to the parsed JSON body. */
  request<T = unknown>(method: string, route: string, body?: unknown): Promise<HttpResult<T>> {
    // A stop is under way: no new start, attach or create (DELETE still helps clean up).
    if (method !== 'DELETE') assertNotAborting();
    const url = new URL(route.replace(/^\//, ''), this.baseUrl);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            // Not JSON: hand back the text.
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, ms: performance.now() - t0 });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like request(), but any status other than `expect` is an error naming the response. */
  async expect<T = unknown>(status: number, method: string, route: string, body?: unknown): Promise<HttpResult<T>> {
    const r = await this.request<T>(method, route, body);
    if (r.status !== status) throw new Error(`${method} ${route}: HTTP ${r.status} (wanted ${status}): ${JSON.stringify(r.body).slice(0, 500)}`);
    return r;
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface BenchVman {
  vman: Vman;
  http: HttpClient;
  storagePath: string;
  /** The last lines vman logged, for an error message. */
  logTail(): string;
  /** Closes vman, kills every QEMU under its storage (vman's VMs outlive it by design). */
  close(): Promise<void>;
}

export async function startBenchVman(opts: {
  storagePath: string;
  hostInfo?: HostInfo;
  dryRun?: boolean;
  protocolLog?: (vmId: string, entry: ProtocolLogEntry) => void;
  /** Extra settings (VMAN_IMAGE_DIRS, VMAN_BOOT_TIMEOUT, ...). */
  env?: Record<string, string>;
  /** Every line vman logs (pino JSON), as it is written. */
  onLog?: (line: string) => void;
}): Promise<BenchVman> {
  assertNotAborting();
  const env: Record<string, string> = {
    VMAN_STORAGE_PATH: opts.storagePath,
    VMAN_OBSERVER_INTERVAL: '0',
    VMAN_BOOT_TIMEOUT: '60',
    ...(opts.dryRun ? { VMAN_OPERATOR_DRY_RUN: '1' } : {}),
    ...(process.env.VMAN_ACCEL ? { VMAN_ACCEL: process.env.VMAN_ACCEL } : {}),
    ...opts.env,
  };
  const config = loadConfig(env, { listen: '127.0.0.1:0' });
  const lines: string[] = [];
  // Logged as `vman serve` logs (info level, every request), into memory instead of a terminal.
  const vman = await createVman(config, {
    ...(opts.hostInfo ? { hostInfo: opts.hostInfo } : {}),
    ...(opts.protocolLog ? { protocolLog: opts.protocolLog } : {}),
    logger: {
      level: 'info',
      stream: {
        write: (line: string) => {
          opts.onLog?.(line);
          lines.push(line);
          if (lines.length > 200) lines.splice(0, lines.length - 100);
        },
      },
    },
  });
  let closed = false;
  let client: HttpClient | undefined;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    unregister();
    client?.close();
    await vman.close().catch(() => undefined);
    await killQemusUnder(opts.storagePath);
  };
  const unregister = onCleanup(`vman in ${opts.storagePath}`, close);
  try {
    client = new HttpClient(`${await vman.listen()}/`);
  } catch (err) {
    await close();
    throw err;
  }
  return { vman, http: client, storagePath: opts.storagePath, logTail: () => lines.slice(-20).join(''), close };
}
