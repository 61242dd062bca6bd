// The whole system judged after every @integration scenario: the suite's own
// coherence check (support/coherence.ts) runs before teardown, and any
// disagreement fails the scenario. A scenario that leaves the system
// disagreeing on purpose says so with a tag `@unjudged:<reason>`, whose reason
// is one of those below; the report shows it. An unknown reason is an error,
// so nobody opts out with a typo.
import type { VmanWorld } from '../world/vman-world.ts';
import { disagreements } from './coherence.ts';
import { pollUntil } from './poll.ts';

export const UNJUDGED_REASONS = {
  'disagreement-on-purpose':
    'the scenario makes the database and the host disagree behind vman\'s back (the observer must find it) and leaves it so',
  'vman-left-dead':
    'the scenario ends with vman killed and not started again, so what it was doing is still recorded as unfinished',
} as const;

export type UnjudgedReason = keyof typeof UNJUDGED_REASONS;

const TAG = '@unjudged:';

/** The reason a scenario's tags give for not being judged, if any; throws on a reason nobody wrote down. */
export function unjudgedReason(tags: readonly { name: string }[]): UnjudgedReason | undefined {
  const tag = tags.find((t) => t.name.startsWith(TAG));
  if (!tag) return undefined;
  const reason = tag.name.slice(TAG.length);
  if (!(reason in UNJUDGED_REASONS)) {
    throw new Error(`${tag.name}: no such reason; a scenario may go unjudged only for one of ${Object.keys(UNJUDGED_REASONS).join(', ')} (support/judgement.ts)`);
  }
  return reason as UnjudgedReason;
}

/** How long the judge waits for requests the scenario left unanswered (a request cut short by a failing step). */
const SETTLE_MS = 60_000;

/**
 * Judges the system the scenario leaves: first waits until no request of the
 * scenario is in flight, then every disagreement the suite's own check finds.
 * Empty when everything agrees; undefined when vman never ran.
 */
export async function judgeSystem(world: VmanWorld): Promise<string[] | undefined> {
  if (!world.vman || !world.dbReader) return undefined;
  const vman = world.vman;
  await pollUntil(
    'the scenario\'s requests to vman to be answered',
    () => Promise.resolve(vman.inFlight() === 0 ? { done: true, value: undefined } : { done: false, seen: `${vman.inFlight()} in flight` }),
    { timeoutMs: SETTLE_MS, intervalMs: 50 },
  );
  return disagreements(world);
}
