// Steps about the host: what vman says this run runs on, checked against the
// tools themselves. The facts are attached so the report says them up front.
import { Then } from '@cucumber/cucumber';
import { expect } from 'chai';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { describeSuiteHost } from '../support/host.ts';
import { createTemplate } from '../support/template-tasks.ts';
import { createVm, expectStatus, vmAction } from '../support/vm-tasks.ts';
import { recordedVm } from '../support/vm-facts.ts';
import { withQmp } from '../support/qmp-reader.ts';

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

// One answer, read from QEMU itself: a VM vman starts (ready as soon as QEMU
// runs, so no boot is waited for) is asked over its second monitor whether KVM
// is enabled, and vman's account must be that one.
Then('vman names the accelerator it uses and why, and a VM it starts runs on that accelerator, as QEMU says', async function (this: VmanWorld) {
  const host = await vmanHost(this);
  await createTemplate(this, 'accel-probe', { cpus: 1, memoryMb: 128, readiness: 'none' });
  await createVm(this, 'accel-probe', 'accel-probe');
  expectStatus(await vmAction(this, 'accel-probe', 'start'), 200, 'start the accelerator probe');
  const kvm = await withQmp((await recordedVm(this, 'accel-probe')).dir, (qmp) => qmp.execute<{ enabled: boolean; present: boolean }>('query-kvm'));
  expectStatus(await vmAction(this, 'accel-probe', 'stop', { force: true }), 200, 'stop the accelerator probe');
  this.attach(`query-kvm on the probe VM's QEMU: ${JSON.stringify(kvm)}; vman: ${host.accelerator} (${host.accelerator_reason})`, 'text/plain');
  expect(host.accelerator, `the accelerator vman names, against QEMU's query-kvm ${JSON.stringify(kvm)}`).to.equal(kvm.enabled ? 'kvm' : 'tcg');
  expect(host.accelerator_reason, `why ${host.accelerator}`).to.match(kvm.enabled ? /KVM probe VM reached its ready marker/ : /KVM|\/dev\/kvm/);
});

Then('vman names the host kernel and the guest image this run built', async function (this: VmanWorld) {
  const host = await vmanHost(this);
  expect(host.host_kernel, 'host kernel').to.equal(this.host.kernelRelease);
  const m = this.host.guest.manifest;
  expect(host.guest_image, 'guest image').to.equal(
    `${m.kernel_package} ${m.kernel_version}, qemu-guest-agent ${m.qemu_guest_agent_version}, busybox ${m.busybox_version} (${m.key ?? path.basename(this.host.guest.dir)})`,
  );
});
