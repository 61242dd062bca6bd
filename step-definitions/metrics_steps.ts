// Steps about GET /metrics and `vman vm top`: each figure vman serves is checked
// against what the suite reads itself: /proc, the database file, the QEMU
// processes under vman's storage, and the bytes a guest's dd wrote.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { GUEST_STEP } from '../support/timeouts.ts';
import { guestWritesBytes, lastDiskRequest } from '../support/disk-tasks.ts';
import { scrapeMetrics, samplesOf, valueOf, type Scrape } from '../support/metrics-reader.ts';
import { processFigures, qemuOfVm, qemusUnder, TICKS_PER_SECOND, type ProcessFigures } from '../support/proc-reader.ts';
import { recordedVm } from '../support/vm-facts.ts';
import { runVmanOk } from '../support/cli-tasks.ts';

const MIB = 1024 * 1024;

/** Each running VM by the database file, with the QEMU the suite finds for it in /proc. */
async function runningQemus(world: VmanWorld): Promise<Array<{ id: string; name: string; pid: number }>> {
  const rows = await world.db().all("SELECT id, name, storage_dir FROM vms WHERE state = 'running' ORDER BY name");
  expect(rows.length, 'VMs the database file records as running').to.be.greaterThan(0);
  return Promise.all(rows.map(async (r) => {
    const proc = await qemuOfVm(String(r.id), String(r.storage_dir));
    if (!proc) throw new Error(`the database records ${String(r.name)} as running, but no QEMU of it runs`);
    return { id: String(r.id), name: String(r.name), pid: proc.pid };
  }));
}

/** /proc's figures of each QEMU just before and just after one scrape of /metrics. */
async function scrapeBetweenProcReads(world: VmanWorld, why: string): Promise<{ scrape: Scrape; vms: Array<{ id: string; name: string; pid: number; before: ProcessFigures; after: ProcessFigures }> }> {
  const vms = await runningQemus(world);
  const before = vms.map((v) => processFigures(v.pid));
  const scrape = await scrapeMetrics(world, why);
  const after = vms.map((v) => processFigures(v.pid));
  return { scrape, vms: vms.map((v, i) => ({ ...v, before: before[i]!, after: after[i]! })) };
}

Given('the suite read \\/metrics', async function (this: VmanWorld) {
  this.notes.metricsBefore = await scrapeMetrics(this, 'before');
});

When('the guest of {string} writes {int} MiB to the disk {string} with dd, past its page cache', GUEST_STEP, async function (this: VmanWorld, vm: string, mib: number, disk: string) {
  const bytes = await guestWritesBytes((await recordedVm(this, vm)).dir, this.idOf(disk), mib);
  expect(bytes, `bytes dd in the guest says it wrote (${mib} MiB asked)`).to.equal(mib * MIB);
  this.notes.guestWrote = { disk, bytes };
});

Then('\\/metrics counts as written to the disk {string} of {string} exactly the bytes dd wrote since the suite last read it', async function (this: VmanWorld, disk: string, vm: string) {
  const labels = { vm: this.idOf(vm), disk: this.idOf(disk) };
  const before = valueOf(this.noted('metricsBefore'), 'vman_disk_written_bytes_total', labels);
  const now = valueOf(await scrapeMetrics(this, 'after dd'), 'vman_disk_written_bytes_total', labels);
  expect(now - before, `bytes /metrics counts written to ${disk} since the suite last read it`).to.equal(this.noted('guestWrote').bytes);
});

Then('\\/metrics gives each running VM the CPU seconds \\/proc counted for its QEMU just before and just after', async function (this: VmanWorld) {
  const { scrape, vms } = await scrapeBetweenProcReads(this, 'CPU against /proc');
  for (const v of vms) {
    const cpu = valueOf(scrape, 'vman_vm_cpu_seconds_total', { vm: v.id, name: v.name });
    expect(cpu, `CPU seconds of ${v.name}'s QEMU (pid ${v.pid}); /proc said ${v.before.cpuTicks} then ${v.after.cpuTicks} ticks`)
      .to.be.within(v.before.cpuTicks / TICKS_PER_SECOND, v.after.cpuTicks / TICKS_PER_SECOND);
  }
});

Then('\\/metrics gives each running VM the resident memory \\/proc gives its QEMU, within {int} MiB', async function (this: VmanWorld, slack: number) {
  const { scrape, vms } = await scrapeBetweenProcReads(this, 'memory against /proc');
  for (const v of vms) {
    const rss = valueOf(scrape, 'vman_vm_resident_memory_bytes', { vm: v.id, name: v.name });
    const low = Math.min(v.before.rssBytes, v.after.rssBytes) - slack * MIB;
    const high = Math.max(v.before.rssBytes, v.after.rssBytes) + slack * MIB;
    expect(rss, `resident bytes of ${v.name}'s QEMU (pid ${v.pid}); /proc said ${v.before.rssBytes} then ${v.after.rssBytes}`).to.be.within(low, high);
  }
});

Then('\\/metrics timed one attach of a disk, in no more time than the suite\'s request for it took', async function (this: VmanWorld) {
  const scrape = await scrapeMetrics(this, 'operations');
  const labels = { resource: 'disk', operation: 'attach', outcome: 'ok' };
  expect(valueOf(scrape, 'vman_operation_duration_seconds_count', labels), 'attaches /metrics timed').to.equal(1);
  const request = lastDiskRequest(this, 'attach');
  const seconds = valueOf(scrape, 'vman_operation_duration_seconds_sum', labels);
  expect(seconds, `seconds /metrics gives the attach; the suite's request took ${request.answeredAt - request.sentAt} ms`)
    .to.be.greaterThan(0).and.at.most((request.answeredAt - request.sentAt) / 1000);
});

Then('\\/metrics counts the VMs in each state as the database file records them, with as many running as QEMU processes run', async function (this: VmanWorld) {
  const scrape = await scrapeMetrics(this, 'VMs by state');
  const recorded = Object.fromEntries((await this.db().all('SELECT state, COUNT(*) AS n FROM vms GROUP BY state')).map((r) => [String(r.state), Number(r.n)]));
  const served = Object.fromEntries(samplesOf(scrape, 'vman_vms').filter((s) => s.value !== 0).map((s) => [s.labels.state!, s.value]));
  expect(served, 'VMs by state: /metrics (states with none left out) against the database file').to.deep.equal(recorded);
  const qemus = await qemusUnder(this.api().storagePath);
  expect(valueOf(scrape, 'vman_vms', { state: 'running' }), `running VMs /metrics counts; QEMU processes under vman's storage: ${qemus.map((q) => q.pid).join(', ') || 'none'}`)
    .to.equal(qemus.length);
});

Then('\\/metrics gives no CPU, memory or disk figures for {string}', async function (this: VmanWorld, vm: string) {
  const scrape = await scrapeMetrics(this, `nothing of ${vm}`);
  const id = this.idOf(vm);
  const about = scrape.samples.filter((s) => s.labels.vm === id).map((s) => `${s.name}${JSON.stringify(s.labels)}`);
  expect(about, `samples /metrics gives about ${vm} (${id})`).to.deep.equal([]);
});

Then('"vman vm top" lists {string} alone, with the CPU seconds \\/proc counted for its QEMU', async function (this: VmanWorld, vm: string) {
  const [running] = await runningQemus(this);
  expect(running?.name, 'the one VM the database file records as running').to.equal(vm);
  const before = processFigures(running!.pid);
  const run = await runVmanOk(this, ['vm', 'top', '--interval', '0.5', '--json']);
  const after = processFigures(running!.pid);
  const rows = JSON.parse(run.stdout) as Array<{ name: string; id: string; cpu_seconds: number; cpu_percent: number | null }>;
  expect(rows.map((r) => [r.name, r.id]), 'VMs vman vm top lists').to.deep.equal([[vm, this.idOf(vm)]]);
  expect(rows[0]!.cpu_seconds, `CPU seconds vman vm top gives ${vm}; /proc said ${before.cpuTicks} then ${after.cpuTicks} ticks`)
    .to.be.within(before.cpuTicks / TICKS_PER_SECOND, after.cpuTicks / TICKS_PER_SECOND);
  expect(rows[0]!.cpu_percent, 'vman vm top measured a CPU share over its interval').to.be.a('number');
});
