// The host probe, once per run, and what a scenario does when QEMU is missing:
// skip with the reason, or fail when VMAN_REQUIRE_QEMU=1 (CI).
import { describeHost, probeHost, type HostInfo } from '../src/host/probe.ts';
import type { AccelRequest } from '../src/host/accel-probe.ts';
import { runContext } from './run-context.ts';

export type HostStatus = { ok: true; host: HostInfo; description: string } | { ok: false; reason: string };

let status: Promise<HostStatus> | undefined;

export function hostStatus(): Promise<HostStatus> {
  status ??= probeHost({
    storagePath: runContext().root,
    requestedAccel: (process.env.VMAN_ACCEL as AccelRequest | undefined) ?? 'auto',
  }).then(
    (host): HostStatus => ({ ok: true, host, description: describeHost(host) }),
    (err: unknown): HostStatus => ({ ok: false, reason: err instanceof Error ? err.message : String(err) }),
  );
  return status;
}

export const qemuRequired = (): boolean => process.env.VMAN_REQUIRE_QEMU === '1';
