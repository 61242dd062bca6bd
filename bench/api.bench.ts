// API latency with 1,000 VMs in the database: a dry-run vman (no QEMU) on
// 127.0.0.1, rows inserted straight through vman.db, then sequential requests
// over one keep-alive connection. The baseline is the same round trip to
// GET /health (Fastify, logging and loopback, no vman work), interleaved with
// the measured requests so both see the same machine.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { figure, type BenchContext, type BenchModule, type Figure } from './lib/figures.ts';
import { fmtMs, percentile } from './lib/stats.ts';
import { startBenchVman } from './lib/vman.ts';

const VMS = 1000;
const GETS = 500;
const LISTS = 50;
const WARMUP = 50;

export const apiBench: BenchModule = {
  name: 'api',
  description: `API latency (p50, p99) of get and list with ${VMS.toLocaleString('en-US')} VMs (dry run)`,
  needsQemu: false,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const storage = path.join(ctx.root, 'api');
    const v = await startBenchVman({ storagePath: storage, dryRun: true });
    const health: number[] = [];
    const healthForList: number[] = [];
    const gets: number[] = [];
    const lists: number[] = [];
    try {
      const { db } = v.vman;
      const ids: string[] = [];
      const t0 = performance.now();
      db.transaction(() => {
        for (let i = 0; i < VMS; i++) {
          const id = `vm-${randomBytes(6).toString('hex')}`;
          const mac = `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
          db.vms.insert({ id, name: `bench-${i}`, templateId: 'tpl-small', state: 'stopped', stateReason: null, pid: null, mac, storageDir: path.join(storage, 'vms', id) });
          ids.push(id);
        }
      });
      ctx.log(`  inserted ${VMS} VMs in ${fmtMs(performance.now() - t0)}`);

      const list = await v.http.expect<unknown[]>(200, 'GET', 'api/v1/vms');
      if (list.body.length !== VMS) throw new Error(`GET /api/v1/vms returned ${list.body.length} VMs, not ${VMS}`);
      const pick = (i: number): string => ids[(i * 7919) % ids.length]!;
      // Warm-up: JIT, schema compilation, prepared statements.
      for (let i = 0; i < WARMUP; i++) {
        await v.http.expect(200, 'GET', 'health');
        await v.http.expect(200, 'GET', `api/v1/vms/${pick(i)}`);
      }
      for (let i = 0; i < 5; i++) await v.http.expect(200, 'GET', 'api/v1/vms');

      for (let i = 0; i < GETS; i++) {
        health.push((await v.http.expect(200, 'GET', 'health')).ms);
        gets.push((await v.http.expect(200, 'GET', `api/v1/vms/${pick(i)}`)).ms);
      }
      for (let i = 0; i < LISTS; i++) {
        healthForList.push((await v.http.expect(200, 'GET', 'health')).ms);
        lists.push((await v.http.expect(200, 'GET', 'api/v1/vms')).ms);
      }
    } finally {
      await v.close();
    }
    const allHealth = [...health, ...healthForList];
    ctx.log(`  GET /health p50 ${fmtMs(percentile(allHealth, 50))} p99 ${fmtMs(percentile(allHealth, 99))}`);
    const notes = [`${VMS} VMs in the database, sequential requests over one keep-alive connection, each interleaved with a GET /health`];
    const baseline = (samples: number[]) => ({ label: 'GET /health (Fastify + logging + loopback round trip)', samples });
    return [
      figure({ id: 'api.get.p50', label: 'GET /vms/:id', stat: 'p50', notes, vman: { label: `GET /api/v1/vms/:id × ${GETS}`, samples: gets }, baseline: baseline(health) }),
      figure({ id: 'api.get.p99', label: 'GET /vms/:id', stat: 'p99', notes, vman: { label: `GET /api/v1/vms/:id × ${GETS}`, samples: gets }, baseline: baseline(health) }),
      figure({ id: 'api.list.p50', label: `GET /vms (${VMS.toLocaleString('en-US')})`, stat: 'p50', notes, vman: { label: `GET /api/v1/vms (${VMS} VMs) × ${LISTS}`, samples: lists }, baseline: baseline(healthForList) }),
      figure({ id: 'api.list.p99', label: `GET /vms (${VMS.toLocaleString('en-US')})`, stat: 'p99', notes, vman: { label: `GET /api/v1/vms (${VMS} VMs) × ${LISTS}`, samples: lists }, baseline: baseline(healthForList) }),
    ];
  },
};
