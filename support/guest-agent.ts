// The suite's own guest-agent reader, sharing no code with vman's client: what
// the guest says about itself (addresses, disks, files) is read here. The
// protocol is QMP's framing on the virtio-serial socket: a command per line,
// replies in order without ids, so a guest-sync with a fresh number first
// flushes anything a previous client left unread.
import { randomInt } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import path from 'node:path';

export class GuestAgentReaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuestAgentReaderError';
  }
}

export interface GuestInterface { name: string; 'hardware-address'?: string; 'ip-addresses'?: Array<{ 'ip-address-type': string; 'ip-address': string; prefix: number }> }
export interface GuestRun { exitCode: number; stdout: string; stderr: string }

export class GuestAgent {
  private buffer = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly socket: Socket) {
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

  static async open(socketPath: string, timeoutMs = 5_000): Promise<GuestAgent> {
    const socket = createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (err) => reject(new GuestAgentReaderError(`cannot connect to ${socketPath}: ${err.message}`)));
    });
    const agent = new GuestAgent(socket);
    try {
      const id = randomInt(1, 2 ** 31);
      agent.send('guest-sync', { id });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const reply = await agent.readLine(deadline, 'the answer to guest-sync');
        if ((reply as { return?: unknown }).return === id) break; // older lines were someone else's
      }
    } catch (err) {
      agent.close();
      throw err;
    }
    return agent;
  }

  async execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.send(command, args);
    const reply = (await this.readLine(Date.now() + timeoutMs, `the answer to ${command}`)) as { return?: T; error?: { class: string; desc: string } };
    if (reply.error) throw new GuestAgentReaderError(`${command}: ${reply.error.class}: ${reply.error.desc}`);
    return reply.return as T;
  }

  async ping(timeoutMs = 5_000): Promise<void> {
    await this.execute('guest-ping', undefined, { timeoutMs });
  }

  networkInterfaces(): Promise<GuestInterface[]> {
    return this.execute<GuestInterface[]>('guest-network-get-interfaces');
  }

  /** Runs a program in the guest and waits for it, with its output captured. */
  async exec(file: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<GuestRun> {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const { pid } = await this.execute<{ pid: number }>('guest-exec', { path: file, arg: args, 'capture-output': true });
    const deadline = Date.now() + timeoutMs;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      const s = await this.execute<{ exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string }>('guest-exec-status', { pid });
      if (s.exited) {
        const text = (b64?: string): string => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');
        return { exitCode: s.exitcode ?? -1, stdout: text(s['out-data']), stderr: text(s['err-data']) };
      }
      if (Date.now() >= deadline) throw new GuestAgentReaderError(`${file} ${args.join(' ')} did not end within ${timeoutMs} ms in the guest`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private send(command: string, args?: Record<string, unknown>): void {
    this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
  }

  private async readLine(deadline: number, what: string): Promise<unknown> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) {
        try {
          return JSON.parse(line.replace(/^\xff/, ''));
        } catch {
          continue; // a partial line left by a previous client
        }
      }
      if (this.closed) throw new GuestAgentReaderError(`the guest agent closed the connection before ${what}`);
      if (Date.now() >= deadline) throw new GuestAgentReaderError(`no ${what} from the guest agent in time`);
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
}

/** The guest agent's socket in a VM's folder. */
export function agentSocketOf(vmDir: string): string {
  return path.join(vmDir, 'ga.sock');
}

/** A short-lived connection: the agent takes one client at a time. */
export async function withGuestAgent<T>(vmDir: string, fn: (ga: GuestAgent) => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const ga = await GuestAgent.open(agentSocketOf(vmDir), timeoutMs);
  try {
    return await fn(ga);
  } finally {
    ga.close();
  }
}
