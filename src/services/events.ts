// The event bus: what changed in vman (VM and disk states, observer findings),
// numbered in the order it happened, for whoever listens (the SSE route).
// Publishing never waits on a listener: a slow one is the listener's problem.
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

/** An event as listeners receive it: `id` counts up from 1 across every event type. */
export type PublishedEvent = VmanEvent & { id: number };

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
  #lastId = 0;
  #closed = false;

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
