// The scenario's timings as JSON, beside the text table, so the report's
// charts (scripts/report/numbers.mjs) read numbers instead of parsing prose.
import type { VmanWorld } from '../world/vman-world.ts';

export const TIMINGS_MEDIA_TYPE = 'application/vnd.vman.timings+json';
export const TIMINGS_FILE_NAME = 'timings.json';

export type TimingKind = 'boot' | 'resume' | 'hotplug' | 'unplug' | 'stop' | 'restart' | 'other';

export interface TimingEntry {
  kind: TimingKind;
  what: string;
  ms: number;
  /** The HTTP status of vman's answer; null for what the suite measured without vman (its own guest's boot). */
  status: number | null;
}

/**
 * What a `what` of world.timings measures (support/vm-tasks.ts, disk-tasks.ts,
 * event-tasks.ts). A start that answers before the guest booted
 * (`... without waiting`) is no boot time.
 */
export function classifyTiming(what: string): TimingKind {
  if (/^start VM .+ without waiting$/.test(what)) return 'other';
  if (/^start VM /.test(what)) return 'boot';
  // A clone's first start: it resumes the warm snapshot's memory instead of booting.
  if (/^resume VM /.test(what)) return 'resume';
  if (/^stop VM /.test(what)) return 'stop';
  if (/^restart VM /.test(what)) return 'restart';
  if (/^attach disk /.test(what)) return 'hotplug';
  if (/^detach disk /.test(what)) return 'unplug';
  return 'other';
}

/** Successful answers are measurements; a refusal's time says nothing about boot or hot-plug. */
export function isMeasurement(e: Pick<TimingEntry, 'status'>): boolean {
  return e.status === null || (e.status >= 200 && e.status < 300);
}

interface Timing { what: string; ms: number; status: number }
interface DiskAnswer { action: string; disk: string; body: unknown }

export interface TimingContext {
  /** vman's answers to the disk requests, in order (support/disk-tasks.ts). */
  diskAnswers?: readonly DiskAnswer[];
  /** Names by id, to name the VM an attach answer names. */
  namesById?: ReadonlyMap<string, string>;
  /** Boots of the suite's own guests (no vman). */
  bareBoots?: ReadonlyArray<{ name: string; bootMs: number }>;
}

const VM_ACTION = /^(start|resume|stop|restart) VM (.+?)( without waiting)?$/;

/**
 * The entries of a scenario. An attach or detach while the VM is not running
 * is only a database change, not a hot-plug: "other". Not running is what the
 * scenario showed (a cold attach, vman answers with no device; a successful
 * stop since), never guessed, so a real hot-plug is not lost.
 */
export function timingEntries(timings: readonly Timing[], context: TimingContext = {}): TimingEntry[] {
  const attaches = (context.diskAnswers ?? []).filter((d) => d.action === 'attach');
  const stopped = new Set<string>();
  const vmOfDisk = new Map<string, string>();
  const entries = timings.map((t): TimingEntry => {
    let kind = classifyTiming(t.what);
    let what = t.what;
    const ok = isMeasurement(t);
    const vmAction = VM_ACTION.exec(t.what);
    if (vmAction && ok) {
      if (vmAction[1] === 'stop') stopped.add(vmAction[2]!);
      else stopped.delete(vmAction[2]!);
    }
    if (kind === 'hotplug') {
      const disk = t.what.slice('attach disk '.length);
      const i = attaches.findIndex((d) => d.disk === disk);
      const answer = (i >= 0 ? attaches.splice(i, 1)[0]?.body : undefined) as { vm_id?: unknown; mount_point?: unknown } | undefined;
      const vm = typeof answer?.vm_id === 'string' ? (context.namesById?.get(answer.vm_id) ?? answer.vm_id) : undefined;
      if (ok && vm !== undefined) vmOfDisk.set(disk, vm);
      if (ok && answer?.mount_point === null) {
        if (vm !== undefined) stopped.add(vm);
        kind = 'other';
        what = `${t.what} (VM not running: no hot-plug)`;
      }
    }
    if (kind === 'unplug') {
      const vm = vmOfDisk.get(t.what.slice('detach disk '.length));
      if (vm !== undefined && stopped.has(vm)) {
        kind = 'other';
        what = `${t.what} (VM not running: no unplug)`;
      }
    }
    return { kind, what, ms: t.ms, status: t.status };
  });
  for (const b of context.bareBoots ?? []) entries.push({ kind: 'boot', what: `boot guest ${b.name} without vman`, ms: b.bootMs, status: null });
  return entries;
}

/**
 * The JSON attachment of a scenario's timings; nothing when it measured
 * nothing. The disk answers come from the caller (disk-tasks' record): this
 * module stays free of the suite's hooks, so unit tests can load it.
 */
export function attachTimingsJson(world: VmanWorld, diskAnswers: readonly DiskAnswer[]): void {
  const bare = [...world.vms.values()].flatMap((vm) => (vm.bootMs === undefined ? [] : [{ name: vm.name, bootMs: vm.bootMs }]));
  const namesById = new Map([...world.ids].map(([name, id]) => [id, name]));
  const entries = timingEntries(world.timings, { diskAnswers, namesById, bareBoots: bare });
  if (entries.length === 0) return;
  world.attach(JSON.stringify({ entries }), { mediaType: TIMINGS_MEDIA_TYPE, fileName: TIMINGS_FILE_NAME });
}
