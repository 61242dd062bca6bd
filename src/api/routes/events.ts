// GET /api/v1/events: the event bus as a server-sent event stream (one
// `event:`/`id:`/`data:` block per event, a `: keep-alive` comment every 15 s).
// vman never waits on a client: what the socket cannot take is buffered by
// Node up to MAX_BEHIND_BYTES, and a client further behind is disconnected (it
// sees the gap in the ids when it reconnects).
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { EventBus, PublishedEvent } from '../../services/events.ts';
import { sendProblem } from '../problem.ts';
import { problemResponses } from '../schemas.ts';

export const KEEP_ALIVE_MS = 15_000;
/** How far (in unsent bytes) a client may fall behind before it is cut off. */
export const MAX_BEHIND_BYTES = 1024 * 1024;

export function formatEvent(e: PublishedEvent): string {
  return `event: ${e.type}\nid: ${e.id}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

export const eventRoutes = (bus: EventBus, opts: { keepAliveMs?: number } = {}): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/events', {
    schema: {
      tags: ['events'],
      summary: 'A server-sent event stream of VM and disk state changes and observer findings',
      operationId: 'streamEvents',
      response: { 200: { description: 'text/event-stream: events vm.state, disk.state, observer.finding', content: { 'text/event-stream': { schema: Type.String() } } }, ...problemResponses(503) },
    },
  }, async (req, reply) => {
    if (bus.closed) return sendProblem(reply, 503, 'shutting-down', 'vman is shutting down: no new event stream is opened');
    const res: ServerResponse = reply.raw;
    let keepAlive: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (keepAlive) clearInterval(keepAlive);
      unsubscribe?.();
    };
    const write = (text: string): void => {
      if (res.destroyed || res.writableEnded) return;
      res.write(text);
      if (res.writableLength > MAX_BEHIND_BYTES) {
        req.log.warn(`event stream client too slow (${res.writableLength} bytes behind): disconnected`);
        stop();
        res.destroy();
      }
    };
    const unsubscribe = bus.subscribe({
      deliver: (e) => write(formatEvent(e)),
      end: () => {
        stop();
        res.end();
      },
    });
    if (!unsubscribe) return sendProblem(reply, 503, 'shutting-down', 'vman is shutting down: no new event stream is opened');
    reply.hijack();
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    // The client holds the headers once it is subscribed: what happens from now on reaches it.
    res.write(': subscribed\n\n');
    keepAlive = setInterval(() => write(': keep-alive\n\n'), opts.keepAliveMs ?? KEEP_ALIVE_MS);
    keepAlive.unref();
    res.on('close', stop);
  });
};
