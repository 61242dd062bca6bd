import { randomInt } from 'node:crypto';
import { isRecord, JsonLinesSocket } from './json-lines-socket.ts';
import type { ProtocolLogEntry } from './qmp-client.ts';

export interface GuestIpAddress { 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }
export interface GuestNetworkInterface { name: string; 'hardware-address'?: string; 'ip-addresses'?: GuestIpAddress[] }
export interface GuestExecResult { exitCode: number; stdout: string; stderr: string; signal?: number }

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_SYNC_TIMEOUT_MS = 5000;
const DEFAULT_EXECUTE_TIMEOUT_MS = 10000;
const DEFAULT_EXEC_TIMEOUT_MS = 30000;
const DEFAULT_READ_FILE_TIMEOUT_MS = 30000;
/** guest-exec-status polling: short at first (most commands end within milliseconds), then every 50 ms. */
const EXEC_POLL_MS = [5, 10, 20, 50] as const;
const READ_CHUNK = 65536;

export class GuestAgentError extends Error {
  readonly command: string;
  readonly errorClass?: string;
  readonly desc?: string;
  constructor(command: string, message: string, fields: { errorClass?: string; desc?: string; cause?: unknown } = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'GuestAgentError';
    this.command = command;
    if (fields.errorClass !== undefined) this.errorClass = fields.errorClass;
    if (fields.desc !== undefined) this.desc = fields.desc;
  }
}

export class GuestAgentTimeoutError extends GuestAgentError {
  readonly timeoutMs: number;
  constructor(command: string, timeoutMs: number, what: string = command, cause?: unknown) {
    super(command, `guest agent ${what} timed out after ${timeoutMs} ms`, { cause });
    this.name = 'GuestAgentTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * qemu-ga replies carry no id and arrive strictly in order, so commands run one at a time
 * and the channel is re-synchronised (guest-sync) whenever a reply may be outstanding.
 */
export class GuestAgentClient {
  readonly socketPath: string;
  readonly closed: Promise<void>;
  readonly #sock: JsonLinesSocket;
  /** Receives every incoming message while a command is in flight. */
  #onReply: ((msg: unknown) => void) | undefined;
  #onClose: (() => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Set when a reply may still be in the channel (timeout, garbage) — next command syncs first. */
  #dirty = false;
  #closing = false;

  private constructor(sock: JsonLinesSocket) {
    this.#sock = sock;
    this.socketPath = sock.path;
    // With no command in flight a message is unsolicited or stale: drop it.
    sock.onMessage((msg) => this.#onReply?.(msg));
    this.closed = sock.closed.then(() => this.#onClose?.());
  }

  static async connect(socketPath: string, opts: { timeoutMs?: number; log?: (e: ProtocolLogEntry) => void } = {}): Promise<GuestAgentClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const sock = await JsonLinesSocket.connect(socketPath, timeoutMs, opts.log);
    const client = new GuestAgentClient(sock);
    try {
      await client.sync(Math.max(1, deadline - Date.now()));
      return client;
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  get isClosed(): boolean {
    return this.#closing || this.#sock.isClosed;
  }

  sync(timeoutMs: number = DEFAULT_SYNC_TIMEOUT_MS): Promise<void> {
    return this.#enqueue(() => this.#sync(timeoutMs));
  }

  async ping(timeoutMs: number = DEFAULT_EXECUTE_TIMEOUT_MS): Promise<void> {
    await this.execute('guest-ping', undefined, { timeoutMs });
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS;
    return this.#enqueue(async () => {
      // One budget covers the re-sync and the command, so callers' deadlines hold.
      const deadline = Date.now() + timeoutMs;
      if (this.#dirty) await this.#sync(timeoutMs);
      const message: Record<string, unknown> = { execute: command };
      if (args !== undefined) message['arguments'] = args;
      const reply = await this.#exchange(command, message, Math.max(1, deadline - Date.now()), timeoutMs, () => true);
      if (!isRecord(reply)) throw this.#protocolError(command, reply);
      const error = reply['error'];
      if (isRecord(error)) {
        const errorClass = typeof error['class'] === 'string' ? error['class'] : 'UnknownError';
        const desc = typeof error['desc'] === 'string' ? error['desc'] : JSON.stringify(error);
        throw new GuestAgentError(command, `guest agent ${command} failed: ${errorClass}: ${desc}`, { errorClass, desc });
      }
      if (!('return' in reply)) throw this.#protocolError(command, reply);
      return reply['return'] as T;
    });
  }

  async networkInterfaces(): Promise<GuestNetworkInterface[]> {
    const ifaces = await this.execute<unknown>('guest-network-get-interfaces');
    if (!Array.isArray(ifaces)) throw this.#protocolError('guest-network-get-interfaces', ifaces);
    return ifaces.filter((i): i is GuestNetworkInterface => isRecord(i) && typeof i['name'] === 'string');
  }

  async exec(path: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<GuestExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const cmdline = [path, ...args].join(' ');
    const remaining = (): number => deadline - Date.now();
    const timeout = (cause?: unknown): GuestAgentTimeoutError =>
      new GuestAgentTimeoutError('guest-exec', timeoutMs, `guest-exec of "${cmdline}"`, cause);
    let expired: GuestAgentTimeoutError | undefined;
    const request: Record<string, unknown> = { path, arg: args, 'capture-output': true };
    if (opts.input !== undefined) request['input-data'] = Buffer.from(opts.input, 'utf8').toString('base64');
    try {
      const started = await this.execute<unknown>('guest-exec', request, { timeoutMs: Math.max(1, remaining()) });
      const pid = isRecord(started) ? started['pid'] : undefined;
      if (typeof pid !== 'number') throw this.#protocolError('guest-exec', started);
      for (let poll = 0; ; poll++) {
        const status = await this.execute<unknown>('guest-exec-status', { pid }, { timeoutMs: Math.max(1, remaining()) });
        if (!isRecord(status)) throw this.#protocolError('guest-exec-status', status);
        if (status['exited'] === true) return toExecResult(status);
        const wait = EXEC_POLL_MS[Math.min(poll, EXEC_POLL_MS.length - 1)]!;
        if (remaining() <= wait) throw (expired = timeout());
        await new Promise<void>((resolve) => setTimeout(resolve, wait));
      }
    } catch (err) {
      // Report the command line rather than whichever step happened to run out of time.
      if (err instanceof GuestAgentTimeoutError && err !== expired) throw timeout(err);
      throw err;
    }
  }

  async readFile(path: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_READ_FILE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const budget = (): { timeoutMs: number } => ({ timeoutMs: Math.max(1, deadline - Date.now()) });
    const handle = await this.execute<unknown>('guest-file-open', { path, mode: 'r' }, budget());
    if (typeof handle !== 'number') throw this.#protocolError('guest-file-open', handle);
    const chunks: Buffer[] = [];
    let done = false;
    try {
      for (;;) {
        const res = await this.execute<unknown>('guest-file-read', { handle, count: READ_CHUNK }, budget());
        if (!isRecord(res)) throw this.#protocolError('guest-file-read', res);
        const b64 = res['buf-b64'];
        if (typeof b64 === 'string' && b64 !== '') chunks.push(Buffer.from(b64, 'base64'));
        if (res['eof'] === true) break;
      }
      done = true;
    } finally {
      // Always release the guest handle; give it its own small budget if ours is spent.
      const closing = this.execute('guest-file-close', { handle }, { timeoutMs: Math.max(2000, deadline - Date.now()) });
      // A close failure must not mask the error that got us here.
      if (done) await closing;
      else await closing.catch(() => undefined);
    }
    // Decode once at the end so multi-byte characters split across chunks survive.
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Idempotent; a command in flight rejects with GuestAgentError. */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#sock.close();
    await this.closed;
  }

  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #sync(timeoutMs: number): Promise<void> {
    this.#dirty = true; // Until the matching reply arrives, the channel is suspect.
    const token = randomInt(1, 2 ** 31);
    const message = { execute: 'guest-sync', arguments: { id: token } };
    await this.#exchange('guest-sync', message, timeoutMs, timeoutMs, (msg) => isRecord(msg) && msg['return'] === token);
    this.#dirty = false;
  }

  /** Sends one message and resolves with the first incoming message `accept` takes. */
  #exchange(
    command: string,
    message: Record<string, unknown>,
    waitMs: number,
    timeoutMs: number,
    accept: (msg: unknown) => boolean,
  ): Promise<unknown> {
    if (this.isClosed) return Promise.reject(this.#closedError(command));
    return new Promise<unknown>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#onReply = undefined;
        this.#onClose = undefined;
      };
      const timer = setTimeout(() => {
        finish();
        this.#dirty = true; // The reply may still arrive and would answer the next command.
        reject(new GuestAgentTimeoutError(command, timeoutMs));
      }, waitMs);
      this.#onReply = (msg) => {
        if (!accept(msg)) return;
        finish();
        resolve(msg);
      };
      this.#onClose = () => {
        finish();
        reject(this.#closedError(command));
      };
      try {
        this.#sock.send(message);
      } catch (err) {
        finish();
        reject(this.#closedError(command, err));
      }
    });
  }

  #closedError(command: string, cause: unknown = this.#sock.closeError): GuestAgentError {
    return new GuestAgentError(command, `guest agent ${command}: connection to ${this.socketPath} closed`, { cause });
  }

  #protocolError(command: string, reply: unknown): GuestAgentError {
    this.#dirty = true;
    const text = JSON.stringify(reply) ?? String(reply);
    return new GuestAgentError(command, `guest agent ${command}: unexpected reply ${text.slice(0, 200)}`);
  }
}

function toExecResult(status: Record<string, unknown>): GuestExecResult {
  const decode = (v: unknown): string => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : '');
  const signal = typeof status['signal'] === 'number' ? status['signal'] : undefined;
  // Killed processes carry no exitcode; use the shell's 128+signal convention.
  const exitCode = typeof status['exitcode'] === 'number' ? status['exitcode'] : signal !== undefined ? 128 + signal : -1;
  const result: GuestExecResult = { exitCode, stdout: decode(status['out-data']), stderr: decode(status['err-data']) };
  if (signal !== undefined) result.signal = signal;
  return result;
}
