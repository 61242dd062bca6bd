// Waiting in the suite: poll with a deadline, and on timeout say what was
// expected, what was seen last and how long the wait was. The suite's own,
// so a bug in vman's waiting cannot hide in its judge.

export class WaitTimeoutError extends Error {
  constructor(readonly expected: string, readonly lastSeen: string, readonly timeoutMs: number, options?: { cause?: unknown }) {
    super(`timed out after ${timeoutMs} ms waiting for ${expected}; last seen: ${lastSeen}`, options);
    this.name = 'WaitTimeoutError';
  }
}

/** Thrown by a probe when what is awaited can no longer happen (a VM in error): the wait ends at once. */
export class TerminalStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TerminalStateError';
  }
}

export type ProbeResult<T> = { done: true; value: T } | { done: false; seen: string };

export async function pollUntil<T>(
  expected: string,
  probe: () => Promise<ProbeResult<T>> | ProbeResult<T>,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let seen = 'nothing yet';
  let lastError: unknown;
  for (;;) {
    try {
      const r = await probe();
      if (r.done) return r.value;
      seen = r.seen;
      lastError = undefined;
    } catch (err) {
      if (err instanceof TerminalStateError) throw err;
      lastError = err;
      seen = `error: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() >= deadline) throw new WaitTimeoutError(expected, seen, opts.timeoutMs, lastError ? { cause: lastError } : undefined);
    await new Promise((resolve) => setTimeout(resolve, Math.min(opts.intervalMs ?? 50, Math.max(0, deadline - Date.now()))));
  }
}
