// vman with an API token: every request it serves, listed from its own OpenAPI
// document (read with the token), sent with wrong credentials or none. The
// ids in the paths are those of a template, a VM and a disk that exist, and
// the bodies are ones vman would accept: a 401 is then the only reason a
// request can fail to change something.
import type { VmanWorld } from '../world/vman-world.ts';
import { rawRequest, type Answer } from './request-raw.ts';
import { noteHoldings } from './validation-state.ts';
import { problemFlaws } from './validation-problem.ts';
import { API_ROUTES, routeListDifferences } from './api-routes.ts';

export interface Sent {
  method: string;
  path: string;
  answer: Answer;
}

/** Stops the scenario's vman and starts it again on the same storage, requiring this token. */
export async function requireApiToken(world: VmanWorld, token: string): Promise<void> {
  await world.api().stop();
  await world.startVman({ env: { VMAN_API_TOKEN: token } });
  world.notes.apiToken = token;
}

function tokenOf(world: VmanWorld): string {
  return world.noted('apiToken', 'an API token vman was started with in this scenario');
}

interface OpenApi {
  paths: Record<string, Record<string, unknown>>;
}

const HTTP_METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];

/** vman's OpenAPI document, read with the token. */
export async function openApiDocument(world: VmanWorld): Promise<OpenApi> {
  const res = await rawRequest(world.api().baseUrl, { method: 'GET', path: '/api/v1/openapi.json', headers: { authorization: `Bearer ${tokenOf(world)}` } });
  if (res.statusCode !== 200) throw new Error(`the OpenAPI document could not be read with the token: HTTP ${res.statusCode} ${res.text.slice(0, 200)}`);
  return res.body as OpenApi;
}

/** A path of the document with {id} filled in with a template, VM or disk of the scenario, chosen by the collection. */
function fillIn(world: VmanWorld, template: string): string {
  return template.replace(/\{name\}/g, 'warm').replace(/\{id\}/g, () => {
    if (template.startsWith('/api/v1/templates/')) return world.idOf('template:tiny');
    if (template.startsWith('/api/v1/vms/')) return world.idOf('db');
    if (template.startsWith('/api/v1/disks/')) return world.idOf('data');
    throw new Error(`no id to put in ${template}`);
  });
}

/** A body vman would accept on this route, or none. */
function bodyFor(world: VmanWorld, method: string, template: string): string | undefined {
  if (method !== 'POST') return undefined;
  const bodies: Record<string, unknown> = {
    '/api/v1/templates': { name: 'other', cpus: 1, memory_mb: 256, kernel_path: '/bin/sh' },
    '/api/v1/vms': { name: 'other', template: 'small' },
    '/api/v1/disks': { name: 'other', size_gb: 1 },
    '/api/v1/disks/{id}/attach': { vm_id: world.idOf('db') },
    '/api/v1/vms/{id}/stop': { force: true },
    '/api/v1/vms/{id}/snapshots': { name: 'warm' },
  };
  return template in bodies ? JSON.stringify(bodies[template]) : undefined;
}

/**
 * Every request vman serves: each method of each route of the suite's own
 * list (support/api-routes.ts, which must agree with vman's OpenAPI document),
 * HEAD where GET is served, OPTIONS on every path, the document itself (which
 * it does not list), a method a path does not take and a path it does not serve.
 */
export async function everyRequest(world: VmanWorld): Promise<Array<{ method: string; path: string; body?: string; route: string }>> {
  const doc = await openApiDocument(world);
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => HTTP_METHODS.includes(m)).map((m) => ({ method: m.toUpperCase(), route: p })));
  const differences = routeListDifferences(documented);
  if (differences.length > 0) throw new Error(`the routes vman serves are not the ones the suite knows: ${differences.join('; ')}`);
  const all: Array<{ method: string; route: string }> = [...API_ROUTES];
  const withHead = all.flatMap((r) => (r.method === 'GET' ? [r, { method: 'HEAD', route: r.route }] : [r]));
  const options = [...new Set(all.map((r) => r.route))].map((route) => ({ method: 'OPTIONS', route }));
  const extra = [{ method: 'PUT', route: '/api/v1/vms' }, { method: 'GET', route: '/api/v1/volumes' }];
  return [...withHead, ...options, ...extra].map((r) => {
    const body = bodyFor(world, r.method, r.route);
    return { method: r.method, route: r.route, path: fillIn(world, r.route), ...(body !== undefined ? { body } : {}) };
  });
}

/** Sends every request vman serves with this Authorization header (none when undefined), after noting what vman holds. */
export async function sendEveryRequest(world: VmanWorld, authorization: string | undefined): Promise<Sent[]> {
  const requests = await everyRequest(world);
  await noteHoldings(world);
  const sent: Sent[] = [];
  for (const r of requests) {
    const answer = await rawRequest(world.api().baseUrl, {
      method: r.method, path: r.path, ...(r.body !== undefined ? { body: r.body } : {}),
      headers: authorization === undefined ? {} : { authorization },
    });
    sent.push({ method: r.method, path: r.path, answer });
  }
  world.notes.sentRequests = sent;
  world.notes.credentials = { authorization };
  world.attach(sent.map((s) => `${s.method} ${s.path} → ${s.answer.statusCode} ${s.answer.headers['www-authenticate'] ?? ''}`).join('\n'),
    { mediaType: 'text/plain', fileName: `every request, ${authorization === undefined ? 'without Authorization' : `Authorization: ${authorization}`}` });
  return sent;
}

export function sentRequests(world: VmanWorld): Sent[] {
  return world.noted('sentRequests', 'every request sent in this scenario');
}

const isHealth = (s: Sent): boolean => s.path === '/health';
/** What anyone may read: the health and readiness checks and the API's description (no VM, disk or template in them). */
const PUBLIC = ['/health', '/ready', '/api/v1/openapi.json'];
const isPublic = (s: Sent): boolean => PUBLIC.includes(s.path);

/**
 * Every request but the public ones (GET, HEAD and OPTIONS of /health, /ready
 * and /api/v1/openapi.json stay open): a 401 problem with a Bearer challenge, which says invalid_token when
 * credentials were sent (RFC 6750); what is wrong otherwise.
 */
export function notRefusedAsUnauthorized(world: VmanWorld): string[] {
  const expected = world.notes.credentials?.authorization === undefined ? 'Bearer realm="vman"' : 'Bearer realm="vman", error="invalid_token"';
  const flaws: string[] = [];
  for (const s of sentRequests(world).filter((x) => !isPublic(x))) {
    const a = s.answer;
    const challenge = String(a.headers['www-authenticate'] ?? '');
    const own: string[] = [];
    if (a.statusCode !== 401) own.push(`status ${a.statusCode}`);
    if (challenge !== expected) own.push(`WWW-Authenticate is ${JSON.stringify(challenge)}, not ${JSON.stringify(expected)}`);
    // HEAD has no body by HTTP's rules; its content type still says what the body would be.
    if (s.method === 'HEAD') {
      if (!String(a.headers['content-type'] ?? '').startsWith('application/problem+json')) own.push(`content type ${a.headers['content-type']}`);
    } else own.push(...problemFlaws(a));
    if (own.length > 0) flaws.push(`${s.method} ${s.path}: ${own.join('; ')}`);
  }
  return flaws;
}

export function healthStatuses(world: VmanWorld): Array<{ method: string; status: number }> {
  return sentRequests(world).filter((s) => isHealth(s) && (s.method === 'GET' || s.method === 'HEAD')).map((s) => ({ method: s.method, status: s.answer.statusCode }));
}

/** The OpenAPI document and every GET of the document without an id in its path, with the token. */
export async function readEveryListWithToken(world: VmanWorld, token: string): Promise<Sent[]> {
  const doc = await openApiDocument(world);
  const lists = ['/api/v1/openapi.json', ...Object.entries(doc.paths).filter(([p, ops]) => 'get' in ops && !p.includes('{')).map(([p]) => p)];
  const sent: Sent[] = [];
  for (const p of lists) sent.push({ method: 'GET', path: p, answer: await rawRequest(world.api().baseUrl, { method: 'GET', path: p, headers: { authorization: `Bearer ${token}` } }) });
  world.notes.sentRequests = sent;
  return sent;
}

/** The requests answered with this status. */
export function answeredWith(world: VmanWorld, status: number): string[] {
  return sentRequests(world).filter((s) => s.answer.statusCode === status).map((s) => `${s.method} ${s.path}`);
}
