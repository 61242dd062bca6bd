import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { VmRecord } from '../src/db/types.ts';
import type { ProcessInfo } from '../src/operator/proc.ts';
import type { Finding } from '../src/observer/findings.ts';
import { Observer, ObserverStoppedError } from '../src/observer/observer.ts';
import type { SnapshotSources } from '../src/observer/snapshot.ts';
import { pollUntil } from '../src/poll.ts';

const S = '/srv/vman-obs';
const T = '2024-01-01T00:00:00.000Z';

const runningVm: VmRecord = {
  id: 'a', name: 'web', templateId: 't1', state: 'running', stateReason: null, pid: 99, mac: '52:54:00:00:00:01',
  storageDir: `${S}/vms/a`, sshKeys: [], userData: null, sshPort: null, guestAddress: null, stopMethod: null, deviceModel: null, resumeFrom: null, originSnapshotId: null, qemuIdentity: null, createdAt: T, updatedAt: T,
};

interface Fake extends SnapshotSources {
  /** Completed listProcesses calls: one per snapshot attempt. */
  runs: number;
  /** Throws from listProcesses when it returns true for the run number (1-based). */
  failOn?: (run: number) => boolean;
  /** When set, listProcesses waits for it. */
  gate?: Promise<void>;
}

function fakeSources(over: Partial<Fake> = {}): Fake {
  const fake: Fake = {
    runs: 0,
    owner: 'test',
    readRows: () => ({ vms: [runningVm], disks: [], addresses: [], intents: [], snapshots: [] }),
    listVmFolders: async () => [],
    listSnapshotFolders: async () => [],
    async listProcesses(): Promise<ProcessInfo[]> {
      const run = ++fake.runs;
      if (fake.gate) await fake.gate;
      if (fake.failOn?.(run)) throw new Error(`ps failed on run ${run}`);
      return [];
    },
    listDiskFiles: async () => [`${S}/disks/stray.qcow2`],
    inspectVm: async (vm) => ({ vmId: vm.id }),
    ...over,
  };
  return fake;
}

const observers: Observer[] = [];
function observer(sources: SnapshotSources, intervalSeconds?: number, log?: (m: string, f: Finding[]) => void): Observer {
  const o = new Observer({ sources, storagePath: S, ...(intervalSeconds !== undefined && { intervalSeconds }), ...(log && { log }) });
  observers.push(o);
  return o;
}
afterEach(async () => {
  await Promise.all(observers.splice(0).map((o) => o.stop()));
});

const atLeast = (what: string, get: () => number, n: number): Promise<number> =>
  pollUntil(`${what} >= ${n}`, () => (get() >= n ? { done: true, value: get() } : { done: false, seen: String(get()) }), {
    timeoutMs: 5000,
    intervalMs: 10,
  });

/** Timers created through the global setTimeout that have neither fired nor been cleared. */
function trackTimers(): { live: Set<unknown>; restore: () => void } {
  const live = new Set<unknown>();
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const wrappedSet = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
    const t = realSet(() => {
      live.delete(t);
      fn(...args);
    }, ms);
    live.add(t);
    return t;
  };
  const wrappedClear = (t: NodeJS.Timeout | string | number | undefined): void => {
    live.delete(t);
    realClear(t);
  };
  globalThis.setTimeout = wrappedSet as unknown as typeof setTimeout;
  globalThis.clearTimeout = wrappedClear as typeof clearTimeout;
  return {
    live,
    restore: () => {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

describe('Observer.check', () => {
  it('returns a report, keeps it as latest and logs its findings', async () => {
    const logged: Array<[string, Finding[]]> = [];
    const o = observer(fakeSources(), undefined, (m, f) => logged.push([m, f]));
    assert.equal(o.latest, undefined);
    const r = await o.check();
    assert.deepEqual(r.findings.map((f) => f.kind).sort(), ['orphan-disk-file', 'vm-not-running']);
    assert.deepEqual(r.counts, { vms: 1, disks: 0, processes: 0, diskFiles: 1 });
    assert.ok(!Number.isNaN(Date.parse(r.checkedAt)));
    assert.ok(r.durationMs >= 0);
    assert.equal(o.latest, r);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.[1], r.findings);
  });

  it('logs nothing when there are no findings', async () => {
    const logged: string[] = [];
    const src = fakeSources({ readRows: () => ({ vms: [], disks: [], addresses: [], intents: [], snapshots: [] }), listDiskFiles: async () => [] });
    const r = await observer(src, undefined, (m) => logged.push(m)).check();
    assert.deepEqual(r.findings, []);
    assert.deepEqual(logged, []);
  });

  it('shares one run between concurrent calls', async () => {
    let open = (): void => undefined;
    const src = fakeSources({ gate: new Promise<void>((r) => (open = r)) });
    const o = observer(src);
    const a = o.check();
    const b = o.check();
    assert.equal(a, b);
    await atLeast('snapshot attempts', () => src.runs, 1);
    open();
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra, rb);
    assert.equal(src.runs, 1);
    // A call after the shared run has settled starts a new one.
    await o.check();
    assert.equal(src.runs, 2);
  });

  it('rejects when a source throws, and recovers on the next call', async () => {
    const src = fakeSources({ failOn: (n) => n === 1 });
    const o = observer(src);
    await assert.rejects(o.check(), /ps failed on run 1/);
    assert.equal((await o.check()).findings.length, 2);
  });
});

describe('Observer loop', () => {
  it('checks periodically with a fractional interval', async () => {
    const src = fakeSources();
    const o = observer(src, 0.05);
    o.start();
    o.start(); // A second start must not make a second loop.
    await atLeast('checks', () => src.runs, 4);
    await o.stop();
    assert.ok(o.latest);
  });

  it('does not loop without an interval', async () => {
    const src = fakeSources();
    const idle = observer(src, 0);
    idle.start();
    const ticking = fakeSources();
    observer(ticking, 0.01).start();
    await atLeast('other observer checks', () => ticking.runs, 3);
    assert.equal(src.runs, 0);
  });

  it('stop() waits for the check in flight, leaves no timers and prevents further checks', async () => {
    const timers = trackTimers();
    try {
      let open = (): void => undefined;
      const src = fakeSources();
      const o = observer(src, 0.05);
      o.start();
      await atLeast('checks', () => src.runs, 2);
      src.gate = new Promise<void>((r) => (open = r));
      const runsAtGate = src.runs;
      await atLeast('checks', () => src.runs, runsAtGate + 1); // This one is now held at the gate.
      let stopped = false;
      const stopping = o.stop().then(() => (stopped = true));
      await Promise.resolve();
      assert.equal(stopped, false, 'stop() must wait for the check in flight');
      open();
      await stopping;
      assert.equal(timers.live.size, 0, 'no observer timer may survive stop()');
      assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, 0);
      const after = src.runs;
      // Let time pass, measured by another observer's checks rather than a fixed sleep.
      const other = fakeSources();
      observer(other, 0.02).start();
      await atLeast('other observer checks', () => other.runs, 5);
      assert.equal(src.runs, after);
      await assert.rejects(o.check(), ObserverStoppedError);
    } finally {
      timers.restore();
    }
  });

  it('its timer does not keep the process alive, and stop() clears it between checks', async () => {
    const timers = trackTimers();
    try {
      const src = fakeSources();
      const o = observer(src, 3600);
      o.start();
      const settled = (): { done: true; value: true } | { done: false; seen: string } =>
        o.latest && timers.live.size === 1 ? { done: true, value: true } : { done: false, seen: `${timers.live.size} timers` };
      await pollUntil('the first check to settle and the next to be scheduled', settled, { timeoutMs: 5000, intervalMs: 10 });
      // The one pending timer is the observer's, and it is unref()ed.
      assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, 0);
      await o.stop();
      assert.equal(timers.live.size, 0, 'stop() must clear the pending timer');
      assert.equal(src.runs, 1);
    } finally {
      timers.restore();
    }
  });

  it('keeps going after a check fails, and logs the failure', async () => {
    const logged: string[] = [];
    const src = fakeSources({ failOn: (n) => n % 2 === 1 });
    const o = observer(src, 0.02, (m) => logged.push(m));
    o.start();
    await atLeast('checks', () => src.runs, 5);
    await o.stop();
    assert.ok(logged.some((m) => /check failed: ps failed on run 1/.test(m)));
    assert.ok(logged.some((m) => /finding/.test(m)));
    assert.ok(o.latest);
  });

  it('can start again after stop', async () => {
    const src = fakeSources();
    const o = observer(src, 0.02);
    o.start();
    await atLeast('checks', () => src.runs, 1);
    await o.stop();
    const before = src.runs;
    o.start();
    await atLeast('checks', () => src.runs, before + 2);
  });
});
