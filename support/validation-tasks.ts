// Tasks for the bad-input feature (@validation): a request vman accepts with
// one thing changed, a body or a path sent exactly as written, and conflicting
// requests sent at the same moment.
//
// Every request first notes what vman stores (the database dump and the disk
// files, as disk-facts does, and the VM folders), so a step can check that a
// refusal changed nothing. Requests go out through node:http, not got: got
// resolves `..` path segments before sending (WHATWG URL rules), and a client
// such as `curl --path-as-is` does not, so vman must cope with them itself.
import http from 'node:http';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { noteStoredState } from './disk-facts.ts';
import { expectStatus } from './vm-tasks.ts';

/** What vman answered: the status, the headers, the body (parsed when it is JSON) and its text. */
export interface Answer {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  text: string;
}

/** The requests the feature sends bad input to, by the names its steps use. */
export type Target =
  | { what: 'create a template' }
  | { what: 'create a VM' }
  | { what: 'create a disk' }
  | { what: 'attach'; disk: string; vm: string }
  | { what: 'detach'; disk: string }
  | { what: 'start' | 'stop' | 'restart'; vm: string };

interface Endpoint {
  method: string;
  path: string;
  /** The body vman accepts, which a refusal changes in one place; none for actions that take no body. */
  wellFormed?: Record<string, unknown>;
}

const REQUEST_TIMEOUT_MS = 120_000;
const VM_FOLDERS_BEFORE = 'VM folders before the last request';
const RACE = 'requests sent at the same moment';

// --- what the Examples tables write ---------------------------------------------------

/** A field the request leaves out altogether. */
export const LEFT_OUT = Symbol('left out');

/**
 * A value as the Examples tables write it: JSON (`"web"`, `42`, `null`, `[1]`,
 * `"web\u0001"`), `<n> letters` for a long string, or `left out`.
 */
export function tableValue(text: string): unknown {
  const t = text.trim();
  if (t === 'left out') return LEFT_OUT;
  const letters = /^(\d+) letters$/.exec(t);
  if (letters) return 'a'.repeat(Number(letters[1]));
  // Gherkin turns \n in a cell into a newline; JSON wants it escaped.
  const json = t.replace(/[\u0000-\u001f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  try {
    return JSON.parse(json);
  } catch {
    throw new Error(`the table value ${JSON.stringify(text)} is neither JSON, nor "<n> letters", nor "left out"`);
  }
}

/** A body as the Examples tables write it: sent as it stands, or `nothing` for no body at all. */
export function tableBody(text: string): string | undefined {
  return text.trim() === 'nothing' ? undefined : text;
}

// --- sending --------------------------------------------------------------------------

/** Sends one request exactly as given (path unresolved, body as text) and parses what comes back. */
function exchange(baseUrl: string, method: string, urlPath: string, body?: string, contentType?: string): Promise<Answer> {
  const base = new URL(baseUrl);
  const headers: http.OutgoingHttpHeaders = {};
  if (body !== undefined) {
    headers['content-type'] = contentType ?? 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method, path: urlPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        if (/json/.test(res.headers['content-type'] ?? '')) {
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
        }
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Notes what vman stores, sends the request, and keeps the answer as the scenario's last response. */
async function send(world: VmanWorld, method: string, urlPath: string, body?: string, contentType?: string): Promise<Answer> {
  await noteWhatVmanStores(world);
  const answer = await exchange(world.api().baseUrl, method, urlPath, body, contentType);
  // The steps that judge a refusal read statusCode, headers and body, which an Answer has.
  world.lastResponse = answer as unknown as Response<unknown>;
  return answer;
}

const api = (rest: string): string => `/api/v1/${rest}`;
const segment = (id: string): string => encodeURIComponent(id);

/** Where a template lives in the API: by the id the scenario got for it, or by name (built-in ones). */
function templateRef(world: VmanWorld, name: string): string {
  return world.ids.get(`template:${name}`) ?? name;
}

/** A kernel file of the scenario's own, outside vman's storage: template requests need a file that exists. */
async function bootFile(world: VmanWorld): Promise<string> {
  const file = path.join(world.storage, 'boot', 'vmlinuz');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, 'not really a kernel: vman only checks that the file exists\n');
  return file;
}

async function endpoint(world: VmanWorld, target: Target): Promise<Endpoint> {
  switch (target.what) {
    case 'create a template':
      return { method: 'POST', path: api('templates'), wellFormed: { name: 'tiny', cpus: 1, memory_mb: 256, kernel_path: await bootFile(world) } };
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
  return send(world, e.method, e.path, e.wellFormed && JSON.stringify(e.wellFormed));
}

/** The request vman accepts with one field set to `value` (added if it is not a field of the request, removed if LEFT_OUT). */
export async function sendWithField(world: VmanWorld, target: Target, field: string, value: unknown): Promise<Answer> {
  const e = await endpoint(world, target);
  const body: Record<string, unknown> = { ...e.wellFormed };
  if (value === LEFT_OUT) delete body[field];
  else body[field] = value;
  return send(world, e.method, e.path, JSON.stringify(body));
}

/** A body sent as written, as JSON unless another content type is given; undefined sends no body. */
export async function sendBody(world: VmanWorld, target: Target, body: string | undefined, contentType?: string): Promise<Answer> {
  const e = await endpoint(world, target);
  return send(world, e.method, e.path, body, contentType);
}

/** The well-formed request under another content type. */
export async function sendWellFormedAs(world: VmanWorld, target: Target, contentType: string): Promise<Answer> {
  const e = await endpoint(world, target);
  return send(world, e.method, e.path, JSON.stringify(e.wellFormed ?? {}), contentType);
}

/** Stop with options in the query string (`force=true`) instead of the body. */
export async function stopWithQuery(world: VmanWorld, vm: string, query: string): Promise<Answer> {
  return send(world, 'POST', `${api(`vms/${segment(world.idOf(vm))}/stop`)}?${query}`);
}

/** Any method to any path, exactly as written. */
export function sendTo(world: VmanWorld, method: string, urlPath: string): Promise<Answer> {
  return send(world, method, urlPath);
}

export type IdAction = 'look up' | 'delete' | 'start' | 'stop' | 'restart' | 'detach' | { attachTo: string };

/**
 * An action on a template, VM or disk named by an id the scenario chose, sent
 * percent-encoded as one path segment (`..` stays `..`, as no encoding changes it).
 */
export function sendToId(world: VmanWorld, action: IdAction, kind: 'template' | 'VM' | 'disk', id: string): Promise<Answer> {
  const collection = { template: 'templates', VM: 'vms', disk: 'disks' }[kind];
  const at = api(`${collection}/${segment(id)}`);
  if (action === 'look up') return send(world, 'GET', at);
  if (action === 'delete') return send(world, 'DELETE', at);
  if (typeof action === 'object') {
    if (kind !== 'disk') throw new Error(`only a disk can be attached, not a ${kind}`);
    return send(world, 'POST', `${at}/attach`, JSON.stringify({ vm_id: world.idOf(action.attachTo) }));
  }
  const allowed = kind === 'VM' ? ['start', 'stop', 'restart'] : kind === 'disk' ? ['detach'] : [];
  if (!allowed.includes(action)) throw new Error(`a ${kind} cannot be asked to ${action}`);
  return send(world, 'POST', `${at}/${action}`);
}

/** Reads an action as the tables write it: `look up`, `delete`, `start`, ..., `attach to "db"`. */
export function idAction(text: string): IdAction {
  const attach = /^attach to "([^"]+)"$/.exec(text);
  if (attach) return { attachTo: attach[1]! };
  if (['look up', 'delete', 'start', 'stop', 'restart', 'detach'].includes(text)) return text as IdAction;
  throw new Error(`unknown action ${JSON.stringify(text)}`);
}

// --- requests about named things, for refusals the state causes ---------------------------

export function tryVmAction(world: VmanWorld, action: string, vm: string): Promise<Answer> {
  if (action === 'delete') return send(world, 'DELETE', api(`vms/${segment(world.idOf(vm))}`));
  if (!['start', 'stop', 'restart'].includes(action)) throw new Error(`a VM cannot be asked to ${action}`);
  return send(world, 'POST', api(`vms/${segment(world.idOf(vm))}/${action}`));
}

export function tryDeleteTemplate(world: VmanWorld, name: string): Promise<Answer> {
  return send(world, 'DELETE', api(`templates/${segment(templateRef(world, name))}`));
}

export async function tryCreateTemplate(world: VmanWorld, name: string): Promise<Answer> {
  return sendWithField(world, { what: 'create a template' }, 'name', name);
}

export function tryCreateVm(world: VmanWorld, name: string, template: string): Promise<Answer> {
  return send(world, 'POST', api('vms'), JSON.stringify({ name, template }));
}

/** A template of the operator's own (not built in), from the well-formed template request. */
export async function createOwnTemplate(world: VmanWorld, name: string): Promise<void> {
  const e = await endpoint(world, { what: 'create a template' });
  const res = await world.api().http.post('api/v1/templates', { json: { ...e.wellFormed, name } });
  const t = expectStatus<{ id: string }>(res, 201, `create template ${name}`);
  world.ids.set(`template:${name}`, t.id);
}

// --- what vman stores -------------------------------------------------------------------

/** Every entry under <storage>/vms, by relative path and kind (not size: a running VM's serial log grows). */
export async function vmFolders(world: VmanWorld): Promise<string[]> {
  const root = path.join(world.api().storagePath, 'vms');
  const entries: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
      const st = await lstat(path.join(dir, name)).catch(() => undefined);
      if (!st) continue;
      const kind = st.isDirectory() ? 'folder' : st.isSocket() ? 'socket' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      entries.push(`${rel}${name} (${kind})`);
      if (st.isDirectory()) await walk(path.join(dir, name), `${rel}${name}/`);
    }
  };
  await walk(root, '');
  return entries;
}

async function noteWhatVmanStores(world: VmanWorld): Promise<void> {
  await noteStoredState(world);
  world.remembered.set(VM_FOLDERS_BEFORE, await vmFolders(world));
}

export function vmFoldersBeforeLastRequest(world: VmanWorld): string[] {
  const before = world.remembered.get(VM_FOLDERS_BEFORE) as string[] | undefined;
  if (!before) throw new Error('no request was sent in this scenario, so there is nothing to compare with');
  return before;
}

// --- files where an id climbing out of vman's folders would lead --------------------------

/** Where `id` would lead if vman joined it to its VM folder or its disk folder as a file name. */
function climbTargets(world: VmanWorld, id: string): string[] {
  const storage = world.api().storagePath;
  return [path.resolve(storage, 'vms', id), path.resolve(storage, 'disks', `${id}.qcow2`)];
}

/** Puts a file, outside vman's storage, at each place the id would lead. */
export async function placeClimbTargets(world: VmanWorld, id: string): Promise<void> {
  const storage = world.api().storagePath;
  for (const file of climbTargets(world, id)) {
    if (file.startsWith(`${storage}/`)) throw new Error(`${id} does not climb out of ${storage}: it leads to ${file}`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `target of ${id}\n`);
  }
}

/** The target files that are no longer there as they were put. */
export async function disturbedClimbTargets(world: VmanWorld, id: string): Promise<string[]> {
  const disturbed: string[] = [];
  for (const file of climbTargets(world, id)) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== `target of ${id}\n`) disturbed.push(`${file}: ${text === undefined ? 'gone' : `now holds ${JSON.stringify(text.slice(0, 80))}`}`);
  }
  return disturbed;
}

// --- refusals ---------------------------------------------------------------------------

/** What is wrong with an answer as an RFC 9457 problem for a refusal; empty when nothing is. */
export function problemFlaws(answer: { statusCode: number; headers: http.IncomingHttpHeaders; body: unknown }): string[] {
  const flaws: string[] = [];
  const type = answer.headers['content-type'] ?? '';
  if (!type.startsWith('application/problem+json')) flaws.push(`content type is ${JSON.stringify(type)}, not application/problem+json`);
  const b = answer.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return [...flaws, `the body is not a JSON object: ${JSON.stringify(b)?.slice(0, 200)}`];
  const p = b as Record<string, unknown>;
  const text = (field: string): void => {
    if (typeof p[field] !== 'string' || (p[field] as string).trim() === '') flaws.push(`"${field}" is ${JSON.stringify(p[field])}, not a non-empty string`);
  };
  text('type');
  text('title');
  text('detail');
  if (p.status !== answer.statusCode) flaws.push(`"status" is ${JSON.stringify(p.status)} but the HTTP status is ${answer.statusCode}`);
  return flaws;
}

// --- requests sent at the same moment -------------------------------------------------------

export interface RaceEntry {
  /** start, delete, attach, ... */
  what: string;
  /** Which of the requests it was: the VM it attached to, "first", ... */
  label: string;
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/** Sends the requests at the same moment (Promise.all over vman's HTTP client) and keeps every answer. */
export async function atTheSameMoment(
  world: VmanWorld,
  requests: Array<{ what: string; label: string; send: () => Promise<Response<unknown>> }>,
): Promise<RaceEntry[]> {
  const answers = await Promise.all(requests.map((r) => r.send()));
  const entries = answers.map((res, i) => ({
    what: requests[i]!.what, label: requests[i]!.label, statusCode: res.statusCode, headers: res.headers, body: res.body,
  }));
  world.remembered.set(RACE, entries);
  world.attach(describeRace(entries), { mediaType: 'text/plain', fileName: 'requests sent at the same moment' });
  return entries;
}

export function raceEntries(world: VmanWorld): RaceEntry[] {
  const entries = world.remembered.get(RACE) as RaceEntry[] | undefined;
  if (!entries) throw new Error('no requests were sent at the same moment in this scenario');
  return entries;
}

export const describeRace = (entries: readonly RaceEntry[]): string =>
  entries.map((e) => `${e.what} (${e.label}): HTTP ${e.statusCode} ${JSON.stringify(e.body)}`).join('; ');

/** The one request that succeeded; throws saying what every request got when it is not exactly one. */
export function raceWinner(world: VmanWorld, what: string): RaceEntry {
  const entries = raceEntries(world).filter((e) => e.what === what);
  const won = entries.filter((e) => e.statusCode >= 200 && e.statusCode < 300);
  if (won.length !== 1) throw new Error(`expected exactly one ${what} to succeed: ${describeRace(entries)}`);
  return won[0]!;
}
