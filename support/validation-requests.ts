// Requests of the @validation feature: a request vman accepts with one thing
// changed, a body or a path sent exactly as written, a key that could poison
// objects or a key given twice, HEAD against GET, and requests about named
// things for refusals their state causes.
//
// Every request first notes everything vman holds (validation-state.ts), so a
// step can check that a refusal changed nothing. Requests with bad input go out
// through the raw sender (request-raw.ts), which sends paths and bodies exactly
// as written; requests that set a scenario up go through the World's got client.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { rawRequest, type Answer, type RawRequest } from './request-raw.ts';
import { noteHoldings } from './validation-state.ts';
import { expectStatus } from './vm-tasks.ts';
import { creating, LEFT_OUT, type Kind, type MadeFile, type Target } from './validation-tables.ts';

export type { Answer } from './request-raw.ts';

interface Endpoint {
  method: string;
  path: string;
  /** The body vman accepts, which a refusal changes in one place; none for actions that take no body. */
  wellFormed?: Record<string, unknown>;
}


/** Notes what vman holds, sends the request exactly as given, and keeps the answer as the scenario's last response. */
async function send(world: VmanWorld, r: RawRequest): Promise<Answer> {
  await noteHoldings(world);
  const answer = await rawRequest(world.api().baseUrl, r);
  // The steps that judge a refusal read statusCode, headers and body, which an Answer has.
  world.lastResponse = answer as unknown as Response<unknown>;
  return answer;
}

/** The last answer of the scenario. */
export function lastAnswer(world: VmanWorld): Answer {
  const res = world.lastResponse as unknown as Answer | undefined;
  if (!res) throw new Error('no request was sent in this scenario');
  return res;
}

const api = (rest: string): string => `/api/v1/${rest}`;
const segment = (id: string): string => encodeURIComponent(id);

/** Where a template lives in the API: by the id the scenario got for it, or by name (built-in ones). */
function templateRef(world: VmanWorld, name: string): string {
  return world.ids.get(`template:${name}`) ?? name;
}

/**
 * A file of the scenario's own, in its images folder (one of vman's image
 * directories: templates need files that exist there); a name with NUL cannot
 * be made, and is only a path.
 */
async function scenarioFile(world: VmanWorld, name: string, content = 'not really a kernel: vman only checks that the file exists\n'): Promise<string> {
  const file = path.join(world.storage, 'images', name);
  if (name.includes('\0')) return file;
  await mkdir(path.dirname(file), { recursive: true });
  // vman reads a base image with qemu-img: an image named .qcow2 is a real (small) one.
  if (name.endsWith('.qcow2')) await execa('qemu-img', ['create', '-q', '-f', 'qcow2', file, '64M']);
  else await writeFile(file, content);
  return file;
}

async function endpoint(world: VmanWorld, target: Target): Promise<Endpoint> {
  switch (target.what) {
    case 'create a template':
      return { method: 'POST', path: api('templates'), wellFormed: { name: 'tiny', cpus: 1, memory_mb: 256, kernel_path: await scenarioFile(world, 'vmlinuz') } };
    case 'create a VM':
      return { method: 'POST', path: api('vms'), wellFormed: { name: 'web', template: 'small' } };
    case 'create a disk':
      return { method: 'POST', path: api('disks'), wellFormed: { name: 'scratch', size_gb: 1, format: 'qcow2' } };
    case 'attach':
      return { method: 'POST', path: api(`disks/${segment(world.idOf(target.disk))}/attach`), wellFormed: { vm_id: world.idOf(target.vm) } };
    case 'detach':
      return { method: 'POST', path: api(`disks/${segment(world.idOf(target.disk))}/detach`) };
    case 'stop':
      return { method: 'POST', path: api(`vms/${segment(world.idOf(target.vm))}/stop`), wellFormed: { force: true } };
    case 'start':
    case 'restart':
      return { method: 'POST', path: api(`vms/${segment(world.idOf(target.vm))}/${target.what}`) };
  }
}

/** The request vman accepts, unchanged: the starting point of every refusal. */
export async function sendWellFormed(world: VmanWorld, target: Target): Promise<Answer> {
  const e = await endpoint(world, target);
  return send(world, { method: e.method, path: e.path, ...(e.wellFormed ? { body: JSON.stringify(e.wellFormed) } : {}) });
}

/** The request vman accepts with one field set to `value` (added if it is not a field of the request, removed if LEFT_OUT). */
export function sendWithField(world: VmanWorld, target: Target, field: string, value: unknown): Promise<Answer> {
  return sendWithFields(world, target, { [field]: value });
}

/** The request vman accepts with these fields set (added, replaced, or removed if LEFT_OUT). */
export async function sendWithFields(world: VmanWorld, target: Target, fields: Record<string, unknown>): Promise<Answer> {
  const e = await endpoint(world, target);
  const body: Record<string, unknown> = { ...e.wellFormed };
  for (const [field, value] of Object.entries(fields)) {
    if (value === LEFT_OUT) delete body[field];
    else if (typeof value === 'object' && value !== null && 'madeFile' in value) body[field] = await scenarioFile(world, (value as MadeFile).madeFile);
    else body[field] = value;
  }
  return send(world, { method: e.method, path: e.path, body: JSON.stringify(body) });
}

/** The template request vman accepts, with a base image at `value` said to be qcow2. */
export function sendWithBaseImage(world: VmanWorld, value: unknown): Promise<Answer> {
  return sendWithFields(world, { what: 'create a template' }, { base_image_path: value, base_image_format: 'qcow2' });
}

/** A body sent as written, as JSON unless another content type is given; undefined sends no body. */
export async function sendBody(world: VmanWorld, target: Target, body: string | undefined, contentType?: string): Promise<Answer> {
  const e = await endpoint(world, target);
  return send(world, { method: e.method, path: e.path, ...(body === undefined ? {} : { body }), ...(contentType ? { contentType } : {}) });
}

/** The well-formed request (an empty object for actions without options) under another content type. */
export async function sendWellFormedAs(world: VmanWorld, target: Target, contentType: string): Promise<Answer> {
  const e = await endpoint(world, target);
  return send(world, { method: e.method, path: e.path, body: JSON.stringify(e.wellFormed ?? {}), contentType });
}

/** What each key that could poison objects carries, as an attacker would write it. */
// A Map: in an object literal, `__proto__:` would set the prototype, not a key.
const POISON = new Map<string, unknown>([
  ['__proto__', { polluted: true }],
  ['constructor', { prototype: { polluted: true } }],
  ['prototype', { polluted: true }],
]);

/** The well-formed request (an empty object for actions without options) with the key added first, carrying a payload that would reach Object.prototype. */
export async function sendWithKey(world: VmanWorld, target: Target, key: string): Promise<Answer> {
  const payload = POISON.get(key);
  if (payload === undefined) throw new Error(`no payload for the key ${key}: one of ${[...POISON.keys()].join(', ')}`);
  const e = await endpoint(world, target);
  // Written as text: an object literal with "__proto__" would set a prototype, not a key.
  const rest = JSON.stringify(e.wellFormed ?? {}).slice(1, -1);
  const body = `{${JSON.stringify(key)}: ${JSON.stringify(payload)}${rest ? `, ${rest}` : ''}}`;
  return send(world, { method: e.method, path: e.path, body });
}

/** The well-formed request with one of its keys given again at the end, with `second` as its value. */
export async function sendWithKeyTwice(world: VmanWorld, target: Target, key: string, second: unknown): Promise<Answer> {
  const e = await endpoint(world, target);
  if (!e.wellFormed || !(key in e.wellFormed)) throw new Error(`the request to ${target.what} has no key ${key} to give twice`);
  const text = JSON.stringify(e.wellFormed);
  const body = `${text.slice(0, -1)}, ${JSON.stringify(key)}: ${JSON.stringify(second)}}`;
  return send(world, { method: e.method, path: e.path, body });
}

/** Stop with options in the query string (`force=true`) instead of the body. */
export function stopWithQuery(world: VmanWorld, vm: string, query: string): Promise<Answer> {
  return send(world, { method: 'POST', path: `${api(`vms/${segment(world.idOf(vm))}/stop`)}?${query}` });
}

/** Any method to any path, exactly as written. */
export function sendTo(world: VmanWorld, method: string, urlPath: string): Promise<Answer> {
  return send(world, { method, path: urlPath });
}

/** GET of a path followed by `length` letters (a URL longer than vman reads). */
export function sendLongUrl(world: VmanWorld, prefix: string, length: number): Promise<Answer> {
  return send(world, { method: 'GET', path: `${prefix}${'a'.repeat(length)}` });
}

export type IdAction = 'look up' | 'delete' | 'start' | 'stop' | 'restart' | 'detach' | { attachTo: string };

/**
 * An action on a template, VM or disk named by an id the scenario chose, sent
 * percent-encoded as one path segment (`..` stays `..`, as no encoding changes it).
 */
export function sendToId(world: VmanWorld, action: IdAction, kind: Kind, id: string): Promise<Answer> {
  const collection = { template: 'templates', VM: 'vms', disk: 'disks' }[kind];
  const at = api(`${collection}/${segment(id)}`);
  if (action === 'look up') return send(world, { method: 'GET', path: at });
  if (action === 'delete') return send(world, { method: 'DELETE', path: at });
  if (typeof action === 'object') {
    if (kind !== 'disk') throw new Error(`only a disk can be attached, not a ${kind}`);
    return send(world, { method: 'POST', path: `${at}/attach`, body: JSON.stringify({ vm_id: world.idOf(action.attachTo) }) });
  }
  const allowedActions = kind === 'VM' ? ['start', 'stop', 'restart'] : kind === 'disk' ? ['detach'] : [];
  if (!allowedActions.includes(action)) throw new Error(`a ${kind} cannot be asked to ${action}`);
  return send(world, { method: 'POST', path: `${at}/${action}` });
}

// --- HEAD and OPTIONS ---------------------------------------------------------------

/** How the answer to HEAD differs from the answer to GET of the same path (status, content type, length), and any body it has. */
export async function headUnlikeGet(world: VmanWorld, urlPath: string): Promise<string[]> {
  const head = lastAnswer(world);
  const get = await rawRequest(world.api().baseUrl, { method: 'GET', path: urlPath });
  const flaws: string[] = [];
  if (head.statusCode !== get.statusCode) flaws.push(`HEAD answered ${head.statusCode}, GET ${get.statusCode}`);
  if (head.headers['content-type'] !== get.headers['content-type']) flaws.push(`HEAD says ${head.headers['content-type']}, GET ${get.headers['content-type']}`);
  const length = String(Buffer.byteLength(get.text));
  if (head.headers['content-length'] !== length) flaws.push(`HEAD says its content is ${head.headers['content-length']} bytes long; GET's is ${length}`);
  if (head.text !== '') flaws.push(`HEAD came with a body: ${JSON.stringify(head.text.slice(0, 100))}`);
  return flaws;
}

// --- requests about named things, for refusals the state causes ---------------------------

export function tryVmAction(world: VmanWorld, action: string, vm: string): Promise<Answer> {
  if (action === 'delete') return send(world, { method: 'DELETE', path: api(`vms/${segment(world.idOf(vm))}`) });
  if (!['start', 'stop', 'restart'].includes(action)) throw new Error(`a VM cannot be asked to ${action}`);
  return send(world, { method: 'POST', path: api(`vms/${segment(world.idOf(vm))}/${action}`) });
}

export function tryDeleteTemplate(world: VmanWorld, name: string): Promise<Answer> {
  return send(world, { method: 'DELETE', path: api(`templates/${segment(templateRef(world, name))}`) });
}

export function tryCreateTemplate(world: VmanWorld, name: string): Promise<Answer> {
  return sendWithField(world, { what: 'create a template' }, 'name', name);
}

export function tryCreateVm(world: VmanWorld, name: string, template: string): Promise<Answer> {
  return send(world, { method: 'POST', path: api('vms'), body: JSON.stringify({ name, template }) });
}

/** The body of a create vman accepts, with this name. */
/** The path and well-formed body that create a thing of this kind with this name. */
export async function createBody(world: VmanWorld, kind: Kind, name: string): Promise<{ path: string; json: Record<string, unknown> }> {
  const e = await endpoint(world, creating(kind));
  return { path: e.path.replace(/^\//, ''), json: { ...e.wellFormed, name } };
}

/** A template of the operator's own (not built in), from the well-formed template request. */
export async function createOwnTemplate(world: VmanWorld, name: string): Promise<void> {
  const { path: at, json } = await createBody(world, 'template', name);
  const t = expectStatus<{ id: string }>(await world.api().http.post(at, { json }), 201, `create template ${name}`);
  world.ids.set(`template:${name}`, t.id);
}

