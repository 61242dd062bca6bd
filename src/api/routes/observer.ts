// /api/v1/observer: coherence checks on demand, the latest periodic report,
// and repair only when asked.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { notFound, VmanError } from '../../errors.ts';
import type { Finding as FindingRecord, ObserverReport } from '../../observer/findings.ts';
import type { Observer } from '../../observer/observer.ts';
import type { RepairService } from '../../services/repair.ts';
import { problemResponses } from '../schemas.ts';

const Finding = Type.Object({
  kind: Type.String(),
  resource_type: Type.String(),
  resource_id: Type.String(),
  vm_id: Type.Optional(Type.String()),
  recorded: Type.String(),
  observed: Type.String(),
  pid: Type.Optional(Type.Integer()),
  path: Type.Optional(Type.String()),
});

const Report = Type.Object({
  checked_at: Type.String(),
  duration_ms: Type.Number(),
  findings: Type.Array(Finding),
  counts: Type.Object({ vms: Type.Integer(), disks: Type.Integer(), processes: Type.Integer(), disk_files: Type.Integer() }),
});

/** One finding as the report (and the event stream) gives it. */
export function findingJson(f: FindingRecord) {
  return {
    kind: f.kind, resource_type: f.resourceType, resource_id: f.resourceId,
    ...(f.vmId !== undefined ? { vm_id: f.vmId } : {}), recorded: f.recorded, observed: f.observed,
    ...(f.pid !== undefined ? { pid: f.pid } : {}), ...(f.path !== undefined ? { path: f.path } : {}),
  };
}

export function reportJson(r: ObserverReport) {
  return {
    checked_at: r.checkedAt,
    duration_ms: r.durationMs,
    findings: r.findings.map(findingJson),
    counts: { vms: r.counts.vms, disks: r.counts.disks, processes: r.counts.processes, disk_files: r.counts.diskFiles },
  };
}

export const observerRoutes = (observer: Observer, repairs: RepairService): FastifyPluginAsyncTypebox => async (app) => {
  const check = async (): Promise<ObserverReport> => {
    try {
      return await observer.check();
    } catch (err) {
      throw new VmanError('unavailable', 'observer-unavailable', `the check could not run: ${(err as Error).message}`, { cause: err });
    }
  };

  app.post('/observer/check', {
    schema: { tags: ['observer'], summary: 'Compare the records with the host now', operationId: 'checkCoherence', response: { 200: Report, ...problemResponses(503) } },
  }, async () =>
    reportJson(await check()),
  );

  app.get('/observer/report', {
    schema: { tags: ['observer'], summary: 'The latest periodic coherence report', operationId: 'getObserverReport', response: { 200: Report, ...problemResponses(404) } },
  }, async () => {
    const latest = observer.latest;
    if (!latest) throw notFound('observer report', 'latest');
    return reportJson(latest);
  });

  app.post('/observer/reconcile', {
    schema: {
      tags: ['observer'], summary: 'Check, then repair what disagrees', operationId: 'reconcile',
      response: {
        200: Type.Object({
          report: Report,
          changed: Type.Array(Type.Object({ vm_id: Type.String(), from: Type.String(), to: Type.String(), reason: Type.String() })),
          released_addresses: Type.Array(Type.String()),
          removed_from_qemu: Type.Array(Type.Object({ vm_id: Type.String(), devices: Type.Array(Type.String()), nodes: Type.Array(Type.String()) })),
          failed: Type.Array(Type.Object({ resource_id: Type.String(), reason: Type.String() })),
        }),
        ...problemResponses(503),
      },
    },
  }, async () => {
    const report = await check();
    const result = await repairs.repair(report);
    return {
      report: reportJson(report),
      changed: result.changed.map((c) => ({ vm_id: c.vmId, from: c.from, to: c.to, reason: c.reason })),
      released_addresses: result.releasedAddresses,
      removed_from_qemu: result.removedFromQemu.map((r) => ({ vm_id: r.vmId, devices: r.devices, nodes: r.nodes })),
      failed: result.failed.map((f) => ({ resource_id: f.resourceId, reason: f.reason })),
    };
  });
};
