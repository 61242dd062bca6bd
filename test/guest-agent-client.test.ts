import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeServers, type FakePeer, type FakeServer, type Msg } from './helpers/fake-json-socket.ts';
import { GuestAgentClient, GuestAgentError, GuestAgentTimeoutError } from '../src/operator/guest-agent-client.ts';

const sockets = new FakeServers('ga');
const startServer = (): Promise<FakeServer> => sockets.start();

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads the next message, asserting it is a guest-sync, and returns its token. */
async function expectSync(peer: FakePeer): Promise<number> {
  const m = await peer.next();
  assert.equal(m['execute'], 'guest-sync');
  const id = (m['arguments'] as Msg)['id'];
  assert.equal(typeof id, 'number');
  assert.ok(Number.isInteger(id) && (id as number) > 0 && (id as number) < 2 ** 31);
  return id as number;
}

/** Reads the next message, asserting its command, and returns its arguments. */
async function expectCommand(peer: FakePeer, command: string): Promise<Msg | undefined> {
  const m = await peer.next();
  assert.equal(m['execute'], command);
  assert.equal('id' in m, false);
  return m['arguments'] as Msg | undefined;
}

async function connected(): Promise<{ client: GuestAgentClient; peer: FakePeer }> {
  const server = await startServer();
  const clientP = GuestAgentClient.connect(server.path, { timeoutMs: 2000 });
  const peer = await server.nextPeer();
  peer.send({ return: await expectSync(peer) });
  return { client: await clientP, peer };
}

after(() => sockets.closeAll());

describe('GuestAgentClient', () => {
  it('sync discards stale replies sitting in the channel', async () => {
    const server = await startServer();
    const clientP = GuestAgentClient.connect(server.path, { timeoutMs: 2000 });
    const peer = await server.nextPeer();
    // Left over from an earlier client that gave up.
    peer.send({ return: {} });
    peer.send({ return: 12345 });
    const token = await expectSync(peer);
    peer.send({ error: { class: 'GenericError', desc: 'stale' } });
    peer.sendRaw('garbage\n');
    peer.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from(JSON.stringify({ return: token }) + '\n')]));
    const client = await clientP;
    const name = client.execute('guest-get-host-name');
    await expectCommand(peer, 'guest-get-host-name');
    peer.send({ return: 'vm1' });
    assert.equal(await name, 'vm1');
    await client.close();
  });

  it('runs one command at a time', async () => {
    const { client, peer } = await connected();
    const first = client.execute<string>('guest-get-host-name');
    const second = client.execute<{ version: string }>('guest-info');
    await expectCommand(peer, 'guest-get-host-name');
    await sleep(50);
    assert.equal(peer.queued, 0, 'second command was sent before the first was answered');
    peer.send({ return: 'vm1' });
    await expectCommand(peer, 'guest-info');
    peer.send({ return: { version: '9.0' } });
    assert.equal(await first, 'vm1');
    assert.deepEqual(await second, { version: '9.0' });
    await client.close();
  });

  it('maps error replies to GuestAgentError', async () => {
    const { client, peer } = await connected();
    const p = client.execute('guest-file-open', { path: '/nope', mode: 'r' });
    assert.deepEqual(await expectCommand(peer, 'guest-file-open'), { path: '/nope', mode: 'r' });
    peer.send({ error: { class: 'GenericError', desc: "failed to open file '/nope'" } });
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof GuestAgentError);
      assert.equal(err instanceof GuestAgentTimeoutError, false);
      assert.equal(err.command, 'guest-file-open');
      assert.equal(err.errorClass, 'GenericError');
      assert.equal(err.desc, "failed to open file '/nope'");
      return true;
    });
    // An error reply is a complete answer: the next command needs no re-sync.
    const ping = client.ping();
    await expectCommand(peer, 'guest-ping');
    peer.send({ return: {} });
    await ping;
    await client.close();
  });

  it('exec polls guest-exec-status and decodes base64 output', async () => {
    const { client, peer } = await connected();
    const p = client.exec('/bin/sh', ['-c', 'cat; echo warn >&2; exit 3'], { input: 'héllo\n' });
    assert.deepEqual(await expectCommand(peer, 'guest-exec'), {
      path: '/bin/sh',
      arg: ['-c', 'cat; echo warn >&2; exit 3'],
      'capture-output': true,
      'input-data': b64('héllo\n'),
    });
    peer.send({ return: { pid: 4242 } });
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(await expectCommand(peer, 'guest-exec-status'), { pid: 4242 });
      peer.send({ return: { exited: false } });
    }
    await expectCommand(peer, 'guest-exec-status');
    peer.send({ return: { exited: true, exitcode: 3, 'out-data': b64('héllo\n'), 'err-data': b64('warn\n') } });
    assert.deepEqual(await p, { exitCode: 3, stdout: 'héllo\n', stderr: 'warn\n' });
    await client.close();
  });

  it('exec reports a signal and treats absent output as empty', async () => {
    const { client, peer } = await connected();
    const p = client.exec('/bin/sleep', ['100']);
    assert.equal('input-data' in ((await expectCommand(peer, 'guest-exec')) ?? {}), false);
    peer.send({ return: { pid: 7 } });
    await expectCommand(peer, 'guest-exec-status');
    peer.send({ return: { exited: true, signal: 9 } });
    assert.deepEqual(await p, { exitCode: 137, stdout: '', stderr: '', signal: 9 });
    await client.close();
  });

  it('exec times out naming the command line', async () => {
    const { client, peer } = await connected();
    const p = client.exec('/bin/sleep', ['100'], { timeoutMs: 200 });
    const rejected = assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof GuestAgentTimeoutError);
      assert.equal(err.command, 'guest-exec');
      assert.equal(err.timeoutMs, 200);
      assert.match(err.message, /\/bin\/sleep 100/);
      return true;
    });
    await expectCommand(peer, 'guest-exec');
    peer.send({ return: { pid: 8 } });
    let polls = 0;
    const answer = async (): Promise<void> => {
      for (;;) {
        const m = await peer.next();
        if (m['execute'] !== 'guest-exec-status') return;
        polls++;
        peer.send({ return: { exited: false } });
      }
    };
    void answer();
    await rejected;
    assert.ok(polls >= 2, `expected several polls, saw ${polls}`);
    await client.close();
  });

  it('readFile reads chunks until eof and always closes the handle', async () => {
    const { client, peer } = await connected();
    const text = 'line one\nüber line two\n';
    const bytes = Buffer.from(text, 'utf8');
    const split = text.indexOf('ü') + 1; // Split inside the two-byte 'ü'.
    const p = client.readFile('/etc/hostname');
    assert.deepEqual(await expectCommand(peer, 'guest-file-open'), { path: '/etc/hostname', mode: 'r' });
    peer.send({ return: 1000 });
    assert.deepEqual(await expectCommand(peer, 'guest-file-read'), { handle: 1000, count: 65536 });
    peer.send({ return: { count: split, 'buf-b64': bytes.subarray(0, split).toString('base64'), eof: false } });
    await expectCommand(peer, 'guest-file-read');
    peer.send({ return: { count: bytes.length - split, 'buf-b64': bytes.subarray(split).toString('base64'), eof: true } });
    assert.deepEqual(await expectCommand(peer, 'guest-file-close'), { handle: 1000 });
    peer.send({ return: {} });
    assert.equal(await p, text);
    await client.close();
  });

  it('readFile closes the handle when a read fails', async () => {
    const { client, peer } = await connected();
    const p = client.readFile('/var/log/big');
    const rejected = assert.rejects(p, (err: unknown) => err instanceof GuestAgentError && err.desc === 'io error');
    await expectCommand(peer, 'guest-file-open');
    peer.send({ return: 5 });
    await expectCommand(peer, 'guest-file-read');
    peer.send({ error: { class: 'GenericError', desc: 'io error' } });
    assert.deepEqual(await expectCommand(peer, 'guest-file-close'), { handle: 5 });
    peer.send({ return: {} });
    await rejected;
    await client.close();
  });

  it('re-syncs after a timeout so a late reply cannot answer the next command', async () => {
    const { client, peer } = await connected();
    const slow = client.execute('guest-get-fsinfo', undefined, { timeoutMs: 50 });
    await expectCommand(peer, 'guest-get-fsinfo');
    await assert.rejects(slow, (err: unknown) => {
      assert.ok(err instanceof GuestAgentTimeoutError);
      assert.equal(err.command, 'guest-get-fsinfo');
      assert.equal(err.timeoutMs, 50);
      return true;
    });
    const next = client.execute<string>('guest-get-host-name');
    const token = await expectSync(peer);
    peer.send({ return: [{ name: 'late fsinfo' }] });
    peer.send({ return: token });
    await expectCommand(peer, 'guest-get-host-name');
    peer.send({ return: 'vm1' });
    assert.equal(await next, 'vm1');
    await client.close();
  });

  it('times out connect when the agent never answers the sync', async () => {
    const server = await startServer();
    const p = GuestAgentClient.connect(server.path, { timeoutMs: 100 });
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof GuestAgentTimeoutError);
      assert.equal(err.command, 'guest-sync');
      return true;
    });
  });

  it('close() rejects the command in flight and later commands', async () => {
    const { client, peer } = await connected();
    const inFlight = client.execute('guest-ping', undefined, { timeoutMs: 60_000 });
    const queued = client.execute('guest-info', undefined, { timeoutMs: 60_000 });
    const rejected = Promise.all([assert.rejects(inFlight, GuestAgentError), assert.rejects(queued, GuestAgentError)]);
    await expectCommand(peer, 'guest-ping');
    await Promise.all([client.close(), client.close()]);
    await rejected;
    await client.closed;
    assert.equal(client.isClosed, true);
    assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r === 'Timeout'), []);
  });

  it('networkInterfaces returns the agent list', async () => {
    const { client, peer } = await connected();
    const ifaces = [
      { name: 'lo', 'hardware-address': '00:00:00:00:00:00', 'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', prefix: 8 }] },
      { name: 'eth0', 'hardware-address': '52:54:00:12:34:56' },
    ];
    const p = client.networkInterfaces();
    await expectCommand(peer, 'guest-network-get-interfaces');
    peer.send({ return: ifaces });
    assert.deepEqual(await p, ifaces);
    await client.close();
  });
});
