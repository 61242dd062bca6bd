// The address manager over a real SQLite file: lowest free address first,
// reuse after release, a 409 when the range is full (the VM left unchanged),
// and no address handed out twice when several processes allocate at once.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { openDatabase, type VmanDb } from '../src/db/database.ts';
import { STATUS_OF, VmanError } from '../src/errors.ts';
import { AddressPool } from '../src/network/address-pool.ts';
import { parseNetworkConfig } from '../src/network/config.ts';

const WORKER_ENV = 'VMAN_POOL_TEST_WORKER';

function pool(db: VmanDb, range: string): AddressPool {
  return new AddressPool(parseNetworkConfig({ range }), db.addresses);
}

function seed(db: VmanDb, count: number, prefix = 'v'): string[] {
  if (!db.templates.get('t1')) {
    db.templates.insert({
      id: 't1', name: 'tiny', cpus: 1, memoryMb: 256, kernelPath: '/k/vmlinuz', initrdPath: null,
      cmdline: null, baseImagePath: null, baseImageFormat: null, builtin: false,
    });
  }
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}${i}`;
    const mac = `52:54:00:${prefix.charCodeAt(0).toString(16).padStart(2, '0')}:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    db.vms.insert({ id, name: id, templateId: 't1', state: 'created', stateReason: null, pid: null, mac, storageDir: `/nowhere/${id}` });
    ids.push(id);
  }
  return ids;
}

/** What VmService does when a VM starts: the state change and the allocation in one transaction. */
function startInTransaction(db: VmanDb, p: AddressPool, vmId: string): string {
  return db.transaction(() => {
    if (!db.vms.compareAndSetState(vmId, ['created', 'stopped', 'error'], 'starting')) throw new Error(`${vmId} cannot start`);
    return p.allocate(vmId);
  });
}

function stopInTransaction(db: VmanDb, p: AddressPool, vmId: string): string | undefined {
  return db.transaction(() => {
    db.vms.setState(vmId, 'stopped');
    return p.release(vmId);
  });
}

const allocations = (db: VmanDb): Array<[string, string]> => db.addresses.list().map((a) => [a.address, a.vmId]);

// ---- worker: one "process" of the concurrency test -------------------------

interface WorkerJob {
  dbPath: string;
  range: string;
  vmIds: string[];
}

interface WorkerResult {
  got: Array<[string, string]>;
  exhausted: string[];
}

async function runWorker(job: WorkerJob): Promise<void> {
  const db = openDatabase(job.dbPath);
  const p = pool(db, job.range);
  // All workers start allocating at the same moment, when the parent says so.
  const go = new Promise<void>((resolve) => process.once('message', () => resolve()));
  process.send!('ready');
  await go;
  const result: WorkerResult = { got: [], exhausted: [] };
  for (const id of job.vmIds) {
    try {
      result.got.push([id, startInTransaction(db, p, id)]);
    } catch (err) {
      if (err instanceof VmanError && err.code === 'address-range-exhausted') result.exhausted.push(id);
      else throw err;
    }
  }
  db.close();
  process.send!(result, () => process.exit(0));
}

if (process.env[WORKER_ENV]) {
  await runWorker(JSON.parse(process.env[WORKER_ENV]) as WorkerJob);
} else {
  let tmp: string;
  let n = 0;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-network-test-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const freshDb = (): { db: VmanDb; file: string } => {
    const file = path.join(tmp, `pool-${++n}.db`);
    return { db: openDatabase(file), file };
  };

  describe('address allocation order', () => {
    it('hands out the lowest free address, in order', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.254');
      const [a, b, c] = seed(db, 3);
      assert.equal(startInTransaction(db, p, a!), '10.0.2.15');
      assert.equal(startInTransaction(db, p, b!), '10.0.2.16');
      assert.equal(startInTransaction(db, p, c!), '10.0.2.17');
      assert.deepEqual(allocations(db), [['10.0.2.15', a], ['10.0.2.16', b], ['10.0.2.17', c]]);
    });

    it('orders numerically, not as text (10.0.2.9 before 10.0.2.10)', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.8-10.0.2.11');
      const ids = seed(db, 4);
      assert.deepEqual(ids.map((id) => p.allocate(id)), ['10.0.2.8', '10.0.2.9', '10.0.2.10', '10.0.2.11']);
    });

    it('gives a VM that already holds an address the same one', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.20');
      const [a] = seed(db, 1);
      assert.equal(p.allocate(a!), '10.0.2.15');
      assert.equal(p.allocate(a!), '10.0.2.15');
      assert.equal(db.addresses.list().length, 1);
    });
  });

  describe('reuse after release', () => {
    it('gives a released address to the next VM that starts', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.254');
      const [a, b, c, d] = seed(db, 4);
      startInTransaction(db, p, a!);
      startInTransaction(db, p, b!);
      startInTransaction(db, p, c!);
      assert.equal(stopInTransaction(db, p, b!), '10.0.2.16');
      assert.equal(p.addressOf(b!), undefined);
      assert.equal(startInTransaction(db, p, d!), '10.0.2.16');
    });

    it('refills gaps lowest first', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.254');
      const ids = seed(db, 6);
      for (const id of ids.slice(0, 4)) startInTransaction(db, p, id);
      stopInTransaction(db, p, ids[2]!); // .17
      stopInTransaction(db, p, ids[0]!); // .15
      assert.equal(startInTransaction(db, p, ids[4]!), '10.0.2.15');
      assert.equal(startInTransaction(db, p, ids[5]!), '10.0.2.17');
    });

    it('releases an address when its VM row is deleted', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.15');
      const [a, b] = seed(db, 2);
      startInTransaction(db, p, a!);
      db.transaction(() => {
        p.release(a!);
        db.vms.delete(a!);
      });
      assert.equal(startInTransaction(db, p, b!), '10.0.2.15');
    });

    it('releasing a VM that holds nothing changes nothing', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.20');
      const [a, b] = seed(db, 2);
      p.allocate(a!);
      assert.equal(p.release(b!), undefined);
      assert.deepEqual(allocations(db), [['10.0.2.15', a]]);
    });
  });

  describe('exhaustion', () => {
    it('refuses with a 409 naming the range, and leaves the VM as it was', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.16');
      const [a, b, c] = seed(db, 3);
      startInTransaction(db, p, a!);
      startInTransaction(db, p, b!);
      const before = db.vms.get(c!);
      assert.throws(
        () => startInTransaction(db, p, c!),
        (err: unknown) => {
          assert.ok(err instanceof VmanError, `a VmanError, got ${String(err)}`);
          assert.equal(err.code, 'address-range-exhausted');
          assert.equal(STATUS_OF[err.kind], 409);
          assert.match(err.message, /no free address: all 2 addresses of 10\.0\.2\.15-10\.0\.2\.16 are allocated/);
          return true;
        },
      );
      // The transaction rolled back: the VM did not move to `starting`.
      assert.deepEqual(db.vms.get(c!), before);
      assert.equal(p.addressOf(c!), undefined);
      assert.equal(db.addresses.list().length, 2);
    });

    it('a one-address range serves one VM at a time', (t) => {
      const { db } = freshDb();
      t.after(() => db.close());
      const p = pool(db, '10.0.2.15-10.0.2.15');
      assert.equal(p.size, 1);
      const [a, b] = seed(db, 2);
      startInTransaction(db, p, a!);
      assert.throws(() => startInTransaction(db, p, b!), /no free address/);
      stopInTransaction(db, p, a!);
      assert.equal(startInTransaction(db, p, b!), '10.0.2.15');
    });
  });

  describe('concurrent allocation', () => {
    it('two connections to one file, interleaved, never share an address', (t) => {
      const { db: one, file } = freshDb();
      const two = openDatabase(file);
      t.after(() => {
        one.close();
        two.close();
      });
      const ids = seed(one, 10);
      const p1 = pool(one, '10.0.2.15-10.0.2.22');
      const p2 = pool(two, '10.0.2.15-10.0.2.22');
      const got: string[] = [];
      const refused: string[] = [];
      ids.forEach((id, i) => {
        try {
          got.push(startInTransaction(i % 2 === 0 ? one : two, i % 2 === 0 ? p1 : p2, id));
        } catch (err) {
          if (err instanceof VmanError && err.code === 'address-range-exhausted') refused.push(id);
          else throw err;
        }
      });
      assert.deepEqual(got, ['10.0.2.15', '10.0.2.16', '10.0.2.17', '10.0.2.18', '10.0.2.19', '10.0.2.20', '10.0.2.21', '10.0.2.22']);
      assert.deepEqual(refused, [ids[8], ids[9]]);
      // A release through one connection is seen by the other.
      stopInTransaction(two, p2, ids[3]!);
      assert.equal(startInTransaction(one, p1, ids[8]!), '10.0.2.18');
    });

    it('several processes allocating at once get distinct addresses, the whole range and nothing more', async (t) => {
      const { db, file } = freshDb();
      t.after(() => db.close());
      const range = '10.0.2.15-10.0.2.34'; // 20 addresses
      const workers = 4;
      const perWorker = 7; // 28 starts for 20 addresses
      const jobs: WorkerJob[] = [];
      for (let w = 0; w < workers; w++) jobs.push({ dbPath: file, range, vmIds: seed(db, perWorker, String.fromCharCode(97 + w)) });

      const self = fileURLToPath(import.meta.url);
      const children = jobs.map((job) =>
        fork(self, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, [WORKER_ENV]: JSON.stringify(job) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
      );
      // The next message from a worker, or its exit as an error.
      const nextMessage = (child: (typeof children)[number]): Promise<unknown> =>
        new Promise((resolve, reject) => {
          const onExit = (code: number | null): void => reject(new Error(`worker exited with ${code} before reporting`));
          child.once('exit', onExit);
          child.once('message', (m) => {
            child.off('exit', onExit);
            resolve(m);
          });
        });
      // Every worker has opened the database and waits ('ready'); then all go at once.
      await Promise.all(children.map(nextMessage));
      const results = children.map((c) => nextMessage(c) as Promise<WorkerResult>);
      for (const c of children) c.send('go');
      const all = await Promise.all(results);

      const got = all.flatMap((r) => r.got);
      const exhausted = all.flatMap((r) => r.exhausted);
      const addresses = got.map(([, a]) => a);
      assert.equal(new Set(addresses).size, addresses.length, `an address was handed out twice: ${addresses.join(' ')}`);
      assert.equal(got.length, 20);
      assert.equal(exhausted.length, workers * perWorker - 20);
      const expected = Array.from({ length: 20 }, (_, i) => `10.0.2.${15 + i}`);
      assert.deepEqual([...addresses].sort(), [...expected].sort());
      // The database agrees with what the workers were told, and only allocated VMs left `created`.
      assert.deepEqual(
        db.addresses.list().map((a) => [a.vmId, a.address]).sort(),
        [...got].sort(),
      );
      for (const id of exhausted) assert.equal(db.vms.get(id)?.state, 'created', `${id} was refused and must be unchanged`);
      for (const [id] of got) assert.equal(db.vms.get(id)?.state, 'starting');
    });
  });
}
