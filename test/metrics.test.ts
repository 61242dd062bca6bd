// GET /metrics: what it counts (VMs and disks by state, operations, recovery,
// the observer), who may read it, and the readers underneath it (/proc,
// query-blockstats, the text format).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig, ConfigError } from '../src/config.ts';
import { parseExposition, type MetricSample } from '../src/metrics/exposition.ts';
import { VmanMetrics } from '../src/metrics/metrics.ts';
import { parseBlockStats } from '../src/operator/block-stats.ts';
import { readUsage } from '../src/operator/proc.ts';
import type { VmHandle } from '../src/operator/operator.ts';
import type { VmRecord } from '../src/db/types.ts';
import { VmanError } from '../src/errors.ts';
import { dryVman, type DryVman } from './helpers/dry-vman.ts';

async function scrape(v: DryVman, headers: Record<string, string> = {}): Promise<{ status: number; type: string; samples: MetricSample[]; raw: string }> {
  const res = await v.vman.app.inject({ method: 'GET', url: '/metrics', headers });
  return { status: res.statusCode, type: String(res.headers['content-type']), raw: res.body, samples: res.statusCode === 200 ? parseExposition(res.body) : [] };
}

/** The one sample with this name and these labels (among others); fails when there is none or more than one. */
function value(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples among ${samples.filter((s) => s.name === name).map((s) => JSON.stringify(s.labels)).join(' ') || 'none'}`);
  return found[0]!.value;
}

async function createVm(v: DryVman, name: string): Promise<string> {
  const res = await v.api('POST', '/api/v1/vms', { name, template: 'small' });
  assert.equal(res.status, 201, res.raw);
  return res.body.id as string;
}

describe('GET /metrics: VMs and disks by state', () => {
  it('counts each VM once, in the state the database records, 0 for the states no VM is in', async (t) => {
    const v = await dryVman(t);
    const a = await createVm(v, 'a');
    await createVm(v, 'b');
    assert.equal((await v.api('POST', `/api/v1/vms/${a}/start`)).status, 200);
    let m = await scrape(v);
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    assert.deepEqual(
      ['created', 'starting', 'running', 'stopping', 'stopped', 'error', 'saving', 'restoring'].map((state) => value(m.samples, 'vman_vms', { state })),
      [1, 0, 1, 0, 0, 0, 0, 0],
    );
    assert.equal((await v.api('POST', `/api/v1/vms/${a}/stop`)).status, 200);
    m = await scrape(v);
    assert.deepEqual(['created', 'running', 'stopped'].map((state) => value(m.samples, 'vman_vms', { state })), [1, 0, 1]);
    assert.deepEqual(['available', 'attached'].map((state) => value(m.samples, 'vman_disks', { state })), [0, 0]);
  });
});

describe('GET /metrics: operations', () => {
  it('times each operation by outcome and counts the ones that did not succeed by their problem code', async (t) => {
    const v = await dryVman(t);
    const id = await createVm(v, 'a');
    assert.equal((await v.api('POST', `/api/v1/vms/${id}/start`)).status, 200);
    const again = await v.api('POST', `/api/v1/vms/${id}/start`);
    assert.equal(again.status, 409);
    const code = String(again.body.type).replace('urn:vman:problem:', '');
    const m = await scrape(v);
    assert.equal(value(m.samples, 'vman_operation_duration_seconds_count', { resource: 'vm', operation: 'create', outcome: 'ok' }), 1);
    assert.equal(value(m.samples, 'vman_operation_duration_seconds_count', { resource: 'vm', operation: 'start', outcome: 'ok' }), 1);
    assert.equal(value(m.samples, 'vman_operation_duration_seconds_count', { resource: 'vm', operation: 'start', outcome: 'refused' }), 1);
    assert.equal(value(m.samples, 'vman_operation_failures_total', { resource: 'vm', operation: 'start', code }), 1);
    assert.equal(m.samples.filter((s) => s.name === 'vman_operation_failures_total').length, 1, 'only the refused start failed');
    const sum = value(m.samples, 'vman_operation_duration_seconds_sum', { resource: 'vm', operation: 'start', outcome: 'ok' });
    assert.ok(sum > 0 && sum < 5, `a dry-run start took ${sum} s`);
  });

  it('counts a start that failed in QEMU as failed, not refused', async (t) => {
    const v = await dryVman(t);
    const id = await createVm(v, 'a');
    v.operator.behaviour.failLaunch = 'simulated launch failure';
    assert.notEqual((await v.api('POST', `/api/v1/vms/${id}/start`)).status, 200);
    const m = await scrape(v);
    assert.equal(value(m.samples, 'vman_operation_duration_seconds_count', { resource: 'vm', operation: 'start', outcome: 'failed' }), 1);
  });

  it('passes results and errors through unchanged, and times the caller\'s whole operation', async () => {
    const metrics = new VmanMetrics({ vms: () => [], disks: () => [], handle: () => undefined });
    const service = {
      calls: 0,
      async go(n: number): Promise<number> {
        this.calls++;
        if (n < 0) throw new VmanError('invalid', 'negative', 'no');
        return n * 2;
      },
    };
    metrics.instrument(service, 'vm', { go: 'start' });
    assert.equal(await service.go(21), 42);
    await assert.rejects(service.go(-1), (e: unknown) => e instanceof VmanError && e.code === 'negative');
    assert.equal(service.calls, 2);
    const samples = parseExposition(await metrics.render());
    assert.equal(value(samples, 'vman_operation_failures_total', { operation: 'start', code: 'negative' }), 1);
    assert.throws(() => metrics.instrument(service, 'vm', { nothing: 'x' } as never), /no method nothing/);
  });
});

describe('GET /metrics: recovery and the observer', () => {
  it('counts what recovery did at start-up, settled or left', async () => {
    const metrics = new VmanMetrics({ vms: () => [], disks: () => [], handle: () => undefined });
    metrics.recovered([
      { intent: { op: 'disk.create', diskId: 'd1', path: '/x' } as never, outcome: 'undone', settled: true },
      { intent: { op: 'disk.create', diskId: 'd2', path: '/y' } as never, outcome: 'undone', settled: true },
      { intent: { op: 'vm.stop', vmId: 'vm-1' } as never, outcome: 'could not be settled', settled: false },
    ]);
    const samples = parseExposition(await metrics.render());
    assert.equal(value(samples, 'vman_recovery_actions_total', { operation: 'disk.create', result: 'settled' }), 2);
    assert.equal(value(samples, 'vman_recovery_actions_total', { operation: 'vm.stop', result: 'left' }), 1);
  });

  it('counts the intents a dead vman left, as the next vman\'s recovery settled them', async (t) => {
    const v = await dryVman(t);
    const id = await createVm(v, 'a');
    assert.equal((await v.api('POST', `/api/v1/vms/${id}/start`)).status, 200);
    // As a vman killed during a start leaves it: starting, its QEMU up.
    v.vman.db.db.prepare("UPDATE vms SET state = 'starting' WHERE id = ?").run(id);
    v.vman.db.intents.insert({ op: 'vm.start', vmId: id, from: { state: 'stopped', reason: null } }, 'a-vman-that-died');
    await v.vman.close();
    const b = await v.reopen();
    const m = await scrape(b);
    assert.equal(value(m.samples, 'vman_recovery_actions_total', { operation: 'vm.start', result: 'settled' }), 1);
  });

  it('gives the latest check\'s findings by kind, and how long checks take', async (t) => {
    const v = await dryVman(t);
    const id = await createVm(v, 'a');
    assert.equal((await v.api('POST', `/api/v1/vms/${id}/start`)).status, 200);
    // The simulated QEMU dies behind vman's back: the database says running, no process does.
    v.operator.vms.get(id)!.alive = false;
    v.vman.runtime.untrack(id);
    await v.vman.observer.check();
    const m = await scrape(v);
    const kinds = m.samples.filter((s) => s.name === 'vman_observer_findings' && s.value > 0).map((s) => s.labels.kind);
    assert.ok(kinds.length > 0, 'the observer found the dead VM');
    // Two checks so far: the one at start-up and this one.
    assert.equal(value(m.samples, 'vman_observer_check_duration_seconds_count'), 2);
    const last = value(m.samples, 'vman_observer_last_check_timestamp_seconds');
    assert.ok(Math.abs(last - Date.now() / 1000) < 60, `last check at ${last}`);
  });
});

describe('GET /metrics: per running VM', () => {
  const running = (id: string, name: string): VmRecord => ({ id, name, state: 'running' } as VmRecord);

  it('reads CPU seconds and resident memory of the VM\'s process from /proc', async () => {
    const handle = { pid: process.pid, blockStats: async () => [] } as unknown as VmHandle;
    const metrics = new VmanMetrics({ vms: () => [running('vm-1', 'web')], disks: () => [], handle: () => handle });
    // Spend some CPU so the figure is not zero.
    const until = Date.now() + 60;
    while (Date.now() < until) Math.sqrt(Math.random());
    const before = process.cpuUsage();
    const samples = parseExposition(await metrics.render());
    const after = process.cpuUsage();
    const cpu = value(samples, 'vman_vm_cpu_seconds_total', { vm: 'vm-1', name: 'web' });
    // /proc counts in 10 ms ticks: within a tick of what Node says, around the scrape.
    assert.ok(cpu >= (before.user + before.system) / 1e6 - 0.02 && cpu <= (after.user + after.system) / 1e6 + 0.02, `cpu ${cpu} s`);
    const rss = value(samples, 'vman_vm_resident_memory_bytes', { vm: 'vm-1', name: 'web' });
    assert.ok(Math.abs(rss - process.memoryUsage().rss) < 16 * 1024 * 1024, `rss ${rss} vs ${process.memoryUsage().rss}`);
  });

  it('gives each disk\'s I/O as QEMU counted it, and counts a QEMU that did not answer', async () => {
    const stats = [{ diskId: 'disk-aa', readBytes: 512, writtenBytes: 8_388_608, reads: 1, writes: 8, flushes: 2, failedReads: 0, failedWrites: 1, failedFlushes: 0 }];
    const answering = { pid: process.pid, blockStats: async () => stats } as unknown as VmHandle;
    const silent = { pid: process.pid, blockStats: async () => { throw new Error('timed out'); } } as unknown as VmHandle;
    const metrics = new VmanMetrics({
      vms: () => [running('vm-1', 'a'), running('vm-2', 'b'), { id: 'vm-3', name: 'c', state: 'stopped' } as VmRecord],
      disks: () => [], handle: (id) => (id === 'vm-1' ? answering : id === 'vm-2' ? silent : undefined),
    });
    const samples = parseExposition(await metrics.render());
    const disk = { vm: 'vm-1', disk: 'disk-aa' };
    assert.equal(value(samples, 'vman_disk_written_bytes_total', disk), 8_388_608);
    assert.equal(value(samples, 'vman_disk_read_bytes_total', disk), 512);
    assert.equal(value(samples, 'vman_disk_writes_total', disk), 8);
    assert.equal(value(samples, 'vman_disk_flushes_total', disk), 2);
    assert.equal(value(samples, 'vman_disk_errors_total', { ...disk, op: 'write' }), 1);
    assert.equal(value(samples, 'vman_metrics_collect_errors_total', { source: 'query-blockstats' }), 1);
    // A stopped VM has no process figures, even with a stale handle.
    assert.equal(samples.filter((s) => s.labels.vm === 'vm-3').length, 0);
  });

  it('finds vman\'s disks in query-blockstats by their node names', () => {
    const reply = [
      { device: '', qdev: '/machine/peripheral/disk-root-ab/virtio-backend', 'node-name': 'drive-root-ab', stats: { rd_bytes: 10, wr_bytes: 20, rd_operations: 1, wr_operations: 2, flush_operations: 3, failed_rd_operations: 0, failed_wr_operations: 0, failed_flush_operations: 0 } },
      { device: 'ide0', stats: { rd_bytes: 99 } },
    ];
    assert.deepEqual(parseBlockStats(reply), [
      { diskId: 'root-ab', readBytes: 10, writtenBytes: 20, reads: 1, writes: 2, flushes: 3, failedReads: 0, failedWrites: 0, failedFlushes: 0 },
    ]);
    assert.throws(() => parseBlockStats({ error: 'x' }), /not a list/);
  });

  it('reads nothing for a process that is gone', async () => {
    assert.equal(await readUsage(2 ** 22 + 7), undefined);
  });
});

describe('GET /metrics: who may read it', () => {
  it('takes the API token like every other route', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret' } });
    assert.equal((await scrape(v)).status, 401);
    assert.equal((await scrape(v, { authorization: 'Bearer s3cret' })).status, 200);
    const doc = await v.api('GET', '/api/v1/openapi.json');
    assert.equal(doc.body.paths['/metrics'].get.security, undefined, 'the document\'s default: the bearer token');
  });

  it('is open without the token with VMAN_METRICS_PUBLIC=1, and only /metrics is', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret', VMAN_METRICS_PUBLIC: '1' } });
    assert.equal((await scrape(v)).status, 200);
    assert.equal((await v.api('GET', '/api/v1/vms')).status, 401);
    // The API's description says so too.
    const doc = await v.api('GET', '/api/v1/openapi.json');
    assert.deepEqual(doc.body.paths['/metrics'].get.security, []);
  });

  it('refuses a VMAN_METRICS_PUBLIC that is not a clear yes or no', () => {
    assert.equal(loadConfig({}).metricsPublic, false);
    assert.equal(loadConfig({ VMAN_METRICS_PUBLIC: 'true' }).metricsPublic, true);
    assert.equal(loadConfig({ VMAN_METRICS_PUBLIC: '0' }).metricsPublic, false);
    assert.throws(() => loadConfig({ VMAN_METRICS_PUBLIC: 'yes' }), (e: unknown) => e instanceof ConfigError && /VMAN_METRICS_PUBLIC must be 1, true, 0 or false/.test(e.message));
  });
});

describe('the text format reader', () => {
  it('reads names, escaped labels and values; fails on a line that is not a sample', () => {
    const samples = parseExposition('# HELP x y\n# TYPE x counter\nx{a="q\\"\\\\",b="1,2"} 3.5\nh_bucket{le="+Inf"} 4\nnan NaN\n');
    assert.deepEqual(samples.slice(0, 2), [
      { name: 'x', labels: { a: 'q"\\', b: '1,2' }, value: 3.5 },
      { name: 'h_bucket', labels: { le: '+Inf' }, value: 4 },
    ]);
    assert.ok(Number.isNaN(samples[2]!.value));
    assert.throws(() => parseExposition('x{a="1"'), /line 1 is not a Prometheus sample/);
  });
});

describe('GET /metrics: scrapes at the same time', () => {
  it('share one reading: the world is read once for both', async () => {
    let reads = 0;
    const metrics = new VmanMetrics({ vms: () => { reads++; return []; }, disks: () => [], handle: () => undefined });
    const [a, b] = await Promise.all([metrics.render(), metrics.render()]);
    assert.equal(a, b);
    assert.equal(reads, 1);
    await metrics.render();
    assert.equal(reads, 2, 'a later scrape reads again');
  });
});
