// Tasks over vman's event stream and its answers that return before the work
// is done: the suite subscribes with its own reader (events-reader.ts) and
// judges what the stream delivered against the database file's own ids.
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { describe, EventStreamReader, type StreamEvent } from './events-reader.ts';
import type { Row } from './db-reader.ts';

/** Subscribes to vman's event stream (as a client that saw up to `lastEventId`, if given); the reader is closed when the scenario ends. */
export async function listenToEvents(world: VmanWorld, lastEventId?: string): Promise<EventStreamReader> {
  const reader = await EventStreamReader.open(new URL('api/v1/events', ensureSlash(world.api().baseUrl)).href, lastEventId === undefined ? {} : { lastEventId });
  world.notes.eventReader = reader;
  world.cleanups.push(async () => reader.close());
  return reader;
}

/**
 * Cuts the reader's connection once the stream delivered `state` for the disk
 * `disk`, noting the id of the last event it read, as a client would keep it.
 */
export async function cutAfterDiskState(world: VmanWorld, disk: string, state: string, timeoutMs: number): Promise<string> {
  const reader = eventReader(world);
  const id = world.idOf(disk);
  await waitForEventsAbout(reader, 'disk.state', id, state, (es) => es.some((e) => (e.data as { state?: unknown }).state === state), timeoutMs);
  reader.close();
  const last = reader.events.at(-1)?.id;
  if (last === undefined) throw new Error(`the last event the suite read has no id: ${transcript(reader)}`);
  world.attach(`the suite's reader was cut after ${reader.events.length} event(s); the last id it saw: ${last}\n${transcript(reader)}`, 'text/plain');
  world.notes.lastEventIdSeen = last;
  return last;
}

export function eventReader(world: VmanWorld): EventStreamReader {
  return world.noted('eventReader', 'the suite listening to the event stream in this scenario');
}

/** What a `?wait=false` request answered, and the VM's row read from the database file the moment the answer came. */
export interface EarlyAnswer {
  res: Response<unknown>;
  rowAfter: Row | undefined;
}

export async function startWithoutWaiting(world: VmanWorld, name: string): Promise<EarlyAnswer> {
  const started = Date.now();
  const res = await world.api().http.post(`api/v1/vms/${world.idOf(name)}/start`, { searchParams: { wait: 'false' } });
  const rowAfter = await world.db().vmByName(name);
  world.timings.push({ what: `start VM ${name} without waiting`, ms: Date.now() - started, status: res.statusCode });
  world.lastResponse = res;
  world.notes.earlyAnswer = { res, rowAfter };
  return { res, rowAfter };
}

export function earlyAnswer(world: VmanWorld): EarlyAnswer {
  return world.noted('earlyAnswer', 'a request made without waiting in this scenario');
}

/** The events of one type about one resource (by its id in the database file), in the order the stream delivered them. */
export function eventsAbout(reader: EventStreamReader, type: string, id: string): StreamEvent[] {
  return reader.events.filter((e) => e.type === type && (e.data as { id?: unknown } | null)?.id === id);
}

/** Waits until the events of `type` about `id` satisfy `enough`; the timeout names what arrived. */
export function waitForEventsAbout(
  reader: EventStreamReader, type: string, id: string, expected: string, enough: (events: StreamEvent[]) => boolean, timeoutMs: number,
): Promise<StreamEvent[]> {
  return reader.waitFor(`${expected} (${type} about ${id})`, () => {
    const found = eventsAbout(reader, type, id);
    return enough(found) ? found : undefined;
  }, timeoutMs);
}

export function transcript(reader: EventStreamReader): string {
  return describe(reader.events).split('; ').join('\n');
}

function ensureSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
