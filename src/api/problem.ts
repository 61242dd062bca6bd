// RFC 9457 problem+json at the API edge: every refusal says what was wrong,
// with 400 for a malformed request, 404 for an unknown id, 409 for an action
// the current state forbids.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { STATUS_OF, VmanError } from '../errors.ts';

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
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

export const problemType = (code: string): string => `urn:vman:problem:${code}`;

export function sendProblem(reply: FastifyReply, status: number, code: string, detail: string, extra: Partial<Problem> = {}): FastifyReply {
  const body: Problem = { type: problemType(code), title: TITLES[status] ?? 'Error', status, detail, instance: reply.request.url, ...extra };
  return reply.code(status).type('application/problem+json').send(body);
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | VmanError | Error, request, reply) => {
    if (error instanceof VmanError) {
      return sendProblem(reply, STATUS_OF[error.kind], error.code, error.message);
    }
    const fe = error as FastifyError;
    if (fe.validation) {
      const errors = fe.validation.map((v) => ({
        path: v.instancePath || '/',
        message: describeValidation(v.keyword, v.message, v.params),
      }));
      const where = fe.validationContext ?? 'request';
      return sendProblem(reply, 400, 'validation-error', `invalid ${where}: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, { errors });
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return sendProblem(reply, fe.statusCode, (fe.code ?? 'bad-request').toLowerCase(), fe.message);
    }
    request.log.error({ err: error }, 'unexpected error');
    return sendProblem(reply, 500, 'internal-error', error.message);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 404, 'route-not-found', `no route for ${request.method} ${request.url.split('?')[0]}`),
  );
}

function describeValidation(keyword: string, message: string | undefined, params: Record<string, unknown>): string {
  if (keyword === 'additionalProperties') return `has an unknown field ${JSON.stringify(params.additionalProperty)}`;
  if (keyword === 'required') return `is missing the field ${JSON.stringify(params.missingProperty)}`;
  return message ?? keyword;
}
