// Steps about the test guest booted by the suite itself (no vman), checked
// through the serial console, the guest agent, QMP and /proc.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access } from 'node:fs/promises';
import type { VmanWorld } from '../world/vman-world.ts';
import { waitForConsoleLine, waitForProcessGone } from '../support/waiters.ts';
import { powerOff, waitForGuestAgent } from '../support/bare-guest.ts';
import { withGuestAgent } from '../support/guest-agent.ts';
import { guestIpv4Now } from '../support/guest-view.ts';

const BOOT_TIMEOUT_MS = 45_000;

Given('a VM booted from the test guest image with the address {ip}', async function (this: VmanWorld, address: string) {
  const vm = await this.bootGuest('smoke', address);
  vm.bootMs = await waitForGuestAgent(vm, BOOT_TIMEOUT_MS);
});

Then('the guest prints its ready marker on the serial console', async function (this: VmanWorld) {
  const line = await waitForConsoleLine(this.vm().files.serialLog, this.host.guest.readyMarker, { timeoutMs: BOOT_TIMEOUT_MS });
  this.attach(line, 'text/plain');
});

Then('the guest agent answers', async function (this: VmanWorld) {
  await withGuestAgent(this.vm().dir, (ga) => ga.ping(2_000));
});

Then('the guest reports the address {ip} on its network interface', async function (this: VmanWorld, address: string) {
  expect(await guestIpv4Now(this.vm().dir), 'IPv4 addresses the guest agent reports (loopback excluded)').to.deep.equal([address]);
});

When('the VM is powered off', async function (this: VmanWorld) {
  expect(await powerOff(this.vm()), 'how the VM stopped: an ACPI powerdown the guest acted on').to.equal('powerdown');
});

Then('no QEMU process of the VM is left', async function (this: VmanWorld) {
  await waitForProcessGone(this.vm().pid, { timeoutMs: 5_000 });
});

Then("the VM's sockets and pidfile are gone", async function (this: VmanWorld) {
  const f = this.vm().files;
  for (const file of [f.qmp, f.qmpAux, f.guestAgent, f.pidfile]) {
    const exists = await access(file).then(() => true, () => false);
    expect(exists, `${file} exists`).to.equal(false);
  }
});
