// Steps about the host probe: what this run runs on, checked against the
// tools themselves. The facts are attached so the report says them up front.
import { Given, Then } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access } from 'node:fs/promises';
import os from 'node:os';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import { describeHost } from '../src/host/probe.ts';
import { formatVersion } from '../src/host/binaries.ts';

Given('the host has been probed', function (this: VmanWorld) {
  this.attach(`This run: ${describeHost(this.host)}`, { mediaType: 'text/plain', fileName: 'about this run' });
});

Then('the probe names the QEMU version that qemu-system-x86_64 itself reports', async function (this: VmanWorld) {
  const { stdout } = await execa(this.host.qemu.path, ['--version']);
  expect(stdout, 'qemu-system-x86_64 --version').to.include(`version ${formatVersion(this.host.qemu.version)}`);
});

Then('it names the accelerator in use and why it was chosen', async function (this: VmanWorld) {
  const a = this.host.accel;
  expect(['kvm', 'tcg']).to.include(a.accel);
  expect(a.reason, 'reason').to.match(a.accel === 'kvm' ? /KVM probe VM reached its ready marker/ : /TCG/);
  const kvmOpens = await access('/dev/kvm').then(() => true, () => false);
  if (!kvmOpens) expect(a.accel, 'without /dev/kvm only TCG is possible').to.equal('tcg');
});

Then('it names the host kernel and the guest image', async function (this: VmanWorld) {
  expect(this.host.hostKernel).to.equal(os.release());
  await access(this.host.guest.kernel);
  await access(this.host.guest.initrd);
  expect(this.host.guest.manifest.kernel_package, 'guest kernel package').to.match(/^linux-image-/);
});
