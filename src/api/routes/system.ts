// /health, /api/v1/host and the OpenAPI document.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';

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
}

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
});

export const healthRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', { schema: { tags: ['system'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({ status: 'ok' as const }));
};

export const systemRoutes = (host: HostSummary): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/host', { schema: { tags: ['system'], response: { 200: Host } } }, async () => ({ ...host, image_dirs: host.image_dirs ?? [] }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};
