// Steps about a guest booted straight through the operator, checked through
// the serial console, the guest agent, QMP and /proc.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access } from 'node:fs/promises';
import type { VmanWorld } from '../world/vman-world.ts';
import { waitForConsoleLine, waitForProcessGone } from '../support/waiters.ts';
import { guestIpv4Addresses } from '../support/guest-facts.ts';

const BOOT_TIMEOUT_MS = 45_000;

Given('a VM booted from the test guest image with the address {ip}', async function (this: VmanWorld, address: string) {
  const vm = await this.bootGuest('smoke', address);
  vm.bootMs = await vm.handle.waitForGuestReady(BOOT_TIMEOUT_MS);
});

Then('the guest prints its ready marker on the serial console', async function (this: VmanWorld) {
  const line = await waitForConsoleLine(this.vm().handle.paths.serialLog, this.host.guest.readyMarker, { timeoutMs: BOOT_TIMEOUT_MS });
  this.attach(line, 'text/plain');
});

Then('the guest agent answers', async function (this: VmanWorld) {
  await this.vm().handle.withGuestAgent((ga) => ga.ping(2_000));
});

Then('the guest reports the address {ip} on its network interface', async function (this: VmanWorld, address: string) {
  const seen = await guestIpv4Addresses(this.vm().handle);
  expect(seen, 'IPv4 addresses the guest agent reports (loopback excluded)').to.deep.equal([address]);
});

When('the VM is powered off', async function (this: VmanWorld) {
  const method = await this.vm().handle.stop();
  expect(method, 'how the VM stopped: an ACPI powerdown the guest acted on').to.equal('powerdown');
});

Then('no QEMU process of the VM is left', async function (this: VmanWorld) {
  await waitForProcessGone(this.vm().handle.pid, { timeoutMs: 5_000 });
});

Then("the VM's sockets and pidfile are gone", async function (this: VmanWorld) {
  const p = this.vm().handle.paths;
  for (const file of [p.qmp, p.qmpAux, p.guestAgent, p.pidfile]) {
    const exists = await access(file).then(() => true, () => false);
    expect(exists, `${file} exists`).to.equal(false);
  }
});
