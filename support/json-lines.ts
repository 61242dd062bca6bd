// Newline-delimited JSON over a unix socket, read with a deadline: the framing
// QMP and the guest agent share. The suite's own (vman's client is not used).
import { createConnection, type Socket } from 'node:net';

export class JsonLinesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonLinesError';
  }
}

export class JsonLines {
  private buffer = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly socket: Socket, private readonly peer: string) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line) this.lines.push(line);
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  /** `peer` names the other end in errors ("QEMU", "the guest agent"). */
  static async connect(socketPath: string, peer: string): Promise<JsonLines> {
    const socket = createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (err) => reject(new JsonLinesError(`cannot connect to ${peer} at ${socketPath}: ${err.message}`)));
    });
    return new JsonLines(socket, peer);
  }

  /** True once the other end closed the connection. */
  get isClosed(): boolean {
    return this.closed && this.lines.length === 0;
  }

  send(message: object): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** The next message; a line that is not JSON (a half line left by an earlier client, a 0xff sync byte) is skipped. */
  async next(deadline: number, what: string): Promise<Record<string, unknown>> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) {
        try {
          return JSON.parse(line.replace(/^\xff/, '')) as Record<string, unknown>;
        } catch {
          continue;
        }
      }
      if (this.closed) throw new JsonLinesError(`${this.peer} closed the connection before ${what}`);
      if (Date.now() >= deadline) throw new JsonLinesError(`no ${what} from ${this.peer} in time`);
      // Woken by the next line, or at the deadline.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
