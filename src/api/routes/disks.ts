// /api/v1/disks
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { DiskRecord } from '../../db/types.ts';
import type { DiskService } from '../../services/disk-service.ts';
import { AttachBody, Disk, DiskCreate, DiskListQuery, IdParams, NoOptionsBody, problemResponses } from '../schemas.ts';

export function diskJson(d: DiskRecord) {
  return {
    id: d.id, name: d.name, size_gb: d.sizeGb, format: d.format, path: d.path, state: d.state,
    vm_id: d.vmId, mount_point: d.mountPoint, created_at: d.createdAt, updated_at: d.updatedAt,
  };
}

export const diskRoutes = (disks: DiskService): FastifyPluginAsyncTypebox => async (app) => {
  // A request about one disk logs its id as a field, also when it was named by its name.
  app.addHook('preHandler', async (req, reply) => {
    const ref = (req.params as { id?: string } | undefined)?.id;
    const disk = ref === undefined ? undefined : disks.find(ref);
    if (disk) req.log = reply.log = req.log.child({ disk_id: disk.id, disk_name: disk.name });
  });

  app.post('/disks', {
    schema: {
      tags: ['disks'], summary: 'Create a qcow2 disk', operationId: 'createDisk',
      body: DiskCreate, response: { 201: Disk, ...problemResponses(400, 409, 500, 507) },
    },
  }, async (req, reply) => {
    const b = req.body;
    return reply.code(201).send(diskJson(await disks.create({ name: b.name, sizeGb: b.size_gb, format: b.format ?? 'qcow2' })));
  });

  app.get('/disks', {
    schema: {
      tags: ['disks'], summary: 'List disks, optionally by state and name', operationId: 'listDisks',
      querystring: DiskListQuery, response: { 200: Type.Array(Disk), ...problemResponses(400) },
    },
  }, async (req) => disks.list(req.query).map(diskJson));

  app.get('/disks/:id', {
    schema: { tags: ['disks'], summary: 'Get a disk by id or name', operationId: 'getDisk', params: IdParams, response: { 200: Disk, ...problemResponses(404) } },
  }, async (req) => diskJson(disks.get(req.params.id)));

  app.delete('/disks/:id', {
    schema: { tags: ['disks'], summary: 'Delete a disk that is not attached', operationId: 'deleteDisk', params: IdParams, response: { 204: Type.Null(), ...problemResponses(404, 409) } },
  }, async (req, reply) => {
    await disks.delete(req.params.id);
    return reply.code(204).send(null);
  });

  app.post('/disks/:id/attach', {
    schema: {
      tags: ['disks'], summary: 'Attach a disk to a VM (hot-plugged if it runs)', operationId: 'attachDisk',
      params: IdParams, body: AttachBody, response: { 200: Disk, ...problemResponses(400, 404, 409, 500, 502, 503) },
    },
  }, async (req) => diskJson(await disks.attach(req.params.id, req.body.vm_id)));

  app.post('/disks/:id/detach', {
    schema: {
      tags: ['disks'], summary: 'Detach a disk from its VM (unplugged if it runs)', operationId: 'detachDisk',
      params: IdParams, body: NoOptionsBody, response: { 200: Disk, ...problemResponses(404, 409, 500, 502, 503) },
    },
  }, async (req) => diskJson(await disks.detach(req.params.id)));
};
