// Requests sent at the same moment (Promise.all over vman's HTTP client):
// every answer is kept, and the one that won is found among them.
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import type { Answer } from './request-raw.ts';
import { noteHoldings } from './validation-state.ts';
import { problemFlaws } from './validation-problem.ts';
import type { Kind } from './validation-tables.ts';
import { createBody } from './validation-requests.ts';

export interface RaceEntry {
  /** start, delete, attach, create, ... */
  what: string;
  /** Which of the requests it was: the VM it attached to, "first", ... */
  label: string;
  statusCode: number;
  headers: Answer['headers'];
  body: unknown;
}

/** Sends the requests at the same moment (Promise.all over vman's HTTP client) and keeps every answer. */
export async function atTheSameMoment(
  world: VmanWorld,
  requests: Array<{ what: string; label: string; send: () => Promise<Response<unknown>> }>,
): Promise<RaceEntry[]> {
  await noteHoldings(world);
  const answers = await Promise.all(requests.map((r) => r.send()));
  const entries = answers.map((res, i) => ({
    what: requests[i]!.what, label: requests[i]!.label, statusCode: res.statusCode, headers: res.headers, body: res.body,
  }));
  world.notes.raceEntries = entries;
  world.attach(describeRace(entries), { mediaType: 'text/plain', fileName: 'requests sent at the same moment' });
  return entries;
}

export function startTwiceAtOnce(world: VmanWorld, vm: string): Promise<RaceEntry[]> {
  const start = () => world.api().http.post(`api/v1/vms/${world.idOf(vm)}/start`);
  return atTheSameMoment(world, [{ what: 'start', label: 'first', send: start }, { what: 'start', label: 'second', send: start }]);
}

export function attachToBothAtOnce(world: VmanWorld, disk: string, a: string, b: string): Promise<RaceEntry[]> {
  const attach = (vm: string) => () => world.api().http.post(`api/v1/disks/${world.idOf(disk)}/attach`, { json: { vm_id: world.idOf(vm) } });
  return atTheSameMoment(world, [{ what: 'attach', label: a, send: attach(a) }, { what: 'attach', label: b, send: attach(b) }]);
}

/** The same well-formed create, with this name, twice at the same moment. */
export async function createTwiceAtOnce(world: VmanWorld, kind: Kind, name: string): Promise<RaceEntry[]> {
  const { path: at, json } = await createBody(world, kind, name);
  const create = () => world.api().http.post(at, { json });
  return atTheSameMoment(world, [{ what: 'create', label: 'first', send: create }, { what: 'create', label: 'second', send: create }]);
}

export function raceEntries(world: VmanWorld): RaceEntry[] {
  return world.noted('raceEntries', 'requests sent at the same moment in this scenario');
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

/** One request succeeded and the other got `status` with a proper problem; what is wrong otherwise. */
export function oneWonFlaws(world: VmanWorld, what: string, status: number): string[] {
  const entries = raceEntries(world).filter((e) => e.what === what);
  if (entries.length !== 2) return [`${entries.length} ${what} requests were sent, not 2`];
  const winner = raceWinner(world, what);
  const loser = entries.find((e) => e !== winner)!;
  const flaws = problemFlaws(loser);
  if (loser.statusCode !== status) flaws.unshift(`the other ${what} got ${loser.statusCode}, not ${status}: ${describeRace(entries)}`);
  return flaws;
}

/**
 * A start and a delete at the same moment: the delete succeeds; the start
 * either came first (200, the VM running) or came after the delete and found
 * no VM (404 quoting its id).
 */
