// Every hook of the suite, in the order they run: a run's start (leftovers of
// crashed runs reaped, the host noted), each scenario's Before hooks (QEMU,
// privileges, storage, patient timeouts) and After hooks (watches stopped, the
// whole system judged, evidence and teardown), the leak guard at the end, and
// cleanup on Ctrl-C/SIGTERM. Steps register their undo actions with the
// World's cleanups, never hooks of their own.
import { existsSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { After, AfterAll, Before, BeforeAll, Status, setDefaultTimeout, setParallelCanAssign, type ITestCaseHookParameter } from '@cucumber/cucumber';
import type { VmanWorld } from '../world/vman-world.ts';
import { hostStatus, qemuRequired } from './host.ts';
import { killProcesses, qemuProcessesUnder, reapCrashedRuns, runContext } from './run-context.ts';
import { formatProtocolLog } from './report.ts';
import { attachTimingsJson } from './timings-attachment.ts';
import { diskRequestTimings } from './disk-tasks.ts';
import { reapCrashedNamespaces, sweepRunNetwork } from './netns.ts';
import { privilegeMissing } from './privileges.ts';
import { stopSqliteProcess } from './db-reader.ts';
import { hostView, lastingLeaks, type HostView } from './leak-guard.ts';
import { qemuRunState } from './qmp-reader.ts';
import { withGuestAgent } from './guest-agent.ts';
import { guestDisksOver } from './guest-view.ts';
import { REAL_GUEST_VMAN_ENV, STEP_TIMEOUT_MS } from './timeouts.ts';
import { scenarioClones } from './warm-start.ts';
import { crashSetupClones } from './crash-tasks.ts';
import { judgeSystem, UNJUDGED_REASONS, unjudgedReason } from './judgement.ts';
import { RUN_ENVIRONMENT_TYPE, runEnvironment } from './run-environment.ts';
import { vmanHostInfo } from '../world/vman-service.ts';

// Boots under TCG take seconds; a step that takes a minute is broken
// (support/timeouts.ts: the longer bound of steps that wait on a Debian guest).
setDefaultTimeout(STEP_TIMEOUT_MS);

let hostBefore: HostView | undefined;

BeforeAll({ name: 'reap crashed runs, note the host' }, async function () {
  const reaped = await reapCrashedRuns();
  reaped.push(...(await reapCrashedNamespaces()));
  if (reaped.length > 0) console.warn(`removed leftovers of crashed runs: ${reaped.join(', ')}`);
  hostBefore = await hostView();
  runContext();
  installInterruptCleanup();
});

// Once per worker: the report's environment panel (support/run-environment.ts).
let environmentAttached = false;

Before({ name: 'QEMU on this host', tags: '@integration' }, async function (this: VmanWorld) {
  const status = await hostStatus();
  if (!status.ok) {
    if (qemuRequired()) throw new Error(`QEMU is required (VMAN_REQUIRE_QEMU=1) but unusable: ${status.reason}`);
    this.attach(`Skipped: ${status.reason}`, 'text/plain');
    return 'skipped';
  }
  this.host = status.host;
  const vmanHost = await vmanHostInfo();
  this.attach(`Host\n${status.description}\naccelerator ${vmanHost.accel.accel} (vman's probe: ${vmanHost.accel.reason})`, { mediaType: 'text/plain', fileName: 'host.txt' });
  if (!environmentAttached) {
    environmentAttached = true;
    this.attach(JSON.stringify(runEnvironment(status.host, vmanHost)), { mediaType: RUN_ENVIRONMENT_TYPE, fileName: 'the run\'s environment' });
  }
  return undefined;
});

// Where a proof is required (VMAN_REQUIRE_PRIVILEGED=1, as .ci/run sets it), a
// privileged scenario that cannot run fails with the reason instead of skipping.
Before({ name: 'root and namespaces', tags: '@privileged' }, async function (this: VmanWorld) {
  const reason = await privilegeMissing();
  if (!reason) return undefined;
  if (process.env.VMAN_REQUIRE_PRIVILEGED === '1') throw new Error(`this @privileged scenario cannot run (VMAN_REQUIRE_PRIVILEGED=1): ${reason}`);
  this.attach(`Skipped: ${reason}`, 'text/plain');
  return 'skipped';
});

Before({ name: 'storage for the scenario' }, async function (this: VmanWorld, { pickle }: ITestCaseHookParameter) {
  await this.prepareStorage();
  this.clonesWarm = scenarioClones(pickle, crashSetupClones);
});

Before({ name: 'patient timeouts for real guests', tags: '@real-guest' }, function (this: VmanWorld) {
  this.vmanEnv = { ...REAL_GUEST_VMAN_ENV };
});

// Two Debian guests of 2 vCPUs each on a 2-core machine starve each other (and
// everything else): one @real-guest scenario at a time; the other worker runs
// light scenarios beside it.
setParallelCanAssign((candidate, inProgress) =>
  !(isRealGuest(candidate) && inProgress.some(isRealGuest)));

function isRealGuest(p: { tags: readonly { name: string }[] }): boolean {
  return p.tags.some((t) => t.name === '@real-guest');
}

// After each scenario, in this order. Cucumber runs After hooks last-defined
// first, so they are registered from the end of this list.
//  1. The suite's own watches of running guests stop (they hold the agent the
//     judge needs).
//  2. The whole system is judged (@integration): the suite's coherence check.
//     A scenario that already failed is not judged again (its own failure is
//     the story); what the judge saw is attached as evidence.
//  3. Evidence is attached and everything is torn down: the World's cleanups
//     (a network namespace, mounts) newest first, then guests, vman, storage.
const AFTER_IN_RUN_ORDER: Array<{ name: string; tags?: string; fn: (this: VmanWorld, p: ITestCaseHookParameter) => Promise<void> }> = [
  { name: "stop the suite's watches", fn: stopWatches },
  { name: 'the whole system judged', tags: '@integration', fn: judgeTheSystem },
  { name: 'evidence and teardown', fn: evidenceAndTeardown },
];
for (const h of [...AFTER_IN_RUN_ORDER].reverse()) After({ name: h.name, ...(h.tags ? { tags: h.tags } : {}) }, h.fn);

async function stopWatches(this: VmanWorld): Promise<void> {
  await Promise.all(this.watches.splice(0).map((w) => w.stop()));
}

async function judgeTheSystem(this: VmanWorld, { pickle, result }: ITestCaseHookParameter): Promise<void> {
  const reason = unjudgedReason(pickle.tags);
  if (reason) {
    this.attach(`Not judged after the scenario (@unjudged:${reason}): ${UNJUDGED_REASONS[reason]}`, { mediaType: 'text/plain', fileName: 'not judged' });
    return;
  }
  const found = await judgeSystem(this).catch((e: Error) => [`the judge could not read the system: ${e.message}`]);
  if (found === undefined) return;
  this.attach(found.length === 0 ? 'The database, QEMU, the guests and the files agree.' : found.join('\n'), { mediaType: 'text/plain', fileName: 'the whole system, judged after the scenario' });
  if (found.length > 0 && result?.status === Status.PASSED) {
    throw new Error(`after the scenario, the database, QEMU, the guests and the files disagree:\n  ${found.join('\n  ')}`);
  }
}

async function evidenceAndTeardown(this: VmanWorld, { result }: ITestCaseHookParameter): Promise<void> {
  for (const vm of this.vms.values()) {
    const console = await readFile(vm.files.serialLog, 'utf8').catch(() => '');
    this.attach(console || '(no console output)', { mediaType: 'text/plain', fileName: `serial console of ${vm.name}` });
    if (vm.bootMs !== undefined) this.attach(`${vm.name} booted to a ready guest agent in ${vm.bootMs} ms`, 'text/plain');
  }
  await attachManagedConsoles(this);
  if (this.timings.length > 0) {
    const rows = this.timings.map((t) => `${t.what.padEnd(32)} ${String(t.ms).padStart(6)} ms  HTTP ${t.status}`);
    this.attach(rows.join('\n'), { mediaType: 'text/plain', fileName: 'timings (boot = start, hot-plug = attach/detach)' });
  }
  attachTimingsJson(this, diskRequestTimings(this));
  if (this.protocolLog.length > 0) {
    this.attach(formatProtocolLog(this.protocolLog), { mediaType: 'text/plain', fileName: 'QMP exchanges' });
  }
  if (result?.status === Status.FAILED) {
    this.attach(`Storage at failure: ${this.storage}${this.clonesWarm ? `; vman's, the worker's warm storage: ${this.vmanStorage()}` : ''}`, 'text/plain');
    if (this.vman) this.attach(this.vman.log() || '(vman logged nothing)', { mediaType: 'text/plain', fileName: 'vman log' });
    await attachGuestStates(this);
  }
  await this.destroyAll();
}

// The leak guard: nothing this run made may outlive it. What carries the run's
// names is swept first (and reported); then the host is compared with how it
// was before the run, so a leak under any other name is caught too.
AfterAll({ name: 'leak guard' }, async function () {
  stopSqliteProcess();
  const { root, id } = runContext();
  const leaked = await qemuProcessesUnder(root);
  await killProcesses(leaked);
  const problems: string[] = leaked.map((p) => `QEMU process ${p.pid} (${p.argv.slice(0, 3).join(' ')}) was still running`);
  problems.push(...(await sweepRunNetwork(id, root)));
  rmSync(root, { recursive: true, force: true });
  if (existsSync(root)) problems.push(`run folder ${root} could not be removed`);
  if (hostBefore) problems.push(...(await lastingLeaks(hostBefore, id)));
  if (problems.length > 0) throw new Error(`leak guard: ${problems.join('; ')}`);
});

/** Serial consoles of the VMs vman started in this scenario (read from their folders). */
async function attachManagedConsoles(world: VmanWorld): Promise<void> {
  if (!world.vman) return;
  const vmsDir = path.join(world.vman.storagePath, 'vms');
  const names = new Map<string, string>();
  for (const [name, id] of world.ids) names.set(id, name);
  for (const id of await readdir(vmsDir).catch(() => [] as string[])) {
    const log = await readFile(path.join(vmsDir, id, 'serial.log'), 'utf8').catch(() => undefined);
    if (log !== undefined) world.attach(log || '(no console output)', { mediaType: 'text/plain', fileName: `serial console of ${names.get(id) ?? id}` });
  }
}

/** On failure: what each still-running guest says about itself, and what QEMU says about it. */
async function attachGuestStates(world: VmanWorld): Promise<void> {
  if (!world.vman) return;
  const vmsDir = path.join(world.vman.storagePath, 'vms');
  for (const id of await readdir(vmsDir).catch(() => [] as string[])) {
    const dir = path.join(vmsDir, id);
    const qmp = await qemuRunState(dir).catch((e: Error) => `unreachable (${e.message})`);
    const guest = await withGuestAgent(
      dir,
      async (ga) => {
        const addresses = (await ga.networkInterfaces()).map((i) => `${i.name} ${(i['ip-addresses'] ?? []).map((a) => a['ip-address']).join(' ')}`);
        const disks = (await guestDisksOver(ga)).map((d) => `${d.path} serial ${d.serial} ${d.sizeBytes} B`);
        const uptime = (await ga.exec('/bin/cat', ['/proc/uptime'], { timeoutMs: 2_000 })).stdout.trim();
        return [`interfaces: ${addresses.join('; ')}`, `disks: ${disks.join('; ') || 'none'}`, `uptime: ${uptime}`].join('\n');
      },
      1_500,
    ).catch((e: Error) => `guest agent unreachable (${e.message})`);
    world.attach(`QMP status: ${qmp}\n${guest}`, { mediaType: 'text/plain', fileName: `state of ${id} at failure` });
  }
}

let interruptInstalled = false;

/** Ctrl-C in the middle of a boot must not leave QEMU behind: QEMU daemonizes, so no signal reaches it. */
function installInterruptCleanup(): void {
  if (interruptInstalled) return;
  interruptInstalled = true;
  const onSignal = (sig: NodeJS.Signals): void => {
    const { root } = runContext();
    void qemuProcessesUnder(root)
      .then(killProcesses)
      .then(() => sweepRunNetwork(runContext().id, root))
      .catch(() => undefined)
      .finally(() => {
        rmSync(root, { recursive: true, force: true });
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
