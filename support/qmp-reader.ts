// The suite's own QMP reader, sharing no code with vman's client: what QEMU
// says is read here, so a bug in vman's QMP handling cannot hide itself. QMP
// is newline-delimited JSON on a unix socket: a greeting, qmp_capabilities,
// then commands answered in order (events may come in between).
import path from 'node:path';
import { JsonLines } from './json-lines.ts';

export class QmpReaderError extends Error {
  constructor(message: string, readonly reply?: unknown) {
    super(message);
    this.name = 'QmpReaderError';
  }
}

interface Message {
  QMP?: unknown;
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
  id?: string;
}

export interface QmpEvent { event: string; data: Record<string, unknown> }

/** One connection to a QMP socket; commands one at a time. */
export class QmpReader {
  private next = 1;
  /** Every event seen on this connection, in order. */
  readonly events: Message[] = [];

  private constructor(private readonly lines: JsonLines, private readonly timeoutMs: number) {}

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async open(socketPath: string, timeoutMs = 5_000): Promise<QmpReader> {
    const reader = new QmpReader(await JsonLines.connect(socketPath, 'QEMU'), timeoutMs);
    try {
      await reader.read((m) => m.QMP !== undefined, 'the QMP greeting');
      await reader.execute('qmp_capabilities');
    } catch (err) {
      reader.close();
      throw err;
    }
    return reader;
  }

  async execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const id = `suite-${this.next++}`;
    this.lines.send({ execute: command, ...(args ? { arguments: args } : {}), id });
    const reply = await this.read((m) => m.id === id, `the answer to ${command}`);
    if (reply.error) throw new QmpReaderError(`${command}: ${reply.error.class}: ${reply.error.desc}`, reply);
    return reply.return as T;
  }

  /** Waits for an event (one already seen on this connection counts). */
  async event(name: string, match: (data: Record<string, unknown>) => boolean = () => true, timeoutMs = this.timeoutMs): Promise<Record<string, unknown>> {
    const seen = this.events.find((e) => e.event === name && match(e.data ?? {}));
    if (seen) return seen.data ?? {};
    const m = await this.read((x) => x.event === name && match(x.data ?? {}), `the event ${name}`, timeoutMs);
    return m.data ?? {};
  }

  /**
   * Every event until QEMU closes the connection (it exits), or the deadline:
   * how a guest went down, as QEMU told every monitor.
   */
  async eventsUntilClosed(timeoutMs: number): Promise<QmpEvent[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.read(() => false, 'the end of QEMU', Math.max(0, deadline - Date.now()));
      } catch (err) {
        if (this.lines.isClosed) return this.events.map((e) => ({ event: e.event!, data: e.data ?? {} }));
        throw err;
      }
    }
  }

  close(): void {
    this.lines.close();
  }

  private async read(want: (m: Message) => boolean, what: string, timeoutMs = this.timeoutMs): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = (await this.lines.next(deadline, what)) as Message;
      if (m.event !== undefined) this.events.push(m);
      if (want(m)) return m;
    }
  }
}

/** The second monitor of a VM (its folder's qmp-aux.sock): vman holds qmp.sock. */
export function auxSocketOf(vmDir: string): string {
  return path.join(vmDir, 'qmp-aux.sock');
}

export async function withQmp<T>(vmDir: string, fn: (qmp: QmpReader) => Promise<T>): Promise<T> {
  const qmp = await QmpReader.open(auxSocketOf(vmDir));
  try {
    return await fn(qmp);
  } finally {
    qmp.close();
  }
}

/** What QEMU holds for block storage: qdev ids of block devices and the names of named nodes. */
export interface QemuBlockView {
  devices: string[];
  nodes: string[];
  /** The image file each device reads, by device id. */
  fileOf: Record<string, string>;
}

export function qemuBlockView(vmDir: string): Promise<QemuBlockView> {
  return withQmp(vmDir, async (qmp) => {
    const blocks = await qmp.execute<Array<{ qdev?: string; device?: string; inserted?: { file?: string } }>>('query-block');
    const devices: string[] = [];
    const fileOf: Record<string, string> = {};
    for (const b of blocks) {
      // -device ids show as /machine/peripheral/<id>/virtio-backend.
      const id = /^\/machine\/peripheral\/([^/]+)/.exec(b.qdev ?? '')?.[1] ?? (b.qdev && !b.qdev.startsWith('/') ? b.qdev : undefined);
      if (!id) continue;
      devices.push(id);
      if (b.inserted?.file) fileOf[id] = b.inserted.file;
    }
    const named = await qmp.execute<Array<{ 'node-name'?: string }>>('query-named-block-nodes', { flat: true });
    const nodes = named.map((n) => n['node-name'] ?? '').filter((n) => n !== '' && !n.startsWith('#'));
    return { devices: devices.sort(), nodes: [...new Set(nodes)].sort(), fileOf };
  });
}

export function qemuRunState(vmDir: string): Promise<string> {
  return withQmp(vmDir, async (qmp) => (await qmp.execute<{ status: string }>('query-status')).status);
}

/** The virtual CPUs QEMU runs (query-cpus-fast) and its base memory (query-memory-size-summary). */
export function qemuSize(vmDir: string): Promise<{ cpus: number; memoryBytes: number }> {
  return withQmp(vmDir, async (qmp) => {
    const cpus = await qmp.execute<unknown[]>('query-cpus-fast');
    const memory = await qmp.execute<{ 'base-memory': number }>('query-memory-size-summary');
    return { cpus: cpus.length, memoryBytes: memory['base-memory'] };
  });
}
