// Steps about VMs managed through vman's API, checked through the database
// file, /proc, QMP and the guest agent.
import { Given, Then, When, type DataTable } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access, readFile } from 'node:fs/promises';
import { GUEST_STEP } from '../support/timeouts.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { createVm, deleteVm, expectStatus, getVm, readConsole, startNotingRecords, startRunningVm, stopRungsLogged, stopWatchingQemu, vmAction, watchQemu } from '../support/vm-tasks.ts';
import {
  guestIpv4, recordedVm, rememberVm, runtimeFilesPresent, waitForNoQemu, waitForRecordedState, withGuestAgent,
} from '../support/vm-facts.ts';
import { qemuProcessOf, qmpRunState } from '../support/qemu-facts.ts';
import { signal } from '../support/proc-reader.ts';
import path from 'node:path';
import { operatorKeyPair } from '../support/real-guest.ts';
import { qemuBlockView, qemuSize, type QmpEvent } from '../support/qmp-reader.ts';
import { guestSize } from '../support/guest-view.ts';
import type { StopMethod, VmState } from '../support/closed-sets.ts';
import { noteHoldings } from '../support/validation-state.ts';

/** vman's default wait for a guest asked through its agent (VMAN_STOP_AGENT_TIMEOUT), which the stop scenarios leave as it is. */
const AGENT_DEADLINE_MS = 30_000;

// The kernel keeps some memory for itself: MemTotal is below the machine's
// size, by far less than this on these guests (about 30 MB at 512 MB).
const KERNEL_RESERVE_MB = 128;

Given('a VM {string} created from the {word} template', async function (this: VmanWorld, name: string, template: string) {
  await createVm(this, name, template);
  await rememberVm(this, name);
});

Given('a running VM {string} from the {word} template', GUEST_STEP, async function (this: VmanWorld, name: string, template: string) {
  await startRunningVm(this, name, template);
  await rememberVm(this, name);
});

When('the VM {string} is started', GUEST_STEP, async function (this: VmanWorld, name: string) {
  await startNotingRecords(this, name);
  await rememberVm(this, name);
});

When('the VM {string} is stopped', GUEST_STEP, async function (this: VmanWorld, name: string) {
  expectStatus(await stopWatchingQemu(this, name), 200, `stop ${name}`);
});

When('the VM {string} is stopped with force', async function (this: VmanWorld, name: string) {
  await rememberVm(this, name);
  expectStatus(await stopWatchingQemu(this, name, { force: true }), 200, `stop ${name} with force`);
});

Given('the suite listens on the second monitor of {string}', async function (this: VmanWorld, name: string) {
  const vm = await rememberVm(this, name);
  const watch = await watchQemu(vm.dir);
  this.vmNoted(name).qemuWatch = watch;
  this.cleanups.push(async () => watch.close());
});

When('the VM {string} is restarted', async function (this: VmanWorld, name: string) {
  expectStatus(await vmAction(this, name, 'restart'), 200, `restart ${name}`);
});

When('the VM {string} is deleted', async function (this: VmanWorld, name: string) {
  expectStatus(await deleteVm(this, name), 204, `delete ${name}`);
});

When('the VM {string} is deleted with force', async function (this: VmanWorld, name: string) {
  expectStatus(await deleteVm(this, name, { force: true }), 204, `delete ${name} with ?force=true`);
});

When('the operator tries to delete the VM {string} without force', async function (this: VmanWorld, name: string) {
  await noteHoldings(this);
  await deleteVm(this, name);
});

When('the guest of {string} powers itself off', async function (this: VmanWorld, name: string) {
  // guest-shutdown has no reply on success: the guest is gone before it could send one.
  await withGuestAgent(this.vmNoted(name).dir, (ga) =>
    ga.execute('guest-shutdown', { mode: 'powerdown' }, { timeoutMs: 2_000 }).catch(() => undefined),
  );
});

When('the QEMU process of {string} is killed', async function (this: VmanWorld, name: string) {
  const p = await qemuProcessOf(this.vmNoted(name).id, this.vmNoted(name).dir);
  if (!p) throw new Error(`no QEMU process of ${name} to kill`);
  signal(p.pid, 'SIGKILL');
});

Then('the VM {string} is recorded as {vm-state}', async function (this: VmanWorld, name: string, state: VmState) {
  await waitForRecordedState(this, name, state);
});

Then('the VM {string} is recorded as error with a reason mentioning {string}', async function (this: VmanWorld, name: string, words: string) {
  const vm = await waitForRecordedState(this, name, 'error');
  expect(vm.reason ?? '', 'recorded state_reason').to.include(words);
});

Then('QEMU runs the VM {string} and QMP says it is running', async function (this: VmanWorld, name: string) {
  const vm = await recordedVm(this, name);
  const proc = await qemuProcessOf(vm.id, vm.dir);
  expect(proc, `a QEMU process named vman-${vm.id} under ${vm.dir}`).to.not.equal(undefined);
  expect(vm.pid, 'pid recorded in the database').to.equal(proc!.pid);
  expect(await qmpRunState(vm.dir), 'QMP query-status').to.equal('running');
});

// At once, not eventually: vman answers a start only when the guest is ready.
Then('the guest agent of {string} answers', async function (this: VmanWorld, name: string) {
  await withGuestAgent((await recordedVm(this, name)).dir, (ga) => ga.ping(1_000), 1_500);
});

Then('the guest of {string} has the address vman recorded for it', async function (this: VmanWorld, name: string) {
  const vm = await recordedVm(this, name);
  const recorded = await this.db().addressOf(vm.id);
  expect(recorded, 'address allocated to the VM in the database').to.be.a('string');
  expect(await guestIpv4(vm.dir), 'IPv4 addresses the guest agent reports').to.deep.equal([recorded]);
});

Then('no QEMU process of {string} is left', async function (this: VmanWorld, name: string) {
  await waitForNoQemu(this.vmNoted(name).id, this.vmNoted(name).dir);
});

Then('the sockets and pidfile of {string} are gone', async function (this: VmanWorld, name: string) {
  expect(await runtimeFilesPresent(this.vmNoted(name).dir)).to.deep.equal([]);
});

Then('the storage folder of {string} holds no sockets or pidfile', async function (this: VmanWorld, name: string) {
  expect(await runtimeFilesPresent(this.vmNoted(name).dir)).to.deep.equal([]);
});

Then('{string} holds no address', async function (this: VmanWorld, name: string) {
  expect(await this.db().addressOf(this.vmNoted(name).id), 'address allocation in the database').to.equal(undefined);
});

Then('{string} runs in a new QEMU process', async function (this: VmanWorld, name: string) {
  const vm = await recordedVm(this, name);
  const proc = await qemuProcessOf(vm.id, vm.dir);
  expect(proc, 'a live QEMU process').to.not.equal(undefined);
  expect(proc!.pid, 'pid after the restart').to.not.equal(this.vmNoted(name).pid);
});

Then('{string} still runs in the same QEMU process', async function (this: VmanWorld, name: string) {
  const vm = await recordedVm(this, name);
  const proc = await qemuProcessOf(vm.id, vm.dir);
  expect(proc?.pid, 'live QEMU pid').to.equal(this.vmNoted(name).pid);
  expect(vm.pid, 'pid recorded in the database').to.equal(proc?.pid);
});

Then('the database has no record of {string}', async function (this: VmanWorld, name: string) {
  expect(await this.db().vmByName(name)).to.equal(undefined);
});

Then('the storage folder of {string} is gone', async function (this: VmanWorld, name: string) {
  const exists = await access(this.vmNoted(name).dir).then(() => true, () => false);
  expect(exists, 'VM folder exists').to.equal(false);
});

Then('the request is refused with status {int}', function (this: VmanWorld, status: number) {
  const res = this.lastResponse;
  expect(res?.statusCode, `HTTP status; body ${JSON.stringify(res?.body)}`).to.equal(status);
  expect(res?.headers['content-type'] ?? '').to.include('application/problem+json');
});

Then('the VM {string} can be deleted', async function (this: VmanWorld, name: string) {
  expectStatus(await deleteVm(this, name), 204, `delete ${name}`);
  expect(await this.db().vmByName(name)).to.equal(undefined);
});

Then('the VM {string} can be stopped through the API', async function (this: VmanWorld, name: string) {
  expectStatus(await vmAction(this, name, 'stop'), 200, `stop ${name}`);
  await waitForNoQemu(this.vmNoted(name).id, this.vmNoted(name).dir);
  await waitForRecordedState(this, name, 'stopped');
});

Then('QEMU of {string} gives it {int} for its number of virtual CPUs and {int} MB of memory', async function (this: VmanWorld, name: string, cpus: number, mb: number) {
  const size = await qemuSize((await recordedVm(this, name)).dir);
  expect({ cpus: size.cpus, memoryMb: size.memoryBytes / 2 ** 20 }, 'query-cpus-fast and query-memory-size-summary').to.deep.equal({ cpus, memoryMb: mb });
});

Then('the guest of {string} counts {int} for its number of processors and {int} MB of memory, less what its kernel keeps', async function (this: VmanWorld, name: string, cpus: number, mb: number) {
  const size = await guestSize((await recordedVm(this, name)).dir);
  const memTotalMb = size.memTotalKb / 1024;
  this.attach(`the guest counts ${size.cpus} processor(s) and MemTotal ${size.memTotalKb} kB (${memTotalMb.toFixed(0)} MB of ${mb})`, 'text/plain');
  expect(size.cpus, 'processors in /proc/cpuinfo').to.equal(cpus);
  expect(memTotalMb, `MemTotal in /proc/meminfo, in MB: at most ${mb}, at least ${mb - KERNEL_RESERVE_MB}`).to.be.within(mb - KERNEL_RESERVE_MB, mb);
});

Given('a VM {string} created from the {word} template with the operator\'s SSH key', async function (this: VmanWorld, name: string, template: string) {
  await createVm(this, name, template, { sshKeys: [(await operatorKeyPair(this)).publicKey] });
  await rememberVm(this, name);
});

// How a guest went down, from QEMU: the guest shut itself down (SHUTDOWN,
// guest true, reason guest-shutdown) with or without the power button pressed
// first (POWERDOWN); a quit says reason host-qmp-quit; a SIGKILL leaves no
// SHUTDOWN at all. Then the record.
Then('the VM {string} was stopped {stop-method}', async function (this: VmanWorld, name: string, method: StopMethod) {
  const events = this.vmNoted(name).stopEvents;
  if (!events) throw new Error(`the suite did not watch QEMU while ${name} stopped`);
  expect(stopAsQemuSaw(events), `how ${name} went down, as QEMU told the suite's monitor (events: ${events.map((e) => e.event).join(', ') || 'none'})`).to.equal(method);
  expect((await this.db().vmByName(name))?.stop_method, `how ${name} was stopped, in the database`).to.equal(method);
});

Then('QEMU of {string} saw its power button pressed {int} time(s) before it went down', function (this: VmanWorld, name: string, times: number) {
  const events = this.vmNoted(name).stopEvents;
  if (!events) throw new Error(`the suite did not watch QEMU while ${name} stopped`);
  expect(events.filter((e) => e.event === 'POWERDOWN').length, `POWERDOWN events on the suite's monitor (events: ${events.map((e) => e.event).join(', ') || 'none'})`).to.equal(times);
});

// vman's own account of a stop, read from its log: each rung it tried, whether
// QEMU exited on it and what it saw. A rung that was refused must have handed
// over before its deadline, not waited it out.
Then('vman\'s log tells how the stop of {string} went, rung by rung:', function (this: VmanWorld, name: string, table: DataTable) {
  const rungs = stopRungsLogged(this, this.vmNoted(name).id);
  const expected = table.hashes();
  expect(rungs.map((r) => r.rung), `the rungs vman's log names for the stop of ${name}: ${JSON.stringify(rungs)}`).to.deep.equal(expected.map((e) => e.rung));
  expected.forEach((e, i) => {
    const got = rungs[i]!;
    expect(got.exited ? 'yes' : 'no', `whether QEMU exited on the ${e.rung} rung (${got.saw})`).to.equal(e['QEMU exited']);
    expect(got.saw, `what the ${e.rung} rung saw`).to.include(e.saw);
    if (e.saw!.includes('refused')) expect(got.ms, `ms the refused ${e.rung} rung took, against its deadline`).to.be.below(AGENT_DEADLINE_MS);
  });
});

Then('the console of {string} shows {string}, and a second read from where the first ended shows only what came since', async function (this: VmanWorld, name: string, line: string) {
  const first = await readConsole(this, name, 0);
  expect(first.data, 'the console from its start').to.include(line);
  const file = await readFile(path.join(this.vmNoted(name).dir, 'serial.log'), 'utf8');
  expect(first.data, 'the console as the API gives it, against the file QEMU writes').to.equal(file.slice(0, first.data.length));
  const second = await readConsole(this, name, first.next_offset);
  expect(second.offset, 'where the second read began').to.equal(first.next_offset);
  expect(file.slice(first.next_offset, second.next_offset), 'what came since, in the file').to.equal(second.data);
});

Then('the API shows no address for {string} until its guest reports one', async function (this: VmanWorld, name: string) {
  // Ready as soon as QEMU runs: vman has asked the guest nothing, so it knows no address the guest has taken.
  expect((await getVm(this, name)).address, `the address the API shows for ${name}`).to.equal(null);
});

Then('QEMU of {string} was given no kernel, only its disk', async function (this: VmanWorld, name: string) {
  const vm = await recordedVm(this, name);
  const proc = await qemuProcessOf(vm.id, vm.dir);
  if (!proc) throw new Error(`no QEMU runs ${name}`);
  expect(proc.argv.filter((a) => a === '-kernel' || a === '-initrd'), 'kernel and initrd in its command line').to.deep.equal([]);
  const root = (await qemuBlockView(vm.dir)).fileOf[`disk-root-${vm.id.slice(3)}`];
  expect(root, 'the file its root disk reads (QMP)').to.equal(path.join(vm.dir, 'root.qcow2'));
});

/** The stop method QEMU's events show (agent, acpi, quit, kill), or what they show instead. */
function stopAsQemuSaw(events: readonly QmpEvent[]): string {
  const shutdown = events.find((e) => e.event === 'SHUTDOWN');
  if (!shutdown) return 'kill';
  const reason = `${shutdown.data.guest === true ? 'guest' : 'host'} ${String(shutdown.data.reason)}`;
  if (reason === 'host host-qmp-quit') return 'quit';
  if (reason !== 'guest guest-shutdown') return `SHUTDOWN ${reason}`;
  return events.some((e) => e.event === 'POWERDOWN') ? 'acpi' : 'agent';
}
