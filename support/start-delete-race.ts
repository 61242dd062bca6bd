// A start and a forced delete of one VM that overlap, in a known order: the
// second request is sent only once the database file shows the first one
// holding the VM (starting, or stopping for the delete), so each waits on the
// VM's lock behind the other for a reason, not by luck. What each answered and
// in which order the answers came is kept and attached: the order that won.
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { waitForRecordedState } from './vm-facts.ts';

export interface RaceAnswer { what: 'start' | 'delete'; statusCode: number; body: unknown; answeredAt: number }

function timed(what: RaceAnswer['what'], sent: Promise<Response<unknown>>): Promise<RaceAnswer> {
  return sent.then((res) => ({ what, statusCode: res.statusCode, body: res.body, answeredAt: performance.now() }));
}

/** Sends `first`, waits until the database file shows the VM `holding` (the first request has its lock), then sends the other. */
export async function overlapStartAndDelete(world: VmanWorld, vm: string, first: 'start' | 'delete', holding: 'starting' | 'stopping'): Promise<RaceAnswer[]> {
  const id = world.idOf(vm);
  const http = world.api().http;
  const send = {
    start: () => timed('start', http.post(`api/v1/vms/${id}/start`)),
    delete: () => timed('delete', http.delete(`api/v1/vms/${id}`, { searchParams: { force: 'true' } })),
  };
  const firstAnswer = send[first]();
  await waitForRecordedState(world, vm, holding, 30_000);
  const second = send[first === 'start' ? 'delete' : 'start']();
  const answers = (await Promise.all([firstAnswer, second])).sort((a, b) => a.answeredAt - b.answeredAt);
  world.notes.startDeleteAnswers = answers;
  world.attach(`answered in this order: ${answers.map((a) => `${a.what} HTTP ${a.statusCode}`).join(', then ')}`, 'text/plain');
  return answers;
}

/** The answers in the order they came, as "start 200, delete 204". */
export function answersInOrder(world: VmanWorld): string {
  const answers = world.noted('startDeleteAnswers', 'a start and a delete sent together in this scenario');
  return answers.map((a) => `${a.what} ${a.statusCode}`).join(', ');
}
