// Steps about the host: what vman says this run runs on, checked against the
// tools themselves. The facts are attached so the report says them up front.
import { Then } from '@cucumber/cucumber';
import { expect } from 'chai';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { describeSuiteHost } from '../support/host.ts';

interface HostJson {
  qemu_version: string | null;
  qemu_path: string | null;
  qemu_img_path: string | null;
  accelerator: string;
  accelerator_reason: string;
  host_kernel: string;
  guest_image: string | null;
}

async function vmanHost(world: VmanWorld): Promise<HostJson> {
  const res = await world.api().http.get('api/v1/host');
  expect(res.statusCode, 'GET /api/v1/host').to.equal(200);
  const host = res.body as unknown as HostJson;
  world.attach(`vman says:\n${JSON.stringify(host, null, 2)}\n\nthe suite found:\n${describeSuiteHost(world.host)}`, { mediaType: 'text/plain', fileName: 'about this run' });
  return host;
}

Then('vman reports the QEMU and qemu-img that the tools themselves report', async function (this: VmanWorld) {
  const host = await vmanHost(this);
  expect({ version: host.qemu_version, qemu: host.qemu_path, qemuImg: host.qemu_img_path }, "vman's account of QEMU").to.deep.equal({
    version: this.host.qemu.version, qemu: this.host.qemu.path, qemuImg: this.host.qemuImg.path,
  });
});

Then('vman names the accelerator it uses and why, TCG where KVM cannot be opened', async function (this: VmanWorld) {
  const host = await vmanHost(this);
  const kvmOpens = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
  if (!kvmOpens) {
    expect(host.accelerator, 'without a usable /dev/kvm only TCG is possible').to.equal('tcg');
    expect(host.accelerator_reason, 'why TCG').to.match(/\/dev\/kvm/);
  } else {
    expect(host.accelerator_reason, `why ${host.accelerator}`).to.match(host.accelerator === 'kvm' ? /KVM probe VM reached its ready marker/ : /KVM/);
  }
});

Then('vman names the host kernel and the guest image this run built', async function (this: VmanWorld) {
  const host = await vmanHost(this);
  expect(host.host_kernel, 'host kernel').to.equal(this.host.kernelRelease);
  const m = this.host.guest.manifest;
  expect(host.guest_image, 'guest image').to.equal(
    `${m.kernel_package} ${m.kernel_version}, qemu-guest-agent ${m.qemu_guest_agent_version}, busybox ${m.busybox_version} (${m.key ?? path.basename(this.host.guest.dir)})`,
  );
});
