// /api/v1/vms
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { ActionOptions, VmService, VmView } from '../../services/vm-service.ts';
import {
  ActionQuery, Console, DeleteVmQuery, ConsoleQuery, IdParams, NoOptionsBody, problemResponses, StopBody, StopQuery, Vm, VmCreate, VmListQuery,
} from '../schemas.ts';

export function vmJson(v: VmView) {
  return {
    id: v.id, name: v.name, template_id: v.templateId, template: v.templateName, state: v.state,
    state_reason: v.stateReason, pid: v.pid, address: v.address, ssh_port: v.sshPort, stop_method: v.stopMethod,
    origin_snapshot: v.origin, resumes_snapshot: v.resumeFrom !== null, mac: v.mac, storage_dir: v.storageDir,
    created_at: v.createdAt, updated_at: v.updatedAt,
  };
}

/**
 * Runs a start, stop or restart. Waited for (the default): 200 with the VM when
 * done. `?wait=false`: 202 with a Location as soon as the VM is starting or
 * stopping; a refusal before that (404, 409, ...) is still the answer; the rest
 * goes on in the background, and its failure is logged (the VM records it).
 */
async function runAction(
  reply: FastifyReply,
  wait: 'true' | 'false' | undefined,
  what: string,
  run: (opts: ActionOptions) => Promise<VmView>,
): Promise<FastifyReply> {
  if (wait !== 'false') return reply.send(vmJson(await run({})));
  let accept!: (vm: VmView) => void;
  const accepted = new Promise<VmView>((resolve) => { accept = resolve; });
  const done = run({ accepted: accept });
  const log: FastifyBaseLogger = reply.log;
  const first = await Promise.race([accepted, done]);
  done.then(
    (vm) => log.info({ vm_id: vm.id, vm_name: vm.name, state: vm.state }, `background ${what} finished`),
    (err: unknown) => log.warn({ vm_id: first.id, vm_name: first.name, err }, `background ${what} failed`),
  );
  return reply.code(202).header('location', `/api/v1/vms/${first.id}`).send(vmJson(first));
}

export const vmRoutes = (vms: VmService): FastifyPluginAsyncTypebox => async (app) => {
  const actionResponses = { 200: Vm, 202: Vm, ...problemResponses(400, 404, 409, 502, 503, 504) };

  // A request about one VM logs its id and name as fields, also when it was named by its name.
  app.addHook('preHandler', async (req, reply) => {
    const ref = (req.params as { id?: string } | undefined)?.id;
    const vm = ref === undefined ? undefined : vms.find(ref);
    if (vm) req.log = reply.log = req.log.child({ vm_id: vm.id, vm_name: vm.name });
  });

  app.post('/vms', {
    schema: {
      tags: ['vms'], summary: 'Create a VM from a template', operationId: 'createVm',
      body: VmCreate, response: { 201: Vm, ...problemResponses(400, 404, 409) },
    },
  }, async (req, reply) => {
    const b = req.body;
    const vm = await vms.create({
      name: b.name, sshKeys: b.ssh_keys ?? [], userData: b.user_data ?? null,
      ...(b.template === undefined ? {} : { template: b.template }),
      ...(b.from_snapshot === undefined ? {} : { from: { vm: b.from_snapshot.vm, snapshot: b.from_snapshot.name } }),
    });
    return reply.code(201).send(vmJson(vm));
  });

  app.get('/vms', {
    schema: {
      tags: ['vms'], summary: 'List VMs, optionally by state and name', operationId: 'listVms',
      querystring: VmListQuery, response: { 200: Type.Array(Vm), ...problemResponses(400) },
    },
  }, async (req) => vms.list(req.query).map(vmJson));

  app.get('/vms/:id', {
    schema: { tags: ['vms'], summary: 'Get a VM by id or name', operationId: 'getVm', params: IdParams, response: { 200: Vm, ...problemResponses(404) } },
  }, async (req) => vmJson(vms.get(req.params.id)));

  app.delete('/vms/:id', {
    schema: {
      tags: ['vms'], summary: 'Delete a VM at rest (one that runs only with ?force=true, which stops it and detaches its disks)', operationId: 'deleteVm',
      params: IdParams, querystring: DeleteVmQuery, response: { 204: Type.Null(), ...problemResponses(400, 404, 409) },
    },
  }, async (req, reply) => {
    await vms.delete(req.params.id, { force: req.query.force === 'true' });
    return reply.code(204).send(null);
  });

  app.post('/vms/:id/start', {
    schema: {
      tags: ['vms'], summary: 'Start a VM and wait until its guest is ready (or not, with ?wait=false)', operationId: 'startVm',
      params: IdParams, body: NoOptionsBody, querystring: ActionQuery, response: actionResponses,
    },
  }, async (req, reply) => runAction(reply, req.query.wait, 'start', (opts) => vms.start(req.params.id, opts)));

  app.post('/vms/:id/stop', {
    schema: {
      tags: ['vms'], summary: 'Stop a VM: guest agent, then ACPI, then quit (force: quit at once)', operationId: 'stopVm',
      params: IdParams, body: Type.Optional(StopBody), querystring: StopQuery, response: actionResponses,
    },
  }, async (req, reply) => {
    const force = req.body?.force ?? req.query.force === 'true';
    return runAction(reply, req.query.wait, 'stop', (opts) => vms.stop(req.params.id, { ...opts, force }));
  });

  app.post('/vms/:id/restart', {
    schema: {
      tags: ['vms'], summary: 'Stop, then start a VM', operationId: 'restartVm',
      params: IdParams, body: NoOptionsBody, querystring: ActionQuery, response: actionResponses,
    },
  }, async (req, reply) => runAction(reply, req.query.wait, 'restart', (opts) => vms.restart(req.params.id, opts)));

  app.get('/vms/:id/console', {
    schema: {
      tags: ['vms'], summary: 'Read the serial console from a byte offset', operationId: 'readVmConsole',
      params: IdParams, querystring: ConsoleQuery, response: { 200: Console, ...problemResponses(400, 404) },
    },
  }, async (req) => {
    const c = await vms.console(req.params.id, req.query.offset === undefined ? 0 : Number(req.query.offset));
    return { offset: c.offset, next_offset: c.nextOffset, data: c.data };
  });
};
