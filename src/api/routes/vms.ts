// /api/v1/vms
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { VmService, VmView } from '../../services/vm-service.ts';
import { Console, ConsoleQuery, IdParams, NoOptionsBody, problemResponses, StopBody, StopQuery, Vm, VmCreate } from '../schemas.ts';

export function vmJson(v: VmView) {
  return {
    id: v.id, name: v.name, template_id: v.templateId, template: v.templateName, state: v.state,
    state_reason: v.stateReason, pid: v.pid, address: v.address, ssh_port: v.sshPort, stop_method: v.stopMethod, mac: v.mac, storage_dir: v.storageDir,
    created_at: v.createdAt, updated_at: v.updatedAt,
  };
}

export const vmRoutes = (vms: VmService): FastifyPluginAsyncTypebox => async (app) => {
  const action = { tags: ['vms'], params: IdParams, response: { 200: Vm, ...problemResponses(400, 404, 409) } };

  app.post('/vms', {
    schema: { tags: ['vms'], body: VmCreate, response: { 201: Vm, ...problemResponses(400, 404, 409) } },
  }, async (req, reply) => {
    const b = req.body;
    return reply.code(201).send(vmJson(await vms.create({ name: b.name, template: b.template, sshKeys: b.ssh_keys ?? [], userData: b.user_data ?? null })));
  });

  app.get('/vms', { schema: { tags: ['vms'], response: { 200: Type.Array(Vm) } } }, async () => vms.list().map(vmJson));

  app.get('/vms/:id', {
    schema: { tags: ['vms'], params: IdParams, response: { 200: Vm, ...problemResponses(404) } },
  }, async (req) => vmJson(vms.get(req.params.id)));

  app.delete('/vms/:id', {
    schema: { tags: ['vms'], params: IdParams, response: { 204: Type.Null(), ...problemResponses(404, 409) } },
  }, async (req, reply) => {
    await vms.delete(req.params.id);
    return reply.code(204).send(null);
  });

  app.post('/vms/:id/start', { schema: { ...action, body: NoOptionsBody } }, async (req) => vmJson(await vms.start(req.params.id)));

  app.post('/vms/:id/stop', {
    schema: { ...action, body: Type.Optional(StopBody), querystring: StopQuery },
  }, async (req) => {
    const force = req.body?.force ?? req.query.force === 'true';
    return vmJson(await vms.stop(req.params.id, { force }));
  });

  app.post('/vms/:id/restart', { schema: { ...action, body: NoOptionsBody } }, async (req) => vmJson(await vms.restart(req.params.id)));

  app.get('/vms/:id/console', {
    schema: {
      tags: ['vms'], params: IdParams, querystring: ConsoleQuery,
      response: { 200: Console, ...problemResponses(400, 404) },
    },
  }, async (req) => {
    const c = await vms.console(req.params.id, req.query.offset === undefined ? 0 : Number(req.query.offset));
    return { offset: c.offset, next_offset: c.nextOffset, data: c.data };
  });
};
