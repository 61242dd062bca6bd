// /health, /ready, /api/v1/host and the OpenAPI document.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { sendProblem } from '../problem.ts';
import { notReadyReason, type ReadinessInput } from '../readiness.ts';
import { problemResponses } from '../schemas.ts';

export interface HostSummary {
  qemu_version: string | null;
  qemu_path: string | null;
  qemu_img_path: string | null;
  accelerator: string;
  accelerator_reason: string;
  host_kernel: string;
  guest_image: string | null;
  dry_run: boolean;
  /** Where templates may take boot files from (VMAN_IMAGE_DIRS). */
  image_dirs?: string[];
  /** Who QEMU runs as, its sandbox and its limits (src/operator/confinement.ts); null in a dry run. */
  confinement?: ConfinementJson | null;
}

export interface ConfinementJson {
  mode: 'per-vm-user' | 'vman-user';
  user: string;
  sandbox: string;
  limits: string;
  refusal: string | null;
}

const Confinement = Type.Object({
  mode: Type.Union([Type.Literal('per-vm-user'), Type.Literal('vman-user')], { description: 'per-vm-user: vman runs as root and gives each VM\'s QEMU a user of its own; vman-user: QEMU runs as vman\'s user' }),
  user: Type.String(),
  sandbox: Type.String(),
  limits: Type.String(),
  refusal: Type.Union([Type.String(), Type.Null()], { description: 'why no VM may start, when none may' }),
});

const Host = Type.Object({
  qemu_version: Type.Union([Type.String(), Type.Null()]),
  qemu_path: Type.Union([Type.String(), Type.Null()]),
  qemu_img_path: Type.Union([Type.String(), Type.Null()]),
  accelerator: Type.String(),
  accelerator_reason: Type.String(),
  host_kernel: Type.String(),
  guest_image: Type.Union([Type.String(), Type.Null()]),
  dry_run: Type.Boolean(),
  image_dirs: Type.Array(Type.String()),
  confinement: Type.Union([Confinement, Type.Null()]),
});

/** Routes anyone may call without the API token: they reveal no VM, disk or template. */
export const PUBLIC_PATHS = ['/health', '/ready', '/api/v1/openapi.json'];
export const DOCS_PREFIX = '/api/v1/docs';

export const healthRoute = (readiness: ReadinessInput): FastifyPluginAsyncTypebox => async (app) => {
  // The process answers; nothing more.
  app.get('/health', {
    schema: {
      tags: ['system'], summary: 'Whether vman answers', operationId: 'health', security: [],
      response: { 200: Type.Object({ status: Type.Literal('ok') }) },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/ready', {
    schema: {
      tags: ['system'], summary: 'Whether VMs can start: QEMU and qemu-img usable, storage writable with room', operationId: 'ready', security: [],
      response: {
        200: Type.Object({ status: Type.Literal('ready'), confinement: Type.Optional(Type.String({ description: 'who QEMU runs as: per-vm-user or vman-user' })) }),
        ...problemResponses(503),
      },
    },
  }, async (_req, reply) => {
    const reason = await notReadyReason(readiness);
    if (reason) return sendProblem(reply, 503, 'not-ready', `VMs cannot start on this vman: ${reason}`);
    const c = readiness.host.confinement;
    return { status: 'ready' as const, ...(c ? { confinement: c.mode } : {}) };
  });
};

export const systemRoutes = (host: HostSummary): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/host', {
    schema: { tags: ['system'], summary: 'What vman found on this host: QEMU, accelerator, guest image', operationId: 'getHost', response: { 200: Host } },
  }, async () => ({ ...host, image_dirs: host.image_dirs ?? [], confinement: host.confinement ?? null }));
  app.get('/openapi.json', {
    schema: { tags: ['system'], summary: 'This OpenAPI document', operationId: 'getOpenApi', security: [], hide: true },
  }, async () => app.swagger());
};
