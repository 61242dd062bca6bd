// Polling with a deadline: the one way vman and its suite wait for anything.
// On timeout the error says what was expected, what was last seen and how long.

export class WaitTimeoutError extends Error {
  constructor(
    readonly expected: string,
    readonly lastSeen: string,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${expected}; last seen: ${lastSeen}`, options);
    this.name = 'WaitTimeoutError';
  }
}

/** A probe returns `{ done: true, value }` or `{ done: false, seen }` (what it saw instead). */
export type ProbeResult<T> = { done: true; value: T } | { done: false; seen: string };

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Stop early with this error when the probe reports a terminal state. */
  signal?: AbortSignal;
}

export const sleepUntilNextPoll = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function pollUntil<T>(
  expected: string,
  probe: () => Promise<ProbeResult<T>> | ProbeResult<T>,
  { timeoutMs, intervalMs = 50, signal }: PollOptions,
): Promise<T> {
  const started = Date.now();
  let seen = 'nothing yet';
  let lastError: unknown;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const r = await probe();
      if (r.done) return r.value;
      seen = r.seen;
      lastError = undefined;
    } catch (err) {
      // A probe that throws a TerminalError ends the wait at once (Tempest-style early stop).
      if (err instanceof TerminalStateError) throw err;
      lastError = err;
      seen = `error: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() - started >= timeoutMs) {
      throw new WaitTimeoutError(expected, seen, timeoutMs, lastError ? { cause: lastError } : undefined);
    }
    await sleepUntilNextPoll(intervalMs);
  }
}

/** Thrown by a probe when the awaited state can no longer be reached (e.g. VM in `error`). */
export class TerminalStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TerminalStateError';
  }
}
