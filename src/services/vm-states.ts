// The VM state machine: which action is allowed from which state.
import type { VmState } from '../db/types.ts';
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

export function assertActionAllowed(action: VmAction, vmId: string, state: VmState): void {
  if (!ALLOWED_FROM[action].includes(state)) {
    throw conflict(
      'vm-state-conflict',
      `cannot ${action.replace('-', ' ')} VM ${vmId}: it is ${state} (allowed from ${ALLOWED_FROM[action].join(', ')})`,
    );
  }
}
