import { isRecord, JsonLinesSocket } from './json-lines-socket.ts';
import type { ProtocolLogEntry } from './json-lines-socket.ts';

export type { ProtocolLogEntry } from './json-lines-socket.ts';

export interface QmpVersion { qemu: { major: number; minor: number; micro: number }; package: string }
export interface QmpGreeting { version: QmpVersion; capabilities: string[] }
export interface QmpEvent { event: string; data?: Record<string, unknown>; timestamp: { seconds: number; microseconds: number } }
export interface QmpConnectOptions { timeoutMs?: number /* default 5000, covers connect+greeting+qmp_capabilities */; log?: (e: ProtocolLogEntry) => void }

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_EXECUTE_TIMEOUT_MS = 10000;

/** The server answered a command with {"error": {...}}. */
export class QmpError extends Error {
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

export class QmpTimeoutError extends Error {
  readonly command: string;
  readonly timeoutMs: number;
  constructor(command: string, timeoutMs: number, socketPath: string) {
    super(`QMP ${command} on ${socketPath} timed out after ${timeoutMs} ms`);
    this.name = 'QmpTimeoutError';
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

export class QmpClosedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'QmpClosedError';
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface EventWaiter {
  name: string;
  match: ((ev: QmpEvent) => boolean) | undefined;
  settle: (err: Error | null, ev?: QmpEvent) => void;
}

/** The greeting is awaited like a reply, under this key instead of a command id. */
const GREETING = 'greeting';

export class QmpClient {
  readonly socketPath: string;
  /** Resolves when the connection ends for any reason. */
  readonly closed: Promise<void>;
  readonly #sock: JsonLinesSocket;
  readonly #pending = new Map<number | typeof GREETING, Pending>();
  readonly #listeners = new Set<(ev: QmpEvent) => void>();
  readonly #waiters = new Set<EventWaiter>();
  #greeting!: QmpGreeting; // Set by connect() before the client is handed out.
  #nextId = 1;
  #closing = false;

  private constructor(sock: JsonLinesSocket) {
    this.#sock = sock;
    this.socketPath = sock.path;
    sock.onMessage((msg) => this.#onMessage(msg));
    this.closed = sock.closed.then(() => this.#failAll());
  }

  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const sock = await JsonLinesSocket.connect(socketPath, timeoutMs, opts.log);
    const client = new QmpClient(sock);
    try {
      const raw = await client.#expect(GREETING, 'greeting', Math.max(1, deadline - Date.now()), timeoutMs);
      const greeting = parseGreeting(raw);
      if (!greeting) throw new QmpError('greeting', 'ProtocolError', `malformed greeting ${JSON.stringify(raw)}`);
      client.#greeting = greeting;
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
      return client;
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  get greeting(): QmpGreeting {
    return this.#greeting;
  }

  get isClosed(): boolean {
    return this.#closing || this.#sock.isClosed;
  }

  async execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.isClosed) throw this.#closedError();
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS;
    const id = this.#nextId++;
    const reply = this.#expect(id, command, timeoutMs, timeoutMs);
    const message: Record<string, unknown> = { execute: command };
    if (args !== undefined) message['arguments'] = args;
    message['id'] = id;
    try {
      this.#sock.send(message);
    } catch (err) {
      this.#settle(id, new QmpClosedError(`QMP ${command}: connection to ${this.socketPath} is closed`, { cause: err }));
    }
    return (await reply) as T;
  }

  onEvent(listener: (ev: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Register before sending the command that triggers the event, or it may be missed. */
  eventWait(name: string, opts: { timeoutMs: number; match?: (ev: QmpEvent) => boolean }): Promise<QmpEvent> {
    if (this.isClosed) return Promise.reject(this.#closedError());
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        name,
        match: opts.match,
        settle: (err, ev) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          if (err) reject(err);
          else resolve(ev as QmpEvent);
        },
      };
      const timer = setTimeout(
        () => waiter.settle(new QmpTimeoutError(`event ${name}`, opts.timeoutMs, this.socketPath)),
        opts.timeoutMs,
      );
      timer.unref(); // Long waits must not be what keeps the process alive.
      this.#waiters.add(waiter);
    });
  }

  /** Idempotent; pending executes and eventWaits reject with QmpClosedError. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#failAll();
    await this.#sock.close();
    await this.closed;
  }

  /** Registers a reply slot; on timeout the slot is dropped so a late reply is ignored. */
  #expect(key: number | typeof GREETING, command: string, waitMs: number, timeoutMs: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => this.#settle(key, new QmpTimeoutError(command, timeoutMs, this.socketPath)), waitMs);
      this.#pending.set(key, { command, resolve, reject, timer });
    });
  }

  #settle(key: number | typeof GREETING, err: Error | null, value?: unknown): void {
    const pending = this.#pending.get(key);
    if (!pending) return;
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    if (err) pending.reject(err);
    else pending.resolve(value);
  }

  #onMessage(msg: unknown): void {
    if (!isRecord(msg)) return;
    if ('QMP' in msg) return this.#settle(GREETING, null, msg['QMP']);
    if (typeof msg['event'] === 'string') return this.#dispatchEvent(toEvent(msg, msg['event']));
    const id = msg['id'];
    // No numeric id (e.g. a reply to unparseable input): nothing can be waiting on it.
    if (typeof id !== 'number') return;
    const error = msg['error'];
    if (!isRecord(error)) return this.#settle(id, null, msg['return']);
    const command = this.#pending.get(id)?.command ?? '?';
    const errorClass = typeof error['class'] === 'string' ? error['class'] : 'UnknownError';
    const desc = typeof error['desc'] === 'string' ? error['desc'] : JSON.stringify(error);
    this.#settle(id, new QmpError(command, errorClass, desc));
  }

  #dispatchEvent(ev: QmpEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(ev);
      } catch (err) {
        // Surface the bug without starving the remaining listeners of this event.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    for (const waiter of [...this.#waiters]) {
      if (waiter.name !== ev.event) continue;
      try {
        if (waiter.match && !waiter.match(ev)) continue;
        waiter.settle(null, ev);
      } catch (err) {
        waiter.settle(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  #closedError(): QmpClosedError {
    const cause = this.#sock.closeError;
    return new QmpClosedError(`QMP connection to ${this.socketPath} closed`, cause ? { cause } : undefined);
  }

  #failAll(): void {
    if (this.#pending.size === 0 && this.#waiters.size === 0) return;
    const err = this.#closedError();
    for (const key of [...this.#pending.keys()]) this.#settle(key, err);
    for (const waiter of [...this.#waiters]) waiter.settle(err);
  }
}

function parseGreeting(value: unknown): QmpGreeting | null {
  if (!isRecord(value) || !isRecord(value['version'])) return null;
  const version = value['version'];
  const qemu = version['qemu'];
  if (!isRecord(qemu)) return null;
  const { major, minor, micro } = qemu;
  if (typeof major !== 'number' || typeof minor !== 'number' || typeof micro !== 'number') return null;
  const caps = Array.isArray(value['capabilities']) ? value['capabilities'] : [];
  return {
    version: { qemu: { major, minor, micro }, package: typeof version['package'] === 'string' ? version['package'] : '' },
    capabilities: caps.filter((c): c is string => typeof c === 'string'),
  };
}

function toEvent(msg: Record<string, unknown>, event: string): QmpEvent {
  const ts = isRecord(msg['timestamp']) ? msg['timestamp'] : {};
  const seconds = typeof ts['seconds'] === 'number' ? ts['seconds'] : 0;
  const microseconds = typeof ts['microseconds'] === 'number' ? ts['microseconds'] : 0;
  const ev: QmpEvent = { event, timestamp: { seconds, microseconds } };
  if (isRecord(msg['data'])) ev.data = msg['data'];
  return ev;
}
