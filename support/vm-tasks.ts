// Tasks: what a user does through vman's API, one call each. Steps stay one
// line; these say what was expected when vman answers otherwise.
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { allocationsInDb } from './network-facts.ts';
import { auxSocketOf, QmpReader, type QmpEvent } from './qmp-reader.ts';
import { suiteRunsCold, WARM_TEMPLATE } from './warm-start.ts';
import { qemuOfVm, signal } from './proc-reader.ts';
import { recordedVm } from './vm-facts.ts';

export interface VmJson {
  id: string;
  name: string;
  state: string;
  state_reason: string | null;
  pid: number | null;
  address: string | null;
  storage_dir: string;
}

export function expectStatus<T>(res: Response<unknown>, status: number, what: string): T {
  if (res.statusCode !== status) {
    throw new Error(`${what}: expected HTTP ${status}, got ${res.statusCode}: ${JSON.stringify(res.body)}`);
  }
  return res.body as T;
}

export async function createVm(world: VmanWorld, name: string, template: string, extra: { sshKeys?: string[]; userData?: string } = {}): Promise<VmJson> {
  const res = await world.api().http.post('api/v1/vms', {
    json: { name, template, ...(extra.sshKeys ? { ssh_keys: extra.sshKeys } : {}), ...(extra.userData ? { user_data: extra.userData } : {}) },
  });
  const vm = expectStatus<VmJson>(res, 201, `create VM ${name}`);
  world.ids.set(name, vm.id);
  return vm;
}

export async function getVm(world: VmanWorld, name: string): Promise<VmJson> {
  return expectStatus<VmJson>(await world.api().http.get(`api/v1/vms/${world.idOf(name)}`), 200, `get VM ${name}`);
}

export async function readConsole(world: VmanWorld, name: string, offset: number): Promise<{ offset: number; next_offset: number; data: string }> {
  return expectStatus(await world.api().http.get(`api/v1/vms/${world.idOf(name)}/console`, { searchParams: { offset } }), 200, `read the console of ${name}`);
}

export async function vmAction(world: VmanWorld, name: string, action: 'start' | 'stop' | 'restart', body?: object): Promise<Response<unknown>> {
  const started = Date.now();
  // A clone's first start resumes its snapshot: timed as a warm start, not a boot.
  const resumes = action === 'start' && world.clonesToResume.delete(name);
  const res = await world.api().http.post(`api/v1/vms/${world.idOf(name)}/${action}`, body ? { json: body } : {});
  world.timings.push({ what: `${resumes ? 'resume' : action} VM ${name}`, ms: Date.now() - started, status: res.statusCode });
  world.lastResponse = res;
  return res;
}

export async function deleteVm(world: VmanWorld, name: string, opts: { force?: boolean } = {}): Promise<Response<unknown>> {
  const res = await world.api().http.delete(`api/v1/vms/${world.idOf(name)}`, opts.force ? { searchParams: { force: 'true' } } : {});
  world.lastResponse = res;
  return res;
}

/**
 * A running VM of a template. In a scenario that clones (support/warm-start.ts)
 * a VM of the warm template comes up as a clone of the worker's warm snapshot;
 * otherwise it boots. The report says which.
 */
export async function startRunningVm(world: VmanWorld, name: string, template: string): Promise<VmJson> {
  const clone = world.warmSource !== undefined && template === WARM_TEMPLATE;
  if (clone) await cloneWarm(world, name);
  else await createVm(world, name, template);
  const vm = expectStatus<VmJson>(await vmAction(world, name, 'start'), 200, `start VM ${name}`);
  if (!clone) world.attach(`${name} booted cold (${coldReason(world, template)})`, 'text/plain');
  return vm;
}

function coldReason(world: VmanWorld, template: string): string {
  if (suiteRunsCold()) return 'VMAN_SUITE_COLD=1';
  if (template !== WARM_TEMPLATE) return `the warm snapshot is of the ${WARM_TEMPLATE} template, not ${template}`;
  if (!world.clonesWarm) return 'this scenario boots its VMs: @cold, or it never asks for a running VM of the warm template';
  return 'vman was not started on the warm database';
}

/** Makes the VM as a clone of the worker's warm snapshot, through vman's API: its first start resumes instead of booting. */
export async function cloneWarm(world: VmanWorld, name: string): Promise<VmJson> {
  const source = world.warmSource!;
  const res = await world.api().http.post('api/v1/vms', { json: { name, from_snapshot: { vm: source.vm, name: source.snapshot } } });
  const vm = expectStatus<VmJson>(res, 201, `clone VM ${name} from ${source.vm}@${source.snapshot}`);
  world.ids.set(name, vm.id);
  world.clonesToResume.add(name);
  world.attach(`${name} comes up warm: a clone of the worker's snapshot ${source.vm}@${source.snapshot}, whose first start resumes the saved memory instead of booting`, 'text/plain');
  return vm;
}

/** Starts a VM after noting its row and the allocations, for scenarios where the start must change nothing. */
export async function startNotingRecords(world: VmanWorld, name: string): Promise<Response<unknown>> {
  const row = await world.db().vmByName(name);
  if (row) world.vmNotes.set(name, { ...world.vmNotes.get(name), id: String(row.id), dir: String(row.storage_dir), rowBefore: row });
  world.notes.allocationsBefore = await allocationsInDb(world);
  return vmAction(world, name, 'start');
}

/**
 * Freezes a VM's QEMU (SIGSTOP): it answers nothing until let go. Returns its
 * pid. A frozen QEMU must not outlive a failed scenario either: the teardown
 * sends SIGCONT (SIGKILL works on stopped processes, SIGCONT lets it die).
 */
export async function freezeQemu(world: VmanWorld, name: string): Promise<number> {
  const owner = await recordedVm(world, name);
  const proc = await qemuOfVm(owner.id, owner.dir);
  if (!proc) throw new Error(`no QEMU process of ${name} to freeze`);
  signal(proc.pid, 'SIGSTOP');
  world.cleanups.push(async () => {
    signal(proc.pid, 'SIGCONT');
  });
  return proc.pid;
}

/** The suite's own monitor on a VM's QEMU, listening until QEMU exits. */
export interface QemuWatch {
  events: Promise<QmpEvent[]>;
  close(): void;
}

/** Opens the suite's monitor on a running VM's QEMU (before a fault that would keep it from greeting: a frozen QEMU). */
export async function watchQemu(dir: string): Promise<QemuWatch> {
  const qmp = await QmpReader.open(auxSocketOf(dir));
  return { events: qmp.eventsUntilClosed(10 * 60_000), close: () => qmp.close() };
}

/**
 * Stops a VM while the suite listens on QEMU's second monitor: the events
 * QEMU sent every monitor until it exited (a POWERDOWN when the power button
 * was pressed; the SHUTDOWN and its reason; none when it was killed) are kept
 * in the VM's notes, the evidence of how the guest went down that does not
 * come from vman. A watch opened earlier (the VM's notes) is used when there is one.
 */
export async function stopWatchingQemu(world: VmanWorld, name: string, opts: { force?: boolean } = {}): Promise<Response<unknown>> {
  const row = await world.db().vmByName(name);
  const dir = row?.state === 'running' ? String(row.storage_dir) : undefined;
  const notes = world.vmNotes.get(name);
  const watch = notes?.qemuWatch ?? (dir ? await watchQemu(dir).catch(() => undefined) : undefined);
  try {
    const res = await vmAction(world, name, 'stop', opts.force ? { force: true } : undefined);
    if (watch && res.statusCode === 200) {
      const seen: QmpEvent[] = await watch.events;
      world.vmNoted(name).stopEvents = seen;
      world.attach(`QMP events while ${name} stopped (the suite's own monitor):\n${seen.map((e) => `${e.event} ${JSON.stringify(e.data)}`).join('\n') || '(none: the monitor closed without a SHUTDOWN)'}`, 'text/plain');
    }
    return res;
  } finally {
    watch?.close();
  }
}

/** One rung of a stop as vman logged it (the stop_rungs field of its "stopped" line). */
export interface LoggedRung { rung: string; ms: number; exited: boolean; saw: string }

/** The rungs of the last stop of a VM, from vman's log lines (JSON, one a line). */
export function stopRungsLogged(world: VmanWorld, vmId: string): LoggedRung[] {
  const lines = world.api().log().split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as { msg?: string; vm_id?: string; stop_rungs?: string }];
    } catch {
      return [];
    }
  });
  const stopped = lines.filter((l) => l.vm_id === vmId && typeof l.stop_rungs === 'string');
  const last = stopped[stopped.length - 1];
  if (!last) throw new Error(`vman logged no stop of ${vmId}; its log has ${lines.length} lines`);
  world.attach(`vman's log of the stop: ${last.msg}`, 'text/plain');
  return JSON.parse(last.stop_rungs!) as LoggedRung[];
}
