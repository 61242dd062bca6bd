// GET /metrics: Prometheus text format (src/metrics/metrics.ts). Outside /api/v1,
// where Prometheus looks by default; the API token applies unless
// VMAN_METRICS_PUBLIC=1 (app.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { VmanMetrics } from '../../metrics/metrics.ts';

export const METRICS_PATH = '/metrics';

export const metricsRoute = (metrics: VmanMetrics, opts: { public: boolean }): FastifyPluginAsyncTypebox => async (app) => {
  app.get(METRICS_PATH, {
    schema: {
      tags: ['system'], operationId: 'getMetrics',
      // The document says what this vman asks: no token when the metrics are public.
      ...(opts.public ? { security: [] } : {}),
      summary: 'Metrics in Prometheus text format: VMs and disks by state, each running VM\'s CPU, memory and disk I/O, operation durations and failures, recovery, observer',
      response: { 200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: Type.String() } } } },
    },
  }, async (_req, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
};
