// Error codes in one place. Services throw VmanError; the API edge turns it
// into problem+json with the status that goes with its kind.

// bad-gateway: QEMU (what vman fronts) failed or died during an action; gateway-timeout: the guest
// did not become ready in time. Neither is a state conflict (409).
export type ErrorKind = 'invalid' | 'not-found' | 'conflict' | 'unavailable' | 'insufficient-storage' | 'internal' | 'bad-gateway' | 'gateway-timeout';

export const STATUS_OF: Record<ErrorKind, number> = {
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  unavailable: 503,
  'insufficient-storage': 507,
  internal: 500,
  'bad-gateway': 502,
  'gateway-timeout': 504,
};

export class VmanError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** Short, stable code, e.g. `vm-state-conflict`; the problem type is derived from it. */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VmanError';
  }
}

export const notFound = (what: string, id: string): VmanError =>
  new VmanError('not-found', `${what}-not-found`, `${what} ${JSON.stringify(id)} does not exist`);

export const conflict = (code: string, message: string): VmanError => new VmanError('conflict', code, message);

export const invalid = (code: string, message: string, cause?: unknown): VmanError =>
  new VmanError('invalid', code, message, cause === undefined ? undefined : { cause });

/** Something looked up by id or name (VMs, disks, templates) that is neither. */
export const notFoundByRef = (code: 'vm' | 'disk' | 'template', label: string, ref: string): VmanError =>
  new VmanError('not-found', `${code}-not-found`, `no ${label} with id or name ${JSON.stringify(ref)}`);

export const snapshotNotFound = (vmName: string, name: string): VmanError =>
  new VmanError('not-found', 'snapshot-not-found', `VM ${vmName} has no snapshot named ${JSON.stringify(name)}`);
