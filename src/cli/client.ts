// The REST client the `vman` command talks through: Node's fetch, the API
// token as a bearer, and two typed failures a command turns into exit 1:
// the API refused (its problem+json), or nothing answered at the URL.

export interface ClientOptions {
  /** e.g. http://127.0.0.1:8600 (no /api/v1). */
  url: string;
  token?: string | undefined;
}

/** The API answered with an error: its RFC 9457 problem, as far as it gave one. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly title: string, readonly detail: string, readonly body: unknown) {
    super(detail);
    this.name = 'ApiError';
  }
}

/** No answer at all from the URL (refused, unknown host, reset). */
export class UnreachableError extends Error {
  constructor(readonly url: string, options: { cause: unknown }) {
    super(`could not reach vman at ${url}: ${reason(options.cause)}`, options);
    this.name = 'UnreachableError';
  }
}

function reason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}

export class ApiClient {
  readonly base: string;
  constructor(private readonly opts: ClientOptions) {
    this.base = opts.url.replace(/\/+$/, '');
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body ?? {});
  }
  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await this.send(method, `/api/v1${path}`, 'application/json, application/problem+json', body);
    return parseJson(text) as T;
  }

  /** GET /metrics, as text (Prometheus format). */
  metrics(): Promise<string> {
    return this.send('GET', '/metrics', 'text/plain, application/problem+json');
  }

  /** One request; the body's text when the API said yes, ApiError when it said no. */
  private async send(method: string, path: string, accept: string, body?: unknown): Promise<string> {
    const headers: Record<string, string> = { accept };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch (err) {
      throw new UnreachableError(this.base, { cause: err });
    }
    const text = await res.text();
    if (!res.ok) {
      const parsed = parseJson(text);
      const p = (parsed ?? {}) as { title?: unknown; detail?: unknown };
      const title = typeof p.title === 'string' ? p.title : res.statusText;
      const detail = typeof p.detail === 'string' ? p.detail : text.trim() || res.statusText;
      throw new ApiError(res.status, title, detail, parsed);
    }
    return text;
  }
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
