// The Fastify application: routes, schemas, problem+json errors, OpenAPI.
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import { sharedSchemaController } from './schema-compilers.ts';
import swaggerUi from '@fastify/swagger-ui';
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
import { installJsonBodyParser } from './json-body.ts';
import { BODY_LIMIT, installProblemHandlers, problemBody, sendProblem } from './problem.ts';
import { Problem } from './schemas.ts';
import { templateRoutes } from './routes/templates.ts';
import { vmRoutes } from './routes/vms.ts';
import { snapshotRoutes } from './routes/snapshots.ts';
import type { SnapshotService } from '../services/snapshot-service.ts';
import { eventRoutes } from './routes/events.ts';
import type { EventBus } from '../services/events.ts';
import type { VmanMetrics } from '../metrics/metrics.ts';
import { METRICS_PATH, metricsRoute } from './routes/metrics.ts';
import { DOCS_PREFIX, healthRoute, PUBLIC_PATHS, systemRoutes, type HostSummary } from './routes/system.ts';

export interface AppServices {
  templates: TemplateService;
  vms: VmService;
  snapshots: SnapshotService;
  disks: DiskService;
  observer: Observer;
  repairs: RepairService;
  network: NetworkService;
  host: HostSummary;
  /** What changed, streamed at /api/v1/events; unset: no stream. */
  events?: EventBus;
  /** vman's storage folder, which /ready checks is writable with room; unset: not checked. */
  storagePath?: string;
  /** Served at GET /metrics; unset: no metrics. */
  metrics?: VmanMetrics;
}

export interface AppOptions {
  logger?: FastifyServerOptions['logger'];
  /** When set, every request but /health, /ready and the API's description must carry `Authorization: Bearer <token>`. */
  apiToken?: string | undefined;
  /** GET /metrics without the token (VMAN_METRICS_PUBLIC=1). */
  metricsPublic?: boolean;
}

/** The longest path segment the router reads; a longer one is a 414. */
const MAX_PARAM_LENGTH = 8192;

export async function buildApp(services: AppServices, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    // Unknown fields are refused (400), never silently dropped; types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
    // Compiled once per process, not once per app (src/api/schema-compilers.ts).
    schemaController: sharedSchemaController as unknown as FastifyServerOptions['schemaController'],
    bodyLimit: BODY_LIMIT,
    // Long ids must reach the schema (a 400 naming the rule), not the router's 414.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors the router raises before any handler (bad URL encoding, ...) are problems too.
    frameworkErrors: (error, _req, reply) => {
      const [code, detail] = error.code === 'FST_ERR_BAD_URL' ? ['bad-url', `the path is not valid percent-encoding: ${error.message}`]
        : error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? ['uri-too-long', `a segment of the path is longer than the ${MAX_PARAM_LENGTH} characters vman reads`]
          : [(error.code ?? 'bad-request').toLowerCase(), error.message];
      void sendProblem(reply, error.statusCode ?? 400, code, detail);
    },
    // Requests Node's HTTP parser refuses before Fastify sees them (an overlong URL, ...).
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  installProblemHandlers(app);
  // JSON only: a text/plain body is an unsupported media type (415), not a string to validate.
  app.removeContentTypeParser('text/plain');
  installJsonBodyParser(app);
  app.setNotFoundHandler((request, reply) => notFoundOrNotAllowed(app, request, reply));
  if (opts.apiToken) requireToken(app, opts.apiToken, opts.metricsPublic ? [...PUBLIC_PATHS, METRICS_PATH] : PUBLIC_PATHS);
  app.addSchema(Problem);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'vman', description: 'A small QEMU virtual-machine manager', version: '0.1.0' },
      tags: [{ name: 'templates' }, { name: 'vms' }, { name: 'disks' }, { name: 'network' }, { name: 'observer' }, { name: 'events' }, { name: 'system' }],
      // Every operation takes the API token (when vman has one) unless it says `security: []`.
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'the API token vman was started with (VMAN_API_TOKEN)' } } },
      security: [{ bearerAuth: [] }],
    },
    // Shared schemas keep their $id as their name in the document (Problem, not def-0).
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  // The documentation page, from this document, with swagger-ui's own files (no CDN: vman may run offline).
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, uiConfig: { docExpansion: 'list', deepLinking: true }, staticCSP: true });
  await app.register(healthRoute({ host: services.host, storagePath: services.storagePath }));
  if (services.metrics) await app.register(metricsRoute(services.metrics, { public: opts.metricsPublic ?? false }));
  await app.register(async (v1) => {
    await v1.register(systemRoutes(services.host));
    await v1.register(templateRoutes(services.templates));
    await v1.register(vmRoutes(services.vms));
    await v1.register(snapshotRoutes(services.snapshots, services.vms));
    await v1.register(diskRoutes(services.disks));
    await v1.register(networkRoutes(services.network));
    await v1.register(observerRoutes(services.observer, services.repairs));
    if (services.events) await v1.register(eventRoutes(services.events));
  }, { prefix: '/api/v1' });
  return app;
}

function requireToken(app: FastifyInstance, token: string, publicPaths: readonly string[]): void {
  const expected = Buffer.from(token);
  app.addHook('onRequest', async (req, reply) => {
    // Whether vman answers, whether it can start VMs, and what its API is: no data of its own.
    const path = req.url.split('?')[0]!;
    if (publicPaths.includes(path) || path === DOCS_PREFIX || path.startsWith(`${DOCS_PREFIX}/`)) return;
    // Every other request, also one no route takes: what vman serves is not told to strangers.
    const header = req.headers.authorization;
    // The scheme is case-insensitive (RFC 9110, 11.1); the token is not.
    const given = header === undefined ? undefined : /^Bearer (.*)$/is.exec(header)?.[1];
    // Constant-time comparison: the token must not leak through response timing.
    const valid = given !== undefined && Buffer.byteLength(given) === expected.length && timingSafeEqual(Buffer.from(given), expected);
    if (!valid) {
      // RFC 6750: a request without credentials gets the bare challenge; one with wrong credentials, invalid_token.
      reply.header('www-authenticate', header === undefined ? 'Bearer realm="vman"' : 'Bearer realm="vman", error="invalid_token"');
      return sendProblem(reply, 401, 'unauthorized', header === undefined
        ? 'this vman requires an API token: send "Authorization: Bearer <token>"'
        : 'the Authorization header does not carry this vman\'s API token as "Bearer <token>"');
    }
  });
}

/** The methods a path takes, in the order RFC 9110 lists them; OPTIONS on every path vman serves. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export function allowedMethods(app: FastifyInstance, url: string): string[] {
  const allowed = METHODS.filter((method) => {
    try {
      return app.findRoute({ method, url }) !== null;
    } catch {
      return false;
    }
  });
  return allowed.length > 0 ? [...allowed, 'OPTIONS'] : [];
}

/**
 * A request no route took: OPTIONS on a path vman serves is answered with the
 * methods it takes (204); another method on such a path is a 405 naming them
 * in Allow; a path vman does not serve is a 404.
 */
function notFoundOrNotAllowed(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = request.url.split('?')[0]!;
  const allowed = allowedMethods(app, request.url);
  if (allowed.length === 0) return sendProblem(reply, 404, 'route-not-found', `no route for ${request.method} ${path}`);
  reply.header('allow', allowed.join(', '));
  if (request.method === 'OPTIONS') return reply.code(204).send();
  return sendProblem(reply, 405, 'method-not-allowed', `${request.method} is not a method of ${path}: it takes ${allowed.join(', ')}`);
}

/** The longest request line and headers Node reads (its --max-http-header-size). */
const HEAD_LIMIT = 16 * 1024;
const answered = new WeakSet<Socket>();

/**
 * Requests Node's HTTP parser refused. An overlong URL fills Node's 16 KB for
 * the request line and headers: when the request line alone is longer than
 * that, it is a 414 (URI Too Long), else a 431; anything else is a 400. Each
 * is a problem, written straight to the socket (there is no reply object yet).
 */
function answerClientError(this: FastifyInstance, err: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
  answered.add(socket);
  let status = 400;
  let code = 'bad-request';
  let detail = `the request is not valid HTTP (${err.code ?? err.message})`;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    const head = Buffer.isBuffer(err.rawPacket) ? err.rawPacket.subarray(0, HEAD_LIMIT + 2).toString('latin1') : '';
    const lineEnd = head.indexOf('\r\n');
    if (/^[A-Z]+ \//.test(head) && (lineEnd < 0 || lineEnd > HEAD_LIMIT)) {
      status = 414;
      code = 'uri-too-long';
      detail = `the URL is longer than the ${HEAD_LIMIT} bytes vman reads`;
    } else {
      status = 431;
      code = 'header-too-large';
      detail = `the request line and headers are longer than the ${HEAD_LIMIT} bytes vman reads`;
    }
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    code = 'request-timeout';
    detail = 'the request did not arrive in time';
  }
  // The error carries the raw request (up to a hundred kilobytes of URL): its code says enough.
  this.log.info({ code: err.code }, `client error: ${status} ${code}`);
  const body = JSON.stringify(problemBody(status, code, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  // Ended, not destroyed: the rest of the request is still read (and dropped), so
  // closing does not reset the connection before the client has read the answer.
  socket.end();
  socket.setTimeout(5_000, () => socket.destroy());
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 414: 'URI Too Long', 431: 'Request Header Fields Too Large' };
