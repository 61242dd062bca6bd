// GET /api/v1/events: the event bus as a server-sent event stream (one
// `event:`/`id:`/`data:` block per event, a `: keep-alive` comment every 15 s).
// vman never waits on a client: what the socket cannot take is buffered by
// Node up to MAX_BEHIND_BYTES, and a client further behind is disconnected.
// A client that reconnects with Last-Event-ID gets what it missed from the
// bus's latest events first, or one `reset` event when that cannot be told
// (vman restarted, or the events are no longer kept): it must list again.
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { EventBus, Missed, PublishedEvent, ResetReason } from '../../services/events.ts';
import { sendProblem } from '../problem.ts';
import { problemResponses } from '../schemas.ts';

export const KEEP_ALIVE_MS = 15_000;
/** How far (in unsent bytes) a client may fall behind before it is cut off. */
export const MAX_BEHIND_BYTES = 1024 * 1024;

export function formatEvent(bus: EventBus, e: PublishedEvent): string {
  return `event: ${e.type}\nid: ${bus.eventId(e.id)}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/** The `reset` event: the client's position is lost; its id is where the stream goes on from, so a later reconnect resumes there. */
export function formatReset(bus: EventBus, lastEventId: string, reason: ResetReason, detail: string): string {
  const data = { reason, detail: `${detail}; list VMs and disks again`, last_event_id: lastEventId };
  return `event: reset\nid: ${bus.position}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const eventRoutes = (bus: EventBus, opts: { keepAliveMs?: number } = {}): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/events', {
    schema: {
      tags: ['events'],
      summary: 'A server-sent event stream of VM and disk state changes and observer findings',
      description: 'Each event has an id `<run>-<n>`. A client that reconnects with the header Last-Event-ID gets the events it missed first, '
        + 'or one `reset` event when they cannot be told (vman restarted, or they are older than the latest events vman keeps): it must then list again.',
      operationId: 'streamEvents',
      headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ maxLength: 64, description: 'the id of the last event the client saw' })) }),
      response: { 200: { description: 'text/event-stream: events vm.state, disk.state, observer.finding, reset', content: { 'text/event-stream': { schema: Type.String() } } }, ...problemResponses(400, 503) },
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
    const lastEventId = req.headers['last-event-id'];
    // Read what was missed and subscribe in one synchronous turn: nothing is published in between.
    const missed: Missed | undefined = typeof lastEventId === 'string' ? bus.since(lastEventId) : undefined;
    const unsubscribe = bus.subscribe({
      deliver: (e) => write(formatEvent(bus, e)),
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
    if (missed?.kind === 'events') {
      const texts = missed.events.map((e) => formatEvent(bus, e));
      const bytes = texts.reduce((sum, t) => sum + Buffer.byteLength(t), 0);
      // More than a client may fall behind by would cut it off at once, and it would come back with the same id.
      if (bytes > MAX_BEHIND_BYTES) {
        write(formatReset(bus, lastEventId as string, 'too-far-behind', `the ${texts.length} events after ${String(lastEventId)} are ${bytes} bytes, more than the ${MAX_BEHIND_BYTES} a client may fall behind by`));
      } else {
        for (const t of texts) write(t);
      }
    } else if (missed?.kind === 'reset') {
      write(formatReset(bus, lastEventId as string, missed.reason, missed.detail));
    }
    keepAlive = setInterval(() => write(': keep-alive\n\n'), opts.keepAliveMs ?? KEEP_ALIVE_MS);
    keepAlive.unref();
    res.on('close', stop);
  });
};
