import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeServers, type FakePeer, type FakeServer, type Msg } from './helpers/fake-json-socket.ts';
import { QmpClient, QmpClosedError, QmpError, QmpTimeoutError } from '../src/operator/qmp-client.ts';
import type { ProtocolLogEntry, QmpEvent } from '../src/operator/qmp-client.ts';

const GREETING = { QMP: { version: { qemu: { major: 9, minor: 2, micro: 1 }, package: 'v9.2.1' }, capabilities: ['oob'] } };

const sockets = new FakeServers('qmp');
const startServer = (): Promise<FakeServer> => sockets.start();

/** Connects a client and plays the server half of the handshake. */
async function connected(log?: (e: ProtocolLogEntry) => void): Promise<{ client: QmpClient; peer: FakePeer }> {
  const server = await startServer();
  const clientP = QmpClient.connect(server.path, { timeoutMs: 2000, ...(log ? { log } : {}) });
  const peer = await server.nextPeer();
  peer.send(GREETING);
  const caps = await peer.next();
  assert.equal(caps['execute'], 'qmp_capabilities');
  peer.send({ return: {}, id: caps['id'] });
  return { client: await clientP, peer };
}

function event(name: string, data?: Msg): Msg {
  return { event: name, ...(data ? { data } : {}), timestamp: { seconds: 1700000000, microseconds: 42 } };
}

after(() => sockets.closeAll());

describe('QmpClient', () => {
  it('reads the greeting and negotiates capabilities, logging both directions', async () => {
    const log: ProtocolLogEntry[] = [];
    const { client, peer } = await connected((e) => log.push(e));
    assert.deepEqual(client.greeting, GREETING.QMP);
    assert.equal(peer.queued, 0);
    assert.deepEqual(
      log.map((e) => [e.direction, Object.keys(e.message as Msg)[0]]),
      [['in', 'QMP'], ['out', 'execute'], ['in', 'return']],
    );
    assert.ok(log.every((e) => typeof e.at === 'number'));
    await client.close();
  });

  it('matches concurrent replies by id even when answered out of order', async () => {
    const { client, peer } = await connected();
    const a = client.execute<{ status: string }>('query-status');
    const b = client.execute<string>('human-monitor-command', { 'command-line': 'info version' });
    const ma = await peer.next();
    const mb = await peer.next();
    assert.equal(ma['execute'], 'query-status');
    assert.equal('arguments' in ma, false);
    assert.deepEqual(mb['arguments'], { 'command-line': 'info version' });
    assert.notEqual(ma['id'], mb['id']);
    peer.send({ return: '9.2.1', id: mb['id'] });
    peer.send({ return: { status: 'running' }, id: ma['id'] });
    assert.deepEqual(await a, { status: 'running' });
    assert.equal(await b, '9.2.1');
    await client.close();
  });

  it('maps error replies to QmpError', async () => {
    const { client, peer } = await connected();
    const p = client.execute('device_del', { id: 'x' });
    const m = await peer.next();
    peer.send({ error: { class: 'GenericError', desc: "Device 'x' not found" }, id: m['id'] });
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof QmpError);
      assert.equal(err.command, 'device_del');
      assert.equal(err.errorClass, 'GenericError');
      assert.equal(err.desc, "Device 'x' not found");
      assert.equal(err.message, "QMP device_del failed: GenericError: Device 'x' not found");
      return true;
    });
    await client.close();
  });

  it('times out a command and silently drops its late reply', async () => {
    const { client, peer } = await connected();
    const slow = client.execute('query-status', undefined, { timeoutMs: 30 });
    const m1 = await peer.next();
    await assert.rejects(slow, (err: unknown) => {
      assert.ok(err instanceof QmpTimeoutError);
      assert.equal(err.command, 'query-status');
      assert.equal(err.timeoutMs, 30);
      return true;
    });
    const next = client.execute('query-name');
    const m2 = await peer.next();
    peer.send({ return: 'late', id: m1['id'] });
    peer.send({ return: { name: 'vm1' }, id: m2['id'] });
    assert.deepEqual(await next, { name: 'vm1' });
    await client.close();
  });

  it('survives garbage and 0xFF-prefixed lines', async () => {
    const { client, peer } = await connected();
    const p = client.execute('query-name');
    const m = await peer.next();
    peer.sendRaw('not json\n\n');
    peer.sendRaw(Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.from(JSON.stringify({ return: 'ok', id: m['id'] }) + '\n')]));
    assert.equal(await p, 'ok');
    await client.close();
  });

  it('delivers events to listeners until unsubscribed', async () => {
    const { client, peer } = await connected();
    const seen: QmpEvent[] = [];
    const off = client.onEvent((ev) => seen.push(ev));
    const stop = client.eventWait('STOP', { timeoutMs: 1000 });
    peer.send(event('STOP'));
    await stop;
    off();
    const resume = client.eventWait('RESUME', { timeoutMs: 1000 });
    peer.send(event('RESUME'));
    await resume;
    assert.deepEqual(seen, [{ event: 'STOP', timestamp: { seconds: 1700000000, microseconds: 42 } }]);
    await client.close();
  });

  it('eventWait skips events the matcher rejects', async () => {
    const { client, peer } = await connected();
    const waited = client.eventWait('DEVICE_DELETED', { timeoutMs: 1000, match: (ev) => ev.data?.['device'] === 'nic1' });
    peer.send(event('DEVICE_DELETED', { device: 'disk0', path: '/a' }));
    peer.send(event('SHUTDOWN', { guest: true }));
    peer.send(event('DEVICE_DELETED', { device: 'nic1', path: '/b' }));
    const ev = await waited;
    assert.deepEqual(ev.data, { device: 'nic1', path: '/b' });
    await client.close();
  });

  it('eventWait times out with QmpTimeoutError', async () => {
    const { client } = await connected();
    await assert.rejects(client.eventWait('SHUTDOWN', { timeoutMs: 30 }), (err: unknown) => {
      assert.ok(err instanceof QmpTimeoutError);
      assert.equal(err.command, 'event SHUTDOWN');
      assert.equal(err.timeoutMs, 30);
      return true;
    });
    await client.close();
  });

  it('rejects eventWait and executes with QmpClosedError when the server goes away', async () => {
    const { client, peer } = await connected();
    const waited = client.eventWait('SHUTDOWN', { timeoutMs: 60_000 });
    const pending = client.execute('quit');
    await peer.next();
    const rejected = Promise.all([assert.rejects(waited, QmpClosedError), assert.rejects(pending, QmpClosedError)]);
    peer.socket.destroy();
    await rejected;
    await client.closed;
    assert.equal(client.isClosed, true);
    await assert.rejects(client.execute('query-status'), QmpClosedError);
  });

  it('times out connect when the server never greets', async () => {
    const server = await startServer();
    const started = Date.now();
    await assert.rejects(QmpClient.connect(server.path, { timeoutMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof QmpTimeoutError);
      assert.equal(err.command, 'greeting');
      return true;
    });
    assert.ok(Date.now() - started < 1000);
  });

  it('names the path when the socket does not exist', async () => {
    const missing = `${sockets.dir}/missing.sock`;
    await assert.rejects(QmpClient.connect(missing, { timeoutMs: 200 }), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /missing\.sock/);
      return true;
    });
  });

  it('close() rejects pending work and is idempotent', async () => {
    const { client, peer } = await connected();
    const pending = client.execute('query-status', undefined, { timeoutMs: 60_000 });
    const waited = client.eventWait('STOP', { timeoutMs: 60_000 });
    await peer.next();
    const rejected = Promise.all([assert.rejects(pending, QmpClosedError), assert.rejects(waited, QmpClosedError)]);
    await Promise.all([client.close(), client.close()]);
    await rejected;
    assert.equal(client.isClosed, true);
    await client.close();
    await client.closed;
  });

  it('leaves no timers behind once clients are closed', async () => {
    const { client, peer } = await connected();
    const p = client.execute('query-status');
    const m = await peer.next();
    peer.send({ return: {}, id: m['id'] });
    await p;
    await client.close();
    assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r === 'Timeout'), []);
  });
});
