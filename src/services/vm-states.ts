// The VM state machine in one place: which action is allowed from which state,
// and which states mean what (a QEMU runs, an address is held). The services,
// the observer's checks and its repair all read these sets.
import type { AtRestState, VmState } from '../db/types.ts';
import { conflict } from '../errors.ts';

export type VmAction = 'start' | 'stop' | 'restart' | 'delete' | 'attach-disk';

/** created → starting → running → stopping → stopped; error from any failing step. */
export const ALLOWED_FROM: Record<VmAction, readonly VmState[]> = {
  start: ['created', 'stopped', 'error'],
  stop: ['running'],
  restart: ['running'],
  // Transitional states are never seen here: actions on one VM are serialised.
  delete: ['created', 'running', 'stopped', 'error'],
  'attach-disk': ['running', 'stopped'],
};

/** No QEMU runs for a VM in these states. */
export const AT_REST: ReadonlySet<VmState> = new Set<AtRestState>(['created', 'stopped', 'error']);

/** A QEMU runs (or is being started or stopped) for a VM in these states. */
export const IN_LIFE: ReadonlySet<VmState> = new Set<VmState>(['starting', 'running', 'stopping']);

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
