// The report's environment panel, from what this run found rather than from
// guesses: the accelerator vman's own probe decided and why (not whether
// /dev/kvm can be opened: on some hosts it opens and KVM does not work), the QEMU the
// suite found, the keys of the guest images it booted, and the machine's cores.
// Attached once per worker (support/hooks.ts); support/allure-reporter.mjs
// moves it into the Allure report's environment instead of a scenario.
import os from 'node:os';
import path from 'node:path';
import type { HostInfo } from '../src/host/probe.ts';
import { guestBuiltFrom, type SuiteHost } from './host.ts';

/** The attachment's media type; support/allure-reporter.mjs says the same (test/allure-config.test.ts checks). */
export const RUN_ENVIRONMENT_TYPE = 'application/vnd.vman.run-environment+json';

export function runEnvironment(host: SuiteHost, vman: Pick<HostInfo, 'accel'>): Record<string, string> {
  const g = host.guest.manifest;
  return {
    accelerator: `${vman.accel.accel.toUpperCase()}: ${vman.accel.reason}${vman.accel.fromCache ? ` (decided ${vman.accel.decidedAt}, ${vman.accel.key})` : ''}`,
    QEMU: `${host.qemu.version} (${host.qemu.path}); qemu-img ${host.qemuImg.version}`,
    'test guest': `${g.key ?? path.basename(host.guest.dir)}: ${guestBuiltFrom(g)}`,
    'Debian guest': host.debian ? `${host.debian.key}: ${host.debian.versions}` : 'not built (./setup.sh --no-debian-guest)',
    CPUs: `${os.availableParallelism()} (${os.cpus()[0]?.model ?? 'unknown model'})`,
    kernel: host.kernelRelease,
  };
}
