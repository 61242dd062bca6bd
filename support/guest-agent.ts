// The suite's own guest-agent reader, sharing no code with vman's client: what
// the guest says about itself (addresses, disks, files) is read here. The
// protocol is QMP's framing on the virtio-serial socket: a command per line,
// replies in order without ids, so a guest-sync with a fresh number first
// flushes anything a previous client left unread.
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { JsonLines } from './json-lines.ts';
import { pollUntil } from './poll.ts';

export class GuestAgentReaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuestAgentReaderError';
  }
}

export interface GuestInterface { name: string; 'hardware-address'?: string; 'ip-addresses'?: Array<{ 'ip-address-type': string; 'ip-address': string; prefix: number }> }
export interface GuestRun { exitCode: number; stdout: string; stderr: string }

export class GuestAgent {
  private constructor(private readonly lines: JsonLines) {}

  static async open(socketPath: string, timeoutMs = 5_000): Promise<GuestAgent> {
    const agent = new GuestAgent(await JsonLines.connect(socketPath, 'the guest agent'));
    try {
      const id = randomInt(1, 2 ** 31);
      agent.lines.send({ execute: 'guest-sync', arguments: { id } });
      const deadline = Date.now() + timeoutMs;
      // Older replies were someone else's: read until ours.
      while ((await agent.lines.next(deadline, 'the answer to guest-sync')).return !== id);
    } catch (err) {
      agent.close();
      throw err;
    }
    return agent;
  }

  async execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    this.lines.send({ execute: command, ...(args ? { arguments: args } : {}) });
    const reply = (await this.lines.next(Date.now() + (opts.timeoutMs ?? 10_000), `the answer to ${command}`)) as { return?: T; error?: { class: string; desc: string } };
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
    const { pid } = await this.execute<{ pid: number }>('guest-exec', { path: file, arg: args, 'capture-output': true });
    const text = (b64?: string): string => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');
    return pollUntil(`${file} ${args.join(' ')} to end in the guest`, async () => {
      const s = await this.execute<{ exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string }>('guest-exec-status', { pid });
      return s.exited
        ? { done: true, value: { exitCode: s.exitcode ?? -1, stdout: text(s['out-data']), stderr: text(s['err-data']) } }
        : { done: false, seen: 'still running' };
    }, { timeoutMs: opts.timeoutMs ?? 20_000, intervalMs: 10 });
  }

  close(): void {
    this.lines.close();
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
