// /api/v1/templates
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { TemplateRecord } from '../../db/types.ts';
import type { TemplateService } from '../../services/template-service.ts';
import { IdParams, problemResponses, Template, TemplateCreate, TemplateListQuery } from '../schemas.ts';

export function templateJson(t: TemplateRecord) {
  return {
    id: t.id, name: t.name, cpus: t.cpus, memory_mb: t.memoryMb,
    kernel_path: t.kernelPath, initrd_path: t.initrdPath, cmdline: t.cmdline,
    base_image_path: t.baseImagePath, base_image_format: t.baseImageFormat,
    builtin: t.builtin, readiness: t.readiness, ready_pattern: t.readyPattern, ssh_keys: t.sshKeys, created_at: t.createdAt,
  };
}

export const templateRoutes = (templates: TemplateService): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/templates', {
    schema: {
      tags: ['templates'], summary: 'Create a template', operationId: 'createTemplate',
      body: TemplateCreate, response: { 201: Template, ...problemResponses(400, 409) },
    },
  }, async (req, reply) => {
    const b = req.body;
    const t = await templates.create({
      name: b.name, cpus: b.cpus, memoryMb: b.memory_mb,
      kernelPath: b.kernel_path ?? null, initrdPath: b.initrd_path ?? null, cmdline: b.cmdline ?? null,
      baseImagePath: b.base_image_path ?? null, baseImageFormat: b.base_image_format ?? null,
      readiness: b.readiness ?? 'agent', readyPattern: b.ready_pattern ?? null, sshKeys: b.ssh_keys ?? [],
    });
    return reply.code(201).send(templateJson(t));
  });

  app.get('/templates', {
    schema: {
      tags: ['templates'], summary: 'List templates, optionally by name', operationId: 'listTemplates',
      querystring: TemplateListQuery, response: { 200: Type.Array(Template), ...problemResponses(400) },
    },
  }, async (req) => templates.list(req.query).map(templateJson));

  app.get('/templates/:id', {
    schema: { tags: ['templates'], summary: 'Get a template by id or name', operationId: 'getTemplate', params: IdParams, response: { 200: Template, ...problemResponses(404) } },
  }, async (req) => templateJson(templates.get(req.params.id)));

  app.delete('/templates/:id', {
    schema: {
      tags: ['templates'], summary: 'Delete a template no VM uses', operationId: 'deleteTemplate',
      params: IdParams, response: { 204: Type.Null(), ...problemResponses(404, 409) },
    },
  }, async (req, reply) => {
    templates.delete(req.params.id);
    return reply.code(204).send(null);
  });
};
