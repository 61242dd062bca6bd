// Steps that break things on purpose: QEMU killed or frozen mid-operation, a
// full disk folder, a guest whose agent never answers.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import { qemuBlockView } from '../support/qmp-reader.ts';
import { attachDisk } from '../support/disk-tasks.ts';
import { freezeQemu } from '../support/vm-tasks.ts';
import { recordedVm } from '../support/vm-facts.ts';
import { qemuProcessOf } from '../support/qemu-facts.ts';
import { recordedDisk } from '../support/disk-facts.ts';
import { checkNow } from '../support/observer-tasks.ts';
import { pollUntil } from '../support/poll.ts';
import { signal } from '../support/proc-reader.ts';
import { diskNodeNames } from '../support/disk-facts.ts';

Given('vman is running with a boot timeout of {int} seconds', async function (this: VmanWorld, seconds: number) {
  await this.startVman({ env: { VMAN_BOOT_TIMEOUT: String(seconds) } });
});

Given('vman is running with a QMP timeout of {int} seconds', async function (this: VmanWorld, seconds: number) {
  await this.startVman({ env: { VMAN_QMP_TIMEOUT: String(seconds) } });
});

Given('vman is running with its disk folder on a filesystem with only {int} KB free', async function (this: VmanWorld, kb: number) {
  const disks = path.join(this.vmanStorage(), 'disks');
  await mkdir(disks, { recursive: true, mode: 0o700 });
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${kb}k,mode=0700`, 'vman-test-full', disks]);
  this.cleanups.push(async () => {
    await execa('umount', ['-l', disks]);
  });
  this.notes.smallDiskFolder = disks;
  await this.startVman();
});

When('the disk folder gets room again', async function (this: VmanWorld) {
  const disks = this.noted('smallDiskFolder', 'a disk folder on a small filesystem');
  await execa('mount', ['-o', 'remount,size=65536k', disks]);
});

When('the disk {string} is being attached to {string} and QEMU is killed once QEMU holds the disk', async function (this: VmanWorld, disk: string, vm: string) {
  const owner = await recordedVm(this, vm);
  const { node } = diskNodeNames(this.idOf(disk));
  const attach = attachDisk(this, disk, vm);
  // Between the steps: QEMU has the block node, the guest has not yet reported the disk.
  await pollUntil(
    `QEMU of ${vm} to hold the block node ${node}`,
    async () => {
      const view = await qemuBlockView(owner.dir);
      return view.nodes.includes(node) ? { done: true, value: undefined } : { done: false, seen: `nodes ${view.nodes.join(', ') || 'none'}` };
    },
    { timeoutMs: 10_000, intervalMs: 10 },
  );
  const proc = await qemuProcessOf(owner.id, owner.dir);
  if (!proc) throw new Error(`no QEMU process of ${vm} to kill`);
  signal(proc.pid, 'SIGKILL');
  this.lastResponse = await attach;
});

When('the QEMU process of {string} stops responding', async function (this: VmanWorld, vm: string) {
  await freezeQemu(this, vm);
});

// "still" after a fault; without it after a VM deleted with force let go of the disk.
Then('the disk {string} is (still )recorded as available, attached to nothing', async function (this: VmanWorld, disk: string) {
  const d = await recordedDisk(this, disk);
  expect({ state: d.state, vm: d.vmId, mount: d.mountPoint }, `database row of ${disk}`).to.deep.equal({ state: 'available', vm: null, mount: null });
});

Then('the problem says {string}', function (this: VmanWorld, words: string) {
  const body = this.lastResponse?.body as { detail?: string } | undefined;
  expect(body?.detail ?? '', 'problem detail').to.include(words);
});

Then('the observer agrees that {string} has failed and finds nothing else', async function (this: VmanWorld, vm: string) {
  const report = await checkNow(this);
  const id = this.idOf(vm);
  expect(report.findings.map((f) => `${f.kind} ${f.resource_id}`), 'observer findings').to.deep.equal([`vm-failed ${id}`]);
});

Then('the observer finds nothing wrong', async function (this: VmanWorld) {
  const report = await checkNow(this);
  expect(report.findings.map((f) => `${f.kind} ${f.resource_id}: ${f.observed}`), 'observer findings').to.deep.equal([]);
});
