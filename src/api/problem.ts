// RFC 9457 problem+json at the API edge: every refusal says what was wrong,
// naming the field, key or rule at fault, with 400 for a malformed request,
// 404 for an unknown id, 405 for a method a path does not take, 409 for an
// action the current state forbids, 502 when QEMU failed or died during an
// action, 504 when a guest did not become ready within the boot timeout.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { STATUS_OF, VmanError } from '../errors.ts';
import { PATTERN_RULES } from './schemas.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: Array<{ path: string; message: string }>;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  507: 'Insufficient Storage',
};

export const problemType = (code: string): string => `urn:vman:problem:${code}`;

export function problemBody(status: number, code: string, detail: string, extra: Partial<Problem> = {}): Problem {
  return { type: problemType(code), title: TITLES[status] ?? 'Error', status, detail, ...extra };
}

export function sendProblem(reply: FastifyReply, status: number, code: string, detail: string, extra: Partial<Problem> = {}): FastifyReply {
  const body = problemBody(status, code, detail, { instance: reply.request.url, ...extra });
  return reply.code(status).type('application/problem+json').send(body);
}

/** What Fastify's own errors mean, in vman's words: the code of the problem and its detail. */
function frameworkProblem(fe: FastifyError, contentType: string | undefined): { code: string; detail: string } {
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        code: 'unsupported-media-type',
        detail: contentType ? `vman reads bodies sent as application/json, not as ${JSON.stringify(contentType)}` : 'vman reads bodies sent as application/json, and this one has no content type',
      };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'body-too-large', detail: `the body is larger than the ${BODY_LIMIT} bytes vman reads` };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { code: 'bad-content-length', detail: 'the body is not as long as its Content-Length says' };
    case 'FST_ERR_BAD_URL':
      return { code: 'bad-url', detail: `the path is not valid percent-encoding: ${fe.message}` };
    default:
      return { code: (fe.code ?? 'bad-request').toLowerCase(), detail: fe.message };
  }
}

/** The largest body vman reads, in bytes. */
export const BODY_LIMIT = 64 * 1024;

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | VmanError | Error, request, reply) => {
    if (error instanceof VmanError) {
      return sendProblem(reply, STATUS_OF[error.kind], error.code, error.message);
    }
    const fe = error as FastifyError;
    if (fe.validation) {
      const context = (fe.validationContext ?? 'body') as Context;
      const data = context === 'body' ? request.body : context === 'querystring' ? request.query : context === 'params' ? request.params : request.headers;
      const errors = describeValidation(fe.validation as AjvError[], context, data);
      return sendProblem(reply, 400, 'validation-error', `invalid ${CONTEXT_WORDS[context]}: ${errors.map((e) => e.message).join('; ')}`, { errors });
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      const { code, detail } = frameworkProblem(fe, request.headers['content-type']);
      return sendProblem(reply, fe.statusCode, code, detail);
    }
    request.log.error({ err: error }, 'unexpected error');
    return sendProblem(reply, 500, 'internal-error', error.message);
  });
}

// --- validation errors in words ------------------------------------------------------

type Context = 'body' | 'querystring' | 'params' | 'headers';

const CONTEXT_WORDS: Record<Context, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'headers' };

/** What a field is called where it was sent: `name` (body), `the query parameter force`, `the id in the path`. */
function fieldWords(context: Context, pointer: string): string {
  const field = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.');
  if (context === 'querystring') return `the query parameter ${field}`;
  if (context === 'params') return `the ${field} in the path`;
  if (context === 'headers') return `the header ${field}`;
  return field;
}

/** The part of an Ajv error vman reads. */
export interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a JSON object', array: 'a list', string: 'text', integer: 'a whole number', number: 'a number', boolean: 'true or false', null: 'null',
};

/** What a value is, in words: the body was "a list", "nothing", ... */
export function whatItIs(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return 'text';
  if (typeof value === 'number') return Number.isInteger(value) ? 'a whole number' : 'a number';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return 'a JSON object';
}

const orList = (items: string[]): string => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`);

function valueAt(data: unknown, pointer: string): unknown {
  let v = data;
  for (const p of pointer.split('/').slice(1)) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

/**
 * Ajv's errors as one message per fault, each naming the field: unions (a
 * field that may be null, a body that may be left out) give one error per
 * alternative, which are merged into what the field may be.
 */
export function describeValidation(all: readonly AjvError[], context: Context, data: unknown): Array<{ path: string; message: string }> {
  const errors = all.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf');
  // A type refused at a path where another alternative went further (a deeper error, or another
  // rule at the same path) is that other alternative's business: only the further one counts.
  const further = (p: string): boolean => errors.some((e) => e.instancePath.startsWith(`${p}/`) || (e.instancePath === p && e.keyword !== 'type'));
  const kept = errors.filter((e) => e.keyword !== 'type' || !further(e.instancePath));
  const out: Array<{ path: string; message: string }> = [];
  const seen = new Set<string>();
  for (const e of kept) {
    const p = e.instancePath;
    const at = p === '' ? '/' : p;
    if (e.keyword === 'required' || e.keyword === 'additionalProperties') {
      const key = String(e.keyword === 'required' ? e.params.missingProperty : e.params.additionalProperty);
      const child = `${p}/${key}`;
      const named = context === 'body' ? `the field ${JSON.stringify(fieldWords(context, child))}` : fieldWords(context, child);
      out.push({ path: child, message: `${named} ${e.keyword === 'required' ? 'is missing' : 'is unknown (vman refuses what it does not take)'}` });
      continue;
    }
    if (e.keyword === 'type' || e.keyword === 'const' || e.keyword === 'enum') {
      // Every alternative refused at this path, merged into one message.
      const group = `${e.keyword === 'type' ? 'type' : 'value'}:${at}`;
      if (seen.has(group)) continue;
      seen.add(group);
      const value = valueAt(data, p);
      if (e.keyword === 'type') {
        const types = kept.filter((x) => x.keyword === 'type' && x.instancePath === p).map((x) => TYPE_WORDS[String(x.params.type)] ?? String(x.params.type));
        const subject = p === '' && context === 'body' ? 'the body' : fieldWords(context, p);
        out.push({ path: at, message: `${subject} must be ${orList([...new Set(types)])}, not ${whatItIs(value)}` });
      } else {
        const allowed = kept.filter((x) => (x.keyword === 'const' || x.keyword === 'enum') && x.instancePath === p)
          .flatMap((x) => (x.keyword === 'const' ? [x.params.allowedValue] : (x.params.allowedValues as unknown[])))
          .map((v) => JSON.stringify(v));
        out.push({ path: at, message: `${fieldWords(context, p)} must be ${orList([...new Set(allowed)])}, not ${JSON.stringify(value)}` });
      }
      continue;
    }
    out.push({ path: at, message: `${p === '' && context === 'body' ? 'the body' : fieldWords(context, p)} ${ruleWords(e)}` });
  }
  return out;
}

function ruleWords(e: AjvError): string {
  const limit = e.params.limit;
  switch (e.keyword) {
    case 'pattern':
      return PATTERN_RULES[String(e.params.pattern)] ?? `must match the pattern ${String(e.params.pattern)}`;
    case 'minLength':
      return `must be at least ${String(limit)} character${limit === 1 ? '' : 's'} long`;
    case 'maxLength':
      return `must be at most ${String(limit)} characters long`;
    case 'minimum':
      return `must be at least ${String(limit)}`;
    case 'maximum':
      return `must be at most ${String(limit)}`;
    default:
      return e.message ?? e.keyword;
  }
}
