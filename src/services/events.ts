// The event bus: what changed in vman (VM and disk states, observer findings),
// numbered in the order it happened, for whoever listens (the SSE route).
// Publishing never waits on a listener: a slow one is the listener's problem.
// The latest events are kept so that a client that lost its connection can
// ask for what it missed (Last-Event-ID); ids name the run of vman that
// published them, so an id from before a restart is recognised as such.
import type { DiskState, VmState } from '../db/types.ts';

export interface VmStateEvent {
  id: string;
  name: string;
  state: VmState | 'deleted';
  previous: VmState | null;
  reason: string | null;
  at: string;
}

export interface DiskStateEvent {
  id: string;
  name: string;
  state: DiskState | 'deleted';
  previous: DiskState | null;
  vm_id: string | null;
  at: string;
}

/** A finding as the observer report gives it (snake_case), plus when it was published. */
export type FindingEvent = Record<string, unknown> & { at: string };

export type VmanEvent =
  | { type: 'vm.state'; data: VmStateEvent }
  | { type: 'disk.state'; data: DiskStateEvent }
  | { type: 'observer.finding'; data: FindingEvent };

/** An event as listeners receive it: `id` counts up from 1 across every event type, within one run of vman. */
export type PublishedEvent = VmanEvent & { id: number };

/** How many of the latest events a bus keeps for clients that reconnect, unless told otherwise. */
export const DEFAULT_REPLAY_LIMIT = 1000;

/** Why a client's position cannot be resumed: it must list what it follows again. */
export type ResetReason = 'restarted' | 'too-far-behind' | 'unknown-id';

/** What a client that saw up to some event missed: the events after it, or a reason to list again. */
export type Missed =
  | { kind: 'events'; events: PublishedEvent[] }
  | { kind: 'reset'; reason: ResetReason; detail: string };

export interface Subscription {
  /** Called for every event published after subscribing, synchronously: it must not block. */
  deliver(event: PublishedEvent): void;
  /** The bus is closing (vman shuts down): end the stream. */
  end(): void;
}

type WithoutAt<E extends VmanEvent> = E extends { type: infer T; data: infer D } ? { type: T; data: Omit<D, 'at'> } : never;
export type UnstampedEvent = WithoutAt<VmanEvent>;

export class EventBus {
  readonly #subscribers = new Set<Subscription>();
  /** The latest events, oldest first, at most #replayLimit of them. */
  readonly #recent: PublishedEvent[] = [];
  readonly #replayLimit: number;
  #lastId = 0;
  #closed = false;
  /** This run of vman, as event ids carry it: its start time in base 36 (a restart on the same storage is a later millisecond). */
  readonly run: string;

  constructor(opts: { replayLimit?: number; run?: string } = {}) {
    this.#replayLimit = opts.replayLimit ?? DEFAULT_REPLAY_LIMIT;
    this.run = opts.run ?? Date.now().toString(36);
  }

  /** The id a client sees: `<run>-<n>`. */
  eventId(n: number): string {
    return `${this.run}-${n}`;
  }

  /** The id of the latest event (`<run>-0` before the first): where a client that lists now would resume from. */
  get position(): string {
    return this.eventId(this.#lastId);
  }

  /**
   * What a client missed after the event `lastEventId`, as it sent it back.
   * Subscribing in the same synchronous turn as this call loses nothing and
   * repeats nothing: no event is published in between.
   */
  since(lastEventId: string): Missed {
    const m = /^([0-9a-z]{1,16})-(0|[1-9][0-9]{0,15})$/.exec(lastEventId);
    if (!m) return { kind: 'reset', reason: 'unknown-id', detail: `${JSON.stringify(lastEventId.slice(0, 100))} is not an event id vman gives (<run>-<n>)` };
    const [, run, nText] = m;
    const n = Number(nText);
    if (run !== this.run) {
      return { kind: 'reset', reason: 'restarted', detail: `${lastEventId} was published by another run of vman (this run is ${this.run}): what changed in between is not kept` };
    }
    if (n > this.#lastId) return { kind: 'reset', reason: 'unknown-id', detail: `${lastEventId} is later than the latest event of this run, ${this.position}` };
    const oldest = this.#recent[0]?.id ?? this.#lastId + 1;
    if (n + 1 < oldest) {
      return { kind: 'reset', reason: 'too-far-behind', detail: `the events after ${lastEventId} are no longer kept: vman keeps the latest ${this.#replayLimit}, from ${this.eventId(oldest)}` };
    }
    return { kind: 'events', events: this.#recent.filter((e) => e.id > n) };
  }

  get closed(): boolean {
    return this.#closed;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** Numbers and stamps the event, then hands it to every subscriber; a throwing subscriber is dropped. */
  publish(event: UnstampedEvent): void {
    if (this.#closed) return;
    const published = { id: ++this.#lastId, type: event.type, data: { ...event.data, at: new Date().toISOString() } } as PublishedEvent;
    this.#recent.push(published);
    if (this.#recent.length > this.#replayLimit) this.#recent.splice(0, this.#recent.length - this.#replayLimit);
    for (const s of [...this.#subscribers]) {
      try {
        s.deliver(published);
      } catch {
        this.#subscribers.delete(s);
      }
    }
  }

  /** Returns the unsubscribe function; undefined when the bus is closed (vman is shutting down). */
  subscribe(s: Subscription): (() => void) | undefined {
    if (this.#closed) return undefined;
    this.#subscribers.add(s);
    return () => {
      this.#subscribers.delete(s);
    };
  }

  /** Ends every subscription; nothing is published or subscribed afterwards. Safe to call twice. */
  close(): void {
    this.#closed = true;
    const all = [...this.#subscribers];
    this.#subscribers.clear();
    for (const s of all) {
      try {
        s.end();
      } catch {
        // A stream that cannot end cleanly is closed with its connection anyway.
      }
    }
  }
}
