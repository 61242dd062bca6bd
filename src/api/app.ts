// The Fastify application: routes, schemas, problem+json errors, OpenAPI.
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TemplateService } from '../services/template-service.ts';
import type { VmService } from '../services/vm-service.ts';
import type { DiskService } from '../services/disk-service.ts';
import { diskRoutes } from './routes/disks.ts';
import { observerRoutes } from './routes/observer.ts';
import { networkRoutes } from './routes/network.ts';
import type { Observer } from '../observer/observer.ts';
import type { NetworkService } from '../services/network-service.ts';
import type { RepairService } from '../services/repair.ts';
import { installProblemHandlers, sendProblem } from './problem.ts';
import { Problem } from './schemas.ts';
import { templateRoutes } from './routes/templates.ts';
import { vmRoutes } from './routes/vms.ts';
import { healthRoute, systemRoutes, type HostSummary } from './routes/system.ts';

export interface AppServices {
  templates: TemplateService;
  vms: VmService;
  disks: DiskService;
  observer: Observer;
  repairs: RepairService;
  network: NetworkService;
  host: HostSummary;
}

export interface AppOptions {
  logger?: FastifyServerOptions['logger'];
  /** When set, every request but /health must carry `Authorization: Bearer <token>`. */
  apiToken?: string | undefined;
}

export async function buildApp(services: AppServices, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    // Unknown fields are refused (400), never silently dropped; types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
    bodyLimit: 64 * 1024,
    // Long ids must reach the schema (a 400 naming the rule), not the router's 414.
    routerOptions: { maxParamLength: 8192 },
    // Errors the router raises before any handler (bad URL encoding, ...) are problems too.
    frameworkErrors: (error, _req, reply) => {
      void sendProblem(reply, error.statusCode ?? 400, (error.code ?? 'bad-request').toLowerCase(), error.message);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installProblemHandlers(app);
  // JSON only: a text/plain body is an unsupported media type (415), not a string to validate.
  app.removeContentTypeParser('text/plain');
  if (opts.apiToken) requireToken(app, opts.apiToken);
  app.addSchema(Problem);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'vman', description: 'A small QEMU virtual-machine manager', version: '0.1.0' },
      tags: [{ name: 'templates' }, { name: 'vms' }, { name: 'disks' }, { name: 'network' }, { name: 'observer' }, { name: 'system' }],
    },
    // Shared schemas keep their $id as their name in the document (Problem, not def-0).
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  await app.register(healthRoute);
  await app.register(async (v1) => {
    await v1.register(systemRoutes(services.host));
    await v1.register(templateRoutes(services.templates));
    await v1.register(vmRoutes(services.vms));
    await v1.register(diskRoutes(services.disks));
    await v1.register(networkRoutes(services.network));
    await v1.register(observerRoutes(services.observer, services.repairs));
  }, { prefix: '/api/v1' });
  return app;
}

function requireToken(app: FastifyInstance, token: string): void {
  const expected = Buffer.from(`Bearer ${token}`);
  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/health') return;
    const given = Buffer.from(req.headers.authorization ?? '');
    // Constant-time comparison: the token must not leak through response timing.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      reply.header('www-authenticate', 'Bearer realm="vman"');
      return sendProblem(reply, 401, 'unauthorized', 'this vman requires an API token: send "Authorization: Bearer <token>"');
    }
  });
}
