// The VM state machine in one place: every transition a VM may make, which
// action is allowed from which state, and which states mean what (a QEMU runs,
// an address is held). Every write of a VM's state is checked against
// TRANSITIONS (services/state-events.ts, which also publishes the change); the
// services, the observer's checks and its repair read the sets.
import type { AtRestState, VmState } from '../db/types.ts';
import { conflict } from '../errors.ts';

export type VmAction = 'start' | 'stop' | 'restart' | 'delete' | 'attach-disk' | 'snapshot' | 'revert';

/**
 * created → starting → running → stopping → stopped; running → saving → running
 * (a snapshot with memory); a clone's first start and a revert go through
 * restoring; error from any step that fails. Recovery puts a cut-short start
 * back to where it came from (any state at rest).
 */
export const TRANSITIONS: Readonly<Record<VmState, readonly VmState[]>> = {
  created: ['starting', 'restoring', 'stopped', 'error'],
  starting: ['running', 'created', 'stopped', 'error'],
  running: ['stopping', 'saving', 'restoring', 'stopped', 'error'],
  // Back to running only when a new vman adopts a QEMU that still runs.
  stopping: ['stopped', 'error', 'running'],
  stopped: ['starting', 'restoring', 'error'],
  error: ['starting', 'restoring', 'stopped'],
  saving: ['running', 'stopped', 'error'],
  restoring: ['running', 'created', 'stopped', 'error'],
};

export class IllegalTransitionError extends Error {
  constructor(readonly vmId: string, readonly from: VmState, readonly to: VmState) {
    super(`VM ${vmId} cannot go from ${from} to ${to} (allowed from ${from}: ${TRANSITIONS[from].join(', ')})`);
    this.name = 'IllegalTransitionError';
  }
}

/** Throws unless `from → to` is in the table (staying put is always allowed). */
export function assertTransition(vmId: string, from: VmState, to: VmState): void {
  if (from !== to && !TRANSITIONS[from].includes(to)) throw new IllegalTransitionError(vmId, from, to);
}

export const ALLOWED_FROM: Record<VmAction, readonly VmState[]> = {
  start: ['created', 'stopped', 'error'],
  stop: ['running'],
  restart: ['running'],
  // Transitional states are never seen here: actions on one VM are serialised.
  delete: ['created', 'running', 'stopped', 'error'],
  'attach-disk': ['running', 'stopped'],
  snapshot: ['created', 'running', 'stopped'],
  revert: ['created', 'running', 'stopped', 'error'],
};

/** No QEMU runs for a VM in these states. */
export const AT_REST: ReadonlySet<VmState> = new Set<AtRestState>(['created', 'stopped', 'error']);

/** A QEMU runs (or is being started, stopped, saved or resumed) for a VM in these states. */
export const IN_LIFE: ReadonlySet<VmState> = new Set<VmState>(['starting', 'running', 'stopping', 'saving', 'restoring']);

/**
 * A VM in these states owns its address: a stopping VM still runs its guest on
 * it until it is stopped, so taking it earlier would invite handing it out twice.
 */
export const HOLDS_ADDRESS: ReadonlySet<VmState> = IN_LIFE;

export function isAtRest(state: VmState): state is AtRestState {
  return AT_REST.has(state);
}

export function assertActionAllowed(action: VmAction, vmId: string, state: VmState): void {
  if (!ALLOWED_FROM[action].includes(state)) {
    throw conflict(
      'vm-state-conflict',
      `cannot ${action.replace('-', ' ')} VM ${vmId}: it is ${state} (allowed from ${ALLOWED_FROM[action].join(', ')})`,
    );
  }
}
