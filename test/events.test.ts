// GET /api/v1/events and vman.close(): one event per real state change, none
// for a write that changes nothing or is rolled back, order kept, every client
// served, the token required; a shutdown that an open stream cannot hold and
// that waits for operations in flight only up to its deadline.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { EventStreamReader, EventStreamRefused, type StreamEvent } from '../support/events-reader.ts';
import { DEFAULT_REPLAY_LIMIT, EventBus } from '../src/services/events.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { eventRoutes } from '../src/api/routes/events.ts';
import { Problem } from '../src/api/schemas.ts';
import { dryVman, eventually, type DryVman } from './helpers/dry-vman.ts';
import type { DryRunVm } from '../src/operator/dry-run-operator.ts';
import type { HasAfter } from './helpers/dry-vman.ts';

const TOKEN = 'events-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function servedVman(t: HasAfter, env: Record<string, string> = {}): Promise<{ v: DryVman; url: string }> {
  const v = await dryVman(t, { env: { VMAN_LISTEN: '127.0.0.1:0', VMAN_API_TOKEN: TOKEN, ...env } });
  const base = await v.vman.listen();
  return { v, url: `${base}/api/v1/events` };
}

async function subscribe(t: HasAfter, url: string): Promise<EventStreamReader> {
  const reader = await EventStreamReader.open(url, { token: TOKEN });
  t.after(async () => reader.close());
  return reader;
}

async function call(v: DryVman, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<any> {
  const res = await v.api(method, url, payload, AUTH);
  assert.ok(res.status < 300, `${method} ${url}: ${res.status} ${res.raw}`);
  return res.body;
}

const statesOf = (events: StreamEvent[], type: string, id: string): Array<[unknown, unknown]> =>
  events.filter((e) => e.type === type && (e.data as { id?: string }).id === id).map((e) => [(e.data as any).previous, (e.data as any).state]);

function untilState(reader: EventStreamReader, type: string, id: string, state: string): Promise<StreamEvent> {
  return reader.waitFor(`${type} ${state} for ${id}`, (es) => es.find((e) => e.type === type && (e.data as any).id === id && (e.data as any).state === state), 3_000);
}

describe('event stream: VM and disk states', () => {
  it('publishes each change of a VM once, in order, with ids counting up (created → starting → running → stopping → stopped → deleted)', async (t) => {
    const { v, url } = await servedVman(t);
    const reader = await subscribe(t, url);
    assert.match(String(reader.headers['content-type']), /^text\/event-stream/);
    const vm = await call(v, 'POST', '/api/v1/vms', { name: 'web', template: 'small' });
    await call(v, 'POST', `/api/v1/vms/${vm.id}/start`);
    await call(v, 'POST', `/api/v1/vms/${vm.id}/stop`);
    await call(v, 'DELETE', `/api/v1/vms/${vm.id}`);
    await untilState(reader, 'vm.state', vm.id, 'deleted');

    assert.deepEqual(statesOf(reader.events, 'vm.state', vm.id), [
      [null, 'created'], ['created', 'starting'], ['starting', 'running'], ['running', 'stopping'], ['stopping', 'stopped'], ['stopped', 'deleted'],
    ]);
    const ids = reader.events.map((e) => Number(e.id?.split('-')[1]));
    assert.ok(ids.every((id, i) => Number.isInteger(id) && (i === 0 || id > ids[i - 1]!)), `ids count up: ${reader.events.map((e) => e.id).join(', ')}`);
    assert.equal(new Set(reader.events.map((e) => e.id?.split('-')[0])).size, 1, 'one run names every id');
    const running = reader.events.find((e) => (e.data as any).state === 'running')!.data as Record<string, unknown>;
    assert.deepEqual(Object.keys(running).sort(), ['at', 'id', 'name', 'previous', 'reason', 'state']);
    assert.equal(running.name, 'web');
    assert.ok(!Number.isNaN(Date.parse(String(running.at))), `at is a time: ${String(running.at)}`);
  });

  it('publishes nothing for a state write that changes nothing, nor for one rolled back', async (t) => {
    const { v, url } = await servedVman(t);
    const vm = await call(v, 'POST', '/api/v1/vms', { name: 'quiet', template: 'small' });
    const reader = await subscribe(t, url);
    const db = v.vman.db;
    db.vms.setState(vm.id, 'created');
    assert.equal(db.vms.compareAndSetState(vm.id, ['running'], 'stopped'), undefined);
    assert.throws(() => db.transaction(() => {
      db.vms.setState(vm.id, 'error', { reason: 'never committed' });
      throw new Error('rolled back');
    }), /rolled back/);
    // A real change after them: the stream holds it alone.
    db.vms.setState(vm.id, 'stopped');
    await untilState(reader, 'vm.state', vm.id, 'stopped');
    assert.deepEqual(statesOf(reader.events, 'vm.state', vm.id), [['created', 'stopped']]);
  });

  it('publishes a change made inside a transaction once it is committed, not before', async (t) => {
    const { v, url } = await servedVman(t);
    const vm = await call(v, 'POST', '/api/v1/vms', { name: 'tx', template: 'small' });
    const bus = v.vman.events;
    const seen: string[] = [];
    bus.subscribe({ deliver: (e) => seen.push(`${e.type}:${(e.data as any).state}`), end: () => undefined });
    v.vman.db.transaction(() => {
      v.vman.db.vms.setState(vm.id, 'error', { reason: 'test' });
      assert.deepEqual(seen, [], 'nothing published inside the transaction');
    });
    assert.deepEqual(seen, ['vm.state:error']);
    void url;
  });

  it('publishes a disk created, attached, detached and deleted', async (t) => {
    const { v, url } = await servedVman(t);
    const reader = await subscribe(t, url);
    const vm = await call(v, 'POST', '/api/v1/vms', { name: 'host', template: 'small' });
    await call(v, 'POST', `/api/v1/vms/${vm.id}/start`);
    const disk = await call(v, 'POST', '/api/v1/disks', { name: 'data', size_gb: 1 });
    await call(v, 'POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: vm.id });
    await call(v, 'POST', `/api/v1/disks/${disk.id}/detach`);
    await call(v, 'DELETE', `/api/v1/disks/${disk.id}`);
    await untilState(reader, 'disk.state', disk.id, 'deleted');
    assert.deepEqual(statesOf(reader.events, 'disk.state', disk.id), [[null, 'available'], ['available', 'attached'], ['attached', 'available'], ['available', 'deleted']]);
    const attached = reader.events.find((e) => e.type === 'disk.state' && (e.data as any).state === 'attached')!.data as Record<string, unknown>;
    assert.deepEqual(Object.keys(attached).sort(), ['at', 'id', 'name', 'previous', 'state', 'vm_id']);
    assert.equal(attached.vm_id, vm.id);
  });

  it('gives every client the same events with the same ids', async (t) => {
    const { v, url } = await servedVman(t);
    const a = await subscribe(t, url);
    const b = await subscribe(t, url);
    const vm = await call(v, 'POST', '/api/v1/vms', { name: 'both', template: 'small' });
    await call(v, 'POST', `/api/v1/vms/${vm.id}/start`);
    await untilState(a, 'vm.state', vm.id, 'running');
    await untilState(b, 'vm.state', vm.id, 'running');
    const strip = (es: StreamEvent[]) => es.map(({ receivedAt: _, ...e }) => e);
    assert.deepEqual(strip(a.events), strip(b.events));
    assert.equal(a.events.length, 3);
  });
});

describe('event stream: changes vman did not ask for', () => {
  it('publishes a QEMU that died on its own once (running → error), and nothing for an adoption that changes nothing', async (t) => {
    const { v, url } = await servedVman(t);
    const vm = await call(v, 'POST', '/api/v1/vms', { name: 'fragile', template: 'small' });
    await call(v, 'POST', `/api/v1/vms/${vm.id}/start`);
    const reader = await subscribe(t, url);
    (v.vman.runtime.handle(vm.id) as DryRunVm).crash();
    await untilState(reader, 'vm.state', vm.id, 'error');
    assert.deepEqual(statesOf(reader.events, 'vm.state', vm.id), [['running', 'error']]);
    assert.match(String((reader.ofType('vm.state')[0]!.data as any).reason), /QEMU process died/);

    const other = await call(v, 'POST', '/api/v1/vms', { name: 'steady', template: 'small' });
    await call(v, 'POST', `/api/v1/vms/${other.id}/start`);
    await untilState(reader, 'vm.state', other.id, 'running');
    const seen = reader.events.length;
    // The VM is recorded running and its QEMU runs: adopting it again writes running over running.
    await v.vman.runtime.adoptAll(new Set([vm.id]));
    await call(v, 'POST', `/api/v1/vms/${other.id}/stop`);
    await untilState(reader, 'vm.state', other.id, 'stopped');
    assert.deepEqual(statesOf(reader.events.slice(seen), 'vm.state', other.id), [['running', 'stopping'], ['stopping', 'stopped']]);
  });
});

describe('event stream: observer findings', () => {
  it('publishes a finding when a check first reports it, not again while it persists', async (t) => {
    const { v, url } = await servedVman(t);
    const reader = await subscribe(t, url);
    const stray = path.join(v.config.storagePath, 'disks', 'disk-000000000000.qcow2');
    fs.writeFileSync(stray, 'not a disk vman made\n');
    await call(v, 'POST', '/api/v1/observer/check');
    await call(v, 'POST', '/api/v1/observer/check');
    // A change after both checks: once it arrived, so did everything published before it.
    const marker = await call(v, 'POST', '/api/v1/vms', { name: 'marker', template: 'small' });
    await untilState(reader, 'vm.state', marker.id, 'created');
    const finding = await reader.waitFor('an observer.finding', (es) => es.find((e) => e.type === 'observer.finding'), 3_000);
    const data = finding.data as Record<string, unknown>;
    assert.equal(data.kind, 'orphan-disk-file');
    assert.equal(data.resource_type, 'file');
    assert.equal(typeof data.at, 'string');
    assert.equal(reader.ofType('observer.finding').length, 1, `one event for a finding seen twice: ${JSON.stringify(reader.ofType('observer.finding'))}`);
  });
});

describe('event stream: access and format', () => {
  it('requires the API token (401 problem+json without it, or with another)', async (t) => {
    const { url } = await servedVman(t);
    for (const token of [undefined, 'not-the-token']) {
      const err = await EventStreamReader.open(url, token ? { token } : {}).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof EventStreamRefused, `refused: ${String(err)}`);
      assert.equal(err.status, 401);
      assert.match(err.contentType, /^application\/problem\+json/);
    }
  });

  it('sends a keep-alive comment on the interval, and event/id/data blocks', async (t) => {
    const bus = new EventBus({ run: 'r1' });
    const app = Fastify();
    app.addSchema(Problem);
    await app.register(eventRoutes(bus, { keepAliveMs: 50 }));
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    t.after(async () => {
      bus.close();
      await app.close();
    });
    const reader = await EventStreamReader.open(`${base}/events`);
    t.after(async () => reader.close());
    await reader.waitFor('two keep-alive comments', () => (reader.comments.filter((c) => c === 'keep-alive').length >= 2 ? true : undefined), 2_000);
    bus.publish({ type: 'vm.state', data: { id: 'vm-1', name: 'one', state: 'running', previous: 'starting', reason: null } });
    const e = await reader.waitFor('the event', (es) => es[0], 2_000);
    assert.equal(e.type, 'vm.state');
    assert.equal(e.id, 'r1-1');
    assert.equal((e.data as any).state, 'running');
  });

  it('never waits on a client that does not read: one more than MAX_BEHIND_BYTES behind is disconnected', async (t) => {
    const bus = new EventBus();
    const app = Fastify();
    app.addSchema(Problem);
    await app.register(eventRoutes(bus));
    const base = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    t.after(async () => {
      bus.close();
      await app.close();
    });
    // A client that sends its request and then reads nothing.
    const socket = net.connect(Number(base.port), base.hostname);
    t.after(() => socket.destroy());
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => bus.subscriberCount === 1, 'the client subscribed');
    socket.pause();
    const name = 'x'.repeat(4096);
    const started = Date.now();
    // Far more than the socket buffers and the bound together.
    for (let i = 0; i < 8 * 1024; i++) bus.publish({ type: 'vm.state', data: { id: `vm-${i}`, name, state: 'running', previous: 'starting', reason: null } });
    assert.ok(Date.now() - started < 5_000, 'publishing did not wait on the client');
    await eventually(() => bus.subscriberCount === 0, 'the slow client dropped from the bus');
    // What was already in flight drains, then the connection ends: the server closed it.
    socket.resume();
    await closed;
  });

  it('ends the stream when the bus closes, and refuses a new one afterwards (503)', async (t) => {
    const bus = new EventBus();
    const app = Fastify();
    app.addSchema(Problem);
    await app.register(eventRoutes(bus));
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    t.after(() => app.close());
    const reader = await EventStreamReader.open(`${base}/events`);
    bus.close();
    await reader.waitFor('the stream ended', () => (reader.ended ? true : undefined), 2_000);
    const err = await EventStreamReader.open(`${base}/events`).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof EventStreamRefused && err.status === 503, `refused with 503: ${String(err)}`);
  });
});

const vmEvent = (n: number) => ({ type: 'vm.state' as const, data: { id: `vm-${n}`, name: `v${n}`, state: 'running' as const, previous: 'starting' as const, reason: null } });

describe('event stream: resuming with Last-Event-ID', () => {
  it('the bus tells what came after an id of its own run, from the latest events it keeps', () => {
    const bus = new EventBus({ run: 'abc', replayLimit: 3 });
    assert.equal(bus.position, 'abc-0');
    assert.deepEqual(bus.since('abc-0'), { kind: 'events', events: [] });
    for (let n = 1; n <= 5; n++) bus.publish(vmEvent(n));
    assert.equal(bus.position, 'abc-5');
    const missed = bus.since('abc-2');
    assert.equal(missed.kind, 'events');
    assert.deepEqual(missed.kind === 'events' && missed.events.map((e) => e.id), [3, 4, 5]);
    assert.deepEqual(bus.since('abc-5'), { kind: 'events', events: [] });
  });

  it('the bus says why it cannot: another run, events no longer kept, an id it never gave', () => {
    const bus = new EventBus({ run: 'abc', replayLimit: 3 });
    for (let n = 1; n <= 5; n++) bus.publish(vmEvent(n));
    const reason = (id: string) => {
      const m = bus.since(id);
      return m.kind === 'reset' ? m.reason : 'events';
    };
    assert.equal(reason('xyz-2'), 'restarted');
    assert.equal(reason('abc-1'), 'too-far-behind'); // 2 is no longer kept: 3, 4 and 5 are
    assert.equal(reason('abc-0'), 'too-far-behind');
    assert.equal(reason('abc-6'), 'unknown-id');
    for (const bad of ['', '5', 'abc-', 'abc-01', 'ABC-2', 'abc-2-3', 'a b-2', `abc-${'9'.repeat(17)}`]) assert.equal(reason(bad), 'unknown-id', JSON.stringify(bad));
    const none = new EventBus({ run: 'abc', replayLimit: 0 });
    none.publish(vmEvent(1));
    assert.deepEqual(none.since('abc-1'), { kind: 'events', events: [] });
    const m = none.since('abc-0');
    assert.equal(m.kind === 'reset' && m.reason, 'too-far-behind');
  });

  it('a client that reconnects with the last id it saw gets what it missed, once and in order, then what happens next', async (t) => {
    const { v, url } = await servedVman(t);
    const first = await subscribe(t, url);
    const a = await call(v, 'POST', '/api/v1/disks', { name: 'a', size_gb: 1 });
    const seen = await untilState(first, 'disk.state', a.id, 'available');
    first.close();
    const b = await call(v, 'POST', '/api/v1/disks', { name: 'b', size_gb: 1 });
    await call(v, 'DELETE', `/api/v1/disks/${a.id}`);
    const again = await EventStreamReader.open(url, { token: TOKEN, lastEventId: seen.id! });
    t.after(async () => again.close());
    const c = await call(v, 'POST', '/api/v1/disks', { name: 'c', size_gb: 1 });
    await untilState(again, 'disk.state', c.id, 'available');
    assert.deepEqual(again.events.map((e) => [(e.data as any).name, (e.data as any).state]), [['b', 'available'], ['a', 'deleted'], ['c', 'available']]);
    const ids = again.events.map((e) => e.id!);
    assert.equal(new Set(ids).size, 3, `each once: ${ids.join(', ')}`);
    assert.deepEqual(ids.map((id) => Number(id.split('-')[1])), [2, 3, 4].map((n) => n + Number(seen.id!.split('-')[1]) - 1));
  });

  it('a client whose id cannot be resumed gets one reset event naming why, with the latest id, then the live stream', async (t) => {
    const { v, url } = await servedVman(t, { VMAN_EVENT_REPLAY: '1' });
    const first = await subscribe(t, url);
    const a = await call(v, 'POST', '/api/v1/disks', { name: 'a', size_gb: 1 });
    const seen = await untilState(first, 'disk.state', a.id, 'available');
    first.close();
    await call(v, 'POST', '/api/v1/disks', { name: 'b', size_gb: 1 });
    await call(v, 'POST', '/api/v1/disks', { name: 'c', size_gb: 1 });
    const [run, n] = seen.id!.split('-');
    let latest = Number(n) + 2; // b and c
    for (const [given, reason] of [[seen.id!, 'too-far-behind'], ['0000-1', 'restarted'], ['nonsense', 'unknown-id']] as const) {
      const again = await EventStreamReader.open(url, { token: TOKEN, lastEventId: given });
      t.after(async () => again.close());
      const reset = await again.waitFor('the reset event', (es) => es[0], 2_000);
      assert.equal(reset.type, 'reset');
      assert.equal((reset.data as any).reason, reason);
      assert.equal((reset.data as any).last_event_id, given);
      assert.match((reset.data as any).detail, /list VMs and disks again$/);
      assert.equal(reset.id, `${run}-${latest}`, 'the latest event\'s id');
      const d = await call(v, 'POST', '/api/v1/disks', { name: `d-${reason}`, size_gb: 1 });
      await untilState(again, 'disk.state', d.id, 'available');
      assert.equal(again.events.length, 2, 'the reset, then the live event only');
      await call(v, 'DELETE', `/api/v1/disks/${d.id}`);
      latest += 2;
      again.close();
    }
  });

  it('VMAN_EVENT_REPLAY: a whole number from 0 to 100000, 1000 when unset', () => {
    assert.equal(loadConfig({}).eventReplay, DEFAULT_REPLAY_LIMIT);
    assert.equal(DEFAULT_REPLAY_LIMIT, 1000);
    assert.equal(loadConfig({ VMAN_EVENT_REPLAY: '0' }).eventReplay, 0);
    assert.equal(loadConfig({}, { 'event-replay': '25' }).eventReplay, 25);
    for (const bad of ['2.5', '-1', '100001', 'lots']) {
      assert.throws(() => loadConfig({ VMAN_EVENT_REPLAY: bad }), (err: unknown) => err instanceof ConfigError && /VMAN_EVENT_REPLAY must be a (whole )?number from 0 to 100000/.test(err.message), JSON.stringify(bad));
    }
  });

  it('tells a client whose missed events would not fit in what it may fall behind by to list again, rather than cut it off', async (t) => {
    const bus = new EventBus({ run: 'big', replayLimit: 10_000 });
    const app = Fastify();
    app.addSchema(Problem);
    await app.register(eventRoutes(bus));
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    t.after(async () => {
      bus.close();
      await app.close();
    });
    const name = 'x'.repeat(2048);
    for (let i = 0; i < 1000; i++) bus.publish({ type: 'vm.state', data: { id: `vm-${i}`, name, state: 'running', previous: 'starting', reason: null } });
    const reader = await EventStreamReader.open(`${base}/events`, { lastEventId: 'big-1' });
    t.after(async () => reader.close());
    const first = await reader.waitFor('the first event', (es) => es[0], 2_000);
    assert.equal(first.type, 'reset');
    assert.equal((first.data as any).reason, 'too-far-behind');
    assert.equal(first.id, 'big-1000');
    bus.publish({ type: 'vm.state', data: { id: 'vm-next', name: 'next', state: 'running', previous: 'starting', reason: null } });
    await reader.waitFor('the next live event', (es) => es.find((e) => (e.data as any).id === 'vm-next'), 2_000);
    assert.equal(reader.ended, false, 'still connected');
  });

  it('refuses a Last-Event-ID longer than any id vman gives (400 problem+json)', async (t) => {
    const { url } = await servedVman(t);
    const err = await EventStreamReader.open(url, { token: TOKEN, lastEventId: 'x'.repeat(65) }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof EventStreamRefused && err.status === 400 && err.contentType.startsWith('application/problem+json'), `refused with 400: ${String(err)}`);
  });
});

describe('graceful shutdown', () => {
  it('is not held by an open event stream: close() ends the stream and returns at once', async (t) => {
    const { v, url } = await servedVman(t, { VMAN_SHUTDOWN_TIMEOUT: '20' });
    const reader = await subscribe(t, url);
    const started = Date.now();
    await v.vman.close();
    const took = Date.now() - started;
    assert.ok(took < 2_000, `close() took ${took} ms with a stream open (deadline 20 s)`);
    await reader.waitFor('the stream ended', () => (reader.ended ? true : undefined), 2_000);
  });

  it('waits for an operation in flight that ends within the deadline', async (t) => {
    const { v } = await servedVman(t, { VMAN_SHUTDOWN_TIMEOUT: '10' });
    let finished = false;
    void v.vman.runtime.locks.run('vm-busy', () => new Promise<void>((r) => setTimeout(() => {
      finished = true;
      r();
    }, 300)));
    await v.vman.close();
    assert.equal(finished, true, 'close() returned before the operation in flight ended');
  });

  it('lets go at the deadline when an operation is still running', async (t) => {
    const { v } = await servedVman(t, { VMAN_SHUTDOWN_TIMEOUT: '0.3' });
    let release!: () => void;
    const stuck = v.vman.runtime.locks.run('vm-stuck', () => new Promise<void>((r) => (release = r)));
    t.after(async () => {
      release();
      await stuck;
    });
    const started = Date.now();
    await v.vman.close();
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 3_000, `close() took ${took} ms with a 0.3 s deadline and an operation that never ends`);
  });
});
