// A raw HTTP sender (node:http), for requests `got` will not send as written:
// got resolves `..` path segments (WHATWG URL rules) where a client such as
// `curl --path-as-is` does not, re-encodes bad percent-encoding, and always
// sends valid JSON. Everything else goes through the World's got client.
import http from 'node:http';

/** What vman answered: the status, the headers, the body (parsed when it is JSON) and its text. */
export interface Answer {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  text: string;
}

export interface RawRequest {
  method: string;
  /** Sent exactly as given: not resolved, not re-encoded. */
  path: string;
  /** Sent as written; undefined sends no body (and no content type). */
  body?: string;
  /** application/json unless said otherwise. */
  contentType?: string;
  headers?: http.OutgoingHttpHeaders;
}

const REQUEST_TIMEOUT_MS = 120_000;

/** Sends one request exactly as given and parses what comes back. */
export function rawRequest(baseUrl: string, r: RawRequest): Promise<Answer> {
  const base = new URL(baseUrl);
  const headers: http.OutgoingHttpHeaders = { ...r.headers };
  if (r.body !== undefined) {
    headers['content-type'] = r.contentType ?? 'application/json';
    headers['content-length'] = Buffer.byteLength(r.body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method: r.method, path: r.path, headers, agent: false }, (res) => {
      // An event stream never ends: its answer is its status and headers.
      if (/^text\/event-stream/.test(res.headers['content-type'] ?? '')) {
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: '', text: '' });
        req.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        if (/json/.test(res.headers['content-type'] ?? '') && text !== '') {
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
        }
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    const what = `${r.method} ${r.path.length > 100 ? `${r.path.slice(0, 100)}… (${r.path.length} characters)` : r.path}`;
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${what}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    // An answer may come before the whole request was sent (an overlong URL): the answer counts, a later EPIPE does not.
    req.on('error', (err) => reject(new Error(`${what}: ${err.message}`)));
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}
