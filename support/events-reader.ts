// The suite's own reader of a server-sent event stream, over node:http: it
// parses the text/event-stream format itself (WHATWG HTML, "server-sent
// events": fields, comments, a blank line ends an event), so vman's stream is
// judged by what goes over the wire, not by vman's code or an EventSource package.
import http from 'node:http';
import { pollUntil } from './poll.ts';

export interface StreamEvent {
  /** The `event:` field ('message' when absent). */
  type: string;
  /** The `id:` field, if the event had one. */
  id: string | undefined;
  /** The `data:` lines joined by newlines, parsed as JSON when they are JSON. */
  data: unknown;
  /** When the suite read it. */
  receivedAt: number;
}

export class EventStreamReader {
  readonly events: StreamEvent[] = [];
  /** Comment lines (`: ...`), without the colon. */
  readonly comments: string[] = [];
  #ended = false;
  #buffer = '';
  #pending: { type?: string; id?: string; data: string[] } = { data: [] };

  private constructor(private readonly req: http.ClientRequest, readonly status: number, readonly headers: http.IncomingHttpHeaders, res: http.IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.#feed(chunk));
    const end = (): void => {
      this.#ended = true;
    };
    res.on('end', end);
    res.on('close', end);
    res.on('error', end);
  }

  /**
   * Subscribes to `url`; resolves once the answer's head arrived (from then on
   * the stream carries what happens). A status other than 200 rejects with it and the body.
   */
  static open(url: string, opts: { token?: string; timeoutMs?: number; lastEventId?: string } = {}): Promise<EventStreamReader> {
    return new Promise((resolve, reject) => {
      const headers = {
        accept: 'text/event-stream',
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        // What a reconnecting EventSource sends: the id of the last event it saw.
        ...(opts.lastEventId !== undefined ? { 'last-event-id': opts.lastEventId } : {}),
      };
      const req = http.get(url, { headers }, (res) => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => reject(new EventStreamRefused(res.statusCode ?? 0, String(res.headers['content-type'] ?? ''), body)));
          return;
        }
        resolve(new EventStreamReader(req, res.statusCode, res.headers, res));
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs ?? 5_000} ms`)), opts.timeoutMs ?? 5_000);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** True once the server ended the stream (or the connection went). */
  get ended(): boolean {
    return this.#ended;
  }

  /** The events of one type, in the order they came. */
  ofType(type: string): StreamEvent[] {
    return this.events.filter((e) => e.type === type);
  }

  /** Waits until `match` holds for the events read so far; on timeout says what was read. */
  waitFor<T>(expected: string, match: (events: StreamEvent[]) => T | undefined, timeoutMs: number): Promise<T> {
    return pollUntil(expected, () => {
      const found = match(this.events);
      if (found !== undefined) return { done: true, value: found };
      return { done: false, seen: `${this.events.length} event(s)${this.#ended ? ', stream ended' : ''}: ${describe(this.events.slice(-8))}` };
    }, { timeoutMs, intervalMs: 50 });
  }

  close(): void {
    this.req.destroy();
  }

  #feed(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.search(/\r\n|\r|\n/)) !== -1) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + (this.#buffer.startsWith('\r\n', nl) ? 2 : 1));
      this.#line(line);
    }
  }

  #line(line: string): void {
    if (line === '') {
      const p = this.#pending;
      this.#pending = { data: [] };
      if (p.data.length === 0) return;
      const text = p.data.join('\n');
      this.events.push({ type: p.type ?? 'message', id: p.id, data: parseJson(text), receivedAt: Date.now() });
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#pending.type = value;
    else if (field === 'id') this.#pending.id = value;
    else if (field === 'data') this.#pending.data.push(value);
  }
}

export class EventStreamRefused extends Error {
  constructor(readonly status: number, readonly contentType: string, readonly body: string) {
    super(`the event stream was refused with HTTP ${status} (${contentType}): ${body.slice(0, 300)}`);
    this.name = 'EventStreamRefused';
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function describe(events: StreamEvent[]): string {
  return events.map((e) => `#${e.id ?? '-'} ${e.type} ${JSON.stringify(e.data)}`).join('; ') || 'none';
}
