import net from 'node:net';

/** Lines longer than this are treated as a broken peer rather than buffered forever. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const NEWLINE = 0x0a;

export type JsonLineListener = (message: unknown) => void;
/** One protocol message, as seen on the wire, for diagnostics. */
export interface ProtocolLogEntry { at: number /* Date.now() */; direction: 'out' | 'in'; message: unknown }
export type ProtocolLogger = (e: ProtocolLogEntry) => void;

/**
 * Newline-delimited JSON over a unix socket, as spoken by QMP and qemu-ga.
 * One consumer at a time is the norm, but any number of listeners may subscribe.
 */
export class JsonLinesSocket {
  readonly path: string;
  /** Resolves (never rejects) once the socket has fully closed, for whatever reason. */
  readonly closed: Promise<void>;
  readonly #socket: net.Socket;
  readonly #listeners = new Set<JsonLineListener>();
  readonly #log: ProtocolLogger | undefined;
  #pending: Buffer = Buffer.alloc(0);
  #isClosed = false;
  #closeError: Error | undefined;
  #badLines = 0;

  private constructor(path: string, socket: net.Socket, log: ProtocolLogger | undefined) {
    this.path = path;
    this.#socket = socket;
    this.#log = log;
    this.closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.#isClosed = true;
        resolve();
      });
    });
    // An 'error' is always followed by 'close'; keep the first one as the reason.
    socket.on('error', (err) => {
      this.#closeError ??= err;
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      // A well-behaved peer ends every message with '\n'; still try a trailing fragment.
      if (this.#pending.length > 0) this.#onLine(this.#pending);
      this.#pending = Buffer.alloc(0);
    });
  }

  /**
   * Connects to `path`; rejects with an Error naming the path on failure or after `timeoutMs`.
   * `log` sees every message sent and every parsed message received.
   */
  static connect(path: string, timeoutMs: number, log?: ProtocolLogger): Promise<JsonLinesSocket> {
    return new Promise<JsonLinesSocket>((resolve, reject) => {
      const socket = net.createConnection({ path });
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(new Error(`connect to ${path} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        cleanup();
        socket.destroy();
        reject(new Error(`connect to ${path} failed: ${err.message}`, { cause: err }));
      };
      const onConnect = (): void => {
        cleanup();
        resolve(new JsonLinesSocket(path, socket, log));
      };
      function cleanup(): void {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('connect', onConnect);
      }
      socket.once('error', onError);
      socket.once('connect', onConnect);
    });
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** The socket error that ended the connection, if it ended with one. */
  get closeError(): Error | undefined {
    return this.#closeError;
  }

  /** Received lines that were neither blank nor parseable JSON. */
  get badLineCount(): number {
    return this.#badLines;
  }

  /** Subscribes to parsed messages; returns an unsubscribe function. */
  onMessage(listener: JsonLineListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Writes one message as a single line. Throws if the socket is no longer writable. */
  send(message: unknown): void {
    if (this.#isClosed || this.#socket.destroyed || !this.#socket.writable) {
      throw new Error(`cannot send on ${this.path}: socket is closed`);
    }
    this.#socket.write(JSON.stringify(message) + '\n');
    this.#emitLog('out', message);
  }

  /** Idempotent; resolves once the socket is closed. */
  close(): Promise<void> {
    if (!this.#isClosed) this.#socket.destroy();
    return this.closed;
  }

  #onData(chunk: Buffer): void {
    let buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(NEWLINE)) !== -1) {
      this.#onLine(buf.subarray(0, nl));
      // A listener may have closed us mid-chunk; stop delivering.
      if (this.#socket.destroyed) {
        this.#pending = Buffer.alloc(0);
        return;
      }
      buf = buf.subarray(nl + 1);
    }
    if (buf.length > MAX_LINE_BYTES) {
      this.#socket.destroy(new Error(`line from ${this.path} exceeds ${MAX_LINE_BYTES} bytes`));
      buf = Buffer.alloc(0);
    }
    // Copy so the retained fragment does not pin the whole original chunk.
    this.#pending = Buffer.from(buf);
  }

  #onLine(raw: Buffer): void {
    const text = raw.toString('utf8').trim();
    if (text === '') return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      // qemu-ga prefixes guest-sync-delimited replies with 0xFF; it also resets parsers with it.
      let start = 0;
      while (start < raw.length && (raw[start] === 0xff || isSpace(raw[start]))) start++;
      const stripped = raw.subarray(start).toString('utf8').trim();
      if (stripped === '') return;
      try {
        message = JSON.parse(stripped);
      } catch {
        this.#badLines++;
        return;
      }
    }
    this.#emitLog('in', message);
    for (const listener of [...this.#listeners]) listener(message);
  }

  #emitLog(direction: 'out' | 'in', message: unknown): void {
    if (!this.#log) return;
    try {
      this.#log({ at: Date.now(), direction, message });
    } catch {
      // Logging is diagnostics only; a broken logger must not break the protocol.
    }
  }
}

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}

/** Narrows a parsed JSON value to a plain object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
