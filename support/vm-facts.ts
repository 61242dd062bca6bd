// Facts about a VM from independent sources: the database file (sqlite3),
// /proc, QMP on the second monitor, and the guest agent.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { pollUntil, TerminalStateError } from './poll.ts';
import { withGuestAgent } from './guest-agent.ts';
import { guestIpv4Now } from './guest-view.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import type { Row } from './db-reader.ts';
import { qemuOfVm as qemuProcessOf } from './proc-reader.ts';

export interface RecordedVm {
  id: string;
  dir: string;
  state: string;
  reason: string | null;
  pid: number | null;
}

export async function recordedVm(world: VmanWorld, name: string): Promise<RecordedVm> {
  const row: Row | undefined = await world.db().vmByName(name);
  if (!row) throw new Error(`the database has no VM named ${name}`);
  return {
    id: String(row.id), dir: String(row.storage_dir), state: String(row.state),
    reason: (row.state_reason as string | null) ?? null, pid: (row.pid as number | null) ?? null,
  };
}

/** Remembers where a VM lives, so later steps can check it after the row is gone. */
export async function rememberVm(world: VmanWorld, name: string): Promise<RecordedVm> {
  const vm = await recordedVm(world, name);
  const notes = world.vmNotes.get(name);
  world.vmNotes.set(name, { ...notes, id: vm.id, dir: vm.dir, ...(vm.pid !== null ? { pid: vm.pid } : {}) });
  return vm;
}

/** Polls the database file until the VM is in `state`; stops early on `error` when waiting for something else. */
export async function waitForRecordedState(world: VmanWorld, name: string, state: string, timeoutMs = 15_000): Promise<RecordedVm> {
  return pollUntil(
    `VM ${name} recorded as ${state} in the database`,
    async () => {
      const vm = await recordedVm(world, name);
      if (vm.state === state) return { done: true, value: vm };
      if (vm.state === 'error') throw new TerminalStateError(`VM ${name} is recorded as error: ${vm.reason}`);
      return { done: false, seen: `state ${vm.state}${vm.reason ? ` (${vm.reason})` : ''}` };
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export async function waitForNoQemu(vmId: string, dir: string, timeoutMs = 10_000): Promise<void> {
  await pollUntil(
    `no QEMU process for VM ${vmId}`,
    async () => {
      const p = await qemuProcessOf(vmId, dir);
      return p ? { done: false, seen: `QEMU pid ${p.pid} alive` } : { done: true, value: undefined };
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export { withGuestAgent };

/**
 * The IPv4 addresses the guest reports (loopback excluded), once it reports
 * any: the agent can answer a moment before DHCP has finished. After the
 * deadline, whatever it reports (possibly nothing) is the answer to judge.
 */
export async function guestIpv4(dir: string, timeoutMs = 10_000): Promise<string[]> {
  const read = (): Promise<string[]> => guestIpv4Now(dir);
  return pollUntil(
    'the guest to report an IPv4 address',
    async () => {
      const seen = await read();
      return seen.length > 0 ? { done: true, value: seen } : { done: false, seen: 'no IPv4 address yet' };
    },
    { timeoutMs, intervalMs: 100 },
  ).catch(() => read());
}

/** The files a running QEMU of vman's keeps in the VM's folder: its two monitors, the agent socket, the pidfile. */
export async function runtimeFilesPresent(dir: string): Promise<string[]> {
  const present: string[] = [];
  for (const f of ['qmp.sock', 'qmp-aux.sock', 'ga.sock', 'qemu.pid'].map((n) => path.join(dir, n))) {
    if (await access(f).then(() => true, () => false)) present.push(f);
  }
  return present;
}
