// A start and a forced delete of one VM that overlap, in a known order: the
// second request is sent only once the database file shows the first one
// holding the VM (starting, or stopping for the delete), so each waits on the
// VM's lock behind the other for a reason, not by luck. What each answered and
// in which order the answers came is kept and attached: the order that won.
//
// A forced stop is QEMU's quit command, which a running guest's QEMU obeys in
// tens of milliseconds: fewer than the database is polled in. So for a delete
// sent first, the VM's QEMU is frozen (SIGSTOP) before it, and let go
// (SIGCONT) only once the start has reached vman: "stopping" lasts as long as
// the suite needs, and vman's quit is answered late, not lost.
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { pollUntil } from './poll.ts';
import { signal } from './proc-reader.ts';
import { waitForRecordedState } from './vm-facts.ts';
import { freezeQemu } from './vm-tasks.ts';

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
  const frozen = first === 'delete' ? await freezeQemu(world, vm) : undefined;
  const firstAnswer = send[first]();
  let second: Promise<RaceAnswer>;
  try {
    await waitForRecordedState(world, vm, holding, 30_000);
    second = send[first === 'start' ? 'delete' : 'start']();
    if (frozen !== undefined) await requestReached(world, `/api/v1/vms/${id}/start`);
  } finally {
    if (frozen !== undefined) signal(frozen, 'SIGCONT');
  }
  const answers = (await Promise.all([firstAnswer, second])).sort((a, b) => a.answeredAt - b.answeredAt);
  world.notes.startDeleteAnswers = answers;
  world.attach(`answered in this order: ${answers.map((a) => `${a.what} HTTP ${a.statusCode}`).join(', then ')}`, 'text/plain');
  return answers;
}

/** Waits until vman's log shows a request for `url` came in (an in-process vman logs each one as it arrives). */
async function requestReached(world: VmanWorld, url: string): Promise<void> {
  const needle = `"url":"${url}"`;
  await pollUntil(`vman to receive the request for ${url}`, async () => {
    const seen = world.api().log().split('\n').some((l) => l.includes('"incoming request"') && l.includes(needle));
    return seen ? { done: true, value: undefined } : { done: false, seen: 'not in its log yet' };
  }, { timeoutMs: 10_000, intervalMs: 5 });
}

/** The answers in the order they came, as "start 200, delete 204". */
export function answersInOrder(world: VmanWorld): string {
  const answers = world.noted('startDeleteAnswers', 'a start and a delete sent together in this scenario');
  return answers.map((a) => `${a.what} ${a.statusCode}`).join(', ');
}
