// /api/v1/vms/:id/snapshots
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { SnapshotService, SnapshotView } from '../../services/snapshot-service.ts';
import type { VmService } from '../../services/vm-service.ts';
import { IdParams, NoOptionsBody, problemResponses, RevertQuery, Snapshot, SnapshotCreate, SnapshotParams, Vm } from '../schemas.ts';
import { vmJson } from './vms.ts';

export function snapshotJson(s: SnapshotView) {
  return {
    id: s.id, name: s.name, vm_id: s.vmId, vm_name: s.vmName, with_memory: s.withMemory,
    disks: s.disks.map((d) => ({ role: d.role, disk_id: d.diskId })), guest_address: s.guestAddress,
    pause_ms: s.pauseMs, state_bytes: s.stateBytes, memory_mb: s.hardware.memoryMb, clones: s.clones, created_at: s.createdAt,
  };
}

export const snapshotRoutes = (snapshots: SnapshotService, vms: VmService): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/vms/:id/snapshots', {
    schema: {
      tags: ['snapshots'], summary: 'Take a snapshot: with the guest\'s memory when the VM runs (it pauses meanwhile), of its disks when it does not', operationId: 'createSnapshot',
      params: IdParams, body: SnapshotCreate, response: { 201: Snapshot, ...problemResponses(400, 404, 409, 502) },
    },
  }, async (req, reply) => {
    const s = await snapshots.create(req.params.id, req.body.name);
    return reply.code(201).header('location', `/api/v1/vms/${s.vmId}/snapshots/${s.name}`).send(snapshotJson(s));
  });

  app.get('/vms/:id/snapshots', {
    schema: { tags: ['snapshots'], summary: 'List a VM\'s snapshots', operationId: 'listSnapshots', params: IdParams, response: { 200: Type.Array(Snapshot), ...problemResponses(404) } },
  }, async (req) => snapshots.list(req.params.id).map(snapshotJson));

  app.get('/vms/:id/snapshots/:name', {
    schema: { tags: ['snapshots'], summary: 'Get one snapshot', operationId: 'getSnapshot', params: SnapshotParams, response: { 200: Snapshot, ...problemResponses(400, 404) } },
  }, async (req) => snapshotJson(snapshots.get(req.params.id, req.params.name)));

  app.delete('/vms/:id/snapshots/:name', {
    schema: {
      tags: ['snapshots'], summary: 'Delete a snapshot no clone stands on', operationId: 'deleteSnapshot',
      params: SnapshotParams, response: { 204: Type.Null(), ...problemResponses(400, 404, 409) },
    },
  }, async (req, reply) => {
    await snapshots.delete(req.params.id, req.params.name);
    return reply.code(204).send(null);
  });

  app.post('/vms/:id/snapshots/:name/restore', {
    schema: {
      tags: ['snapshots'], summary: 'Revert the VM to the snapshot: its disks back, and with memory the guest runs on from that moment (?force=true when that throws away what it has now)',
      operationId: 'restoreSnapshot', params: SnapshotParams, querystring: RevertQuery, body: NoOptionsBody,
      response: { 200: Vm, ...problemResponses(400, 404, 409, 502, 504) },
    },
  }, async (req) => {
    await snapshots.revert(req.params.id, req.params.name, { force: req.query.force === 'true' });
    return vmJson(vms.get(req.params.id));
  });
};
