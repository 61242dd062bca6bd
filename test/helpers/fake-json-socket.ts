// A fake unix-socket server speaking newline-delimited JSON, for unit tests of
// the QMP and guest-agent clients: each connection is a FakePeer whose
// received lines can be awaited one by one.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export type Msg = Record<string, unknown>;

/** Server side of one fake connection: a queue of parsed lines plus raw writes. */
export class FakePeer {
  readonly #queue: Msg[] = [];
  readonly #waiters: ((m: Msg) => void)[] = [];
  #buf = '';
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      this.#buf += chunk;
      let nl: number;
      while ((nl = this.#buf.indexOf('\n')) !== -1) {
        const msg = JSON.parse(this.#buf.slice(0, nl)) as Msg;
        this.#buf = this.#buf.slice(nl + 1);
        const waiter = this.#waiters.shift();
        if (waiter) waiter(msg);
        else this.#queue.push(msg);
      }
    });
  }
  get queued(): number {
    return this.#queue.length;
  }
  next(): Promise<Msg> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise<Msg>((resolve) => this.#waiters.push(resolve));
  }
  send(msg: unknown): void {
    this.socket.write(JSON.stringify(msg) + '\n');
  }
  sendRaw(data: string | Buffer): void {
    this.socket.write(data);
  }
}

export class FakeServer {
  readonly peers: FakePeer[] = [];
  readonly #unclaimed: FakePeer[] = [];
  readonly #waiters: ((p: FakePeer) => void)[] = [];
  readonly #server: net.Server;
  constructor(readonly path: string) {
    this.#server = net.createServer((socket) => {
      const peer = new FakePeer(socket);
      this.peers.push(peer);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(peer);
      else this.#unclaimed.push(peer);
    });
  }
  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.path, resolve));
  }
  nextPeer(): Promise<FakePeer> {
    const peer = this.#unclaimed.shift();
    if (peer) return Promise.resolve(peer);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  close(): Promise<void> {
    for (const p of this.peers) p.socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A temp folder of sockets and the servers listening in it, removed with `closeAll`. */
export class FakeServers {
  readonly dir = fs.mkdtempSync(os.tmpdir() + '/vman-test-');
  readonly #servers: FakeServer[] = [];
  #counter = 0;

  constructor(private readonly prefix: string) {}

  async start(): Promise<FakeServer> {
    const server = new FakeServer(path.join(this.dir, `${this.prefix}-${this.#counter++}.sock`));
    await server.listen();
    this.#servers.push(server);
    return server;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#servers.map((s) => s.close()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
