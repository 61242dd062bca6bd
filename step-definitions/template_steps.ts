// Steps about templates: made, removed, and the built-in ones.
import { Given, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { createTemplate, deleteTemplate } from '../support/template-tasks.ts';
import { debianImage } from '../support/real-guest.ts';
import { BUILT_IN_TEMPLATES } from '../support/closed-sets.ts';

When('a template {string} is created for the test guest with {int} CPU(s) and {int} MB', async function (this: VmanWorld, name: string, cpus: number, mb: number) {
  await createTemplate(this, name, { cpus, memoryMb: mb });
});

Given('a template {string} for the test guest without its guest agent', async function (this: VmanWorld, name: string) {
  await createTemplate(this, name, { cpus: 1, memoryMb: 512, cmdline: `${this.host.guest.cmdline} vman.noagent` });
});

Given('a template {string} whose kernel file has since been removed', async function (this: VmanWorld, name: string) {
  const kernel = path.join(this.storage, 'images', `${name}-vmlinuz`);
  await mkdir(path.dirname(kernel), { recursive: true });
  await copyFile(this.host.guest.kernel, kernel);
  await createTemplate(this, name, { cpus: 1, memoryMb: 512, kernel });
  await rm(kernel);
});

When('the template {string} is deleted', async function (this: VmanWorld, name: string) {
  await deleteTemplate(this, name);
});

Given('the built-in templates are there', async function (this: VmanWorld) {
  const rows = await this.db().all('SELECT name, cpus, memory_mb FROM templates WHERE builtin = 1 ORDER BY cpus');
  expect(rows, 'built-in templates in the database').to.deep.equal(BUILT_IN_TEMPLATES.map((t) => ({ name: t.name, cpus: t.cpus, memory_mb: t.memoryMb })));
});

Given('a template {string} for the Debian image with {int} CPUs and {int} MB', async function (this: VmanWorld, name: string, cpus: number, mb: number) {
  const d = debianImage(this);
  await createTemplate(this, name, { cpus, memoryMb: mb, kernel: d.kernel, initrd: d.initrd, cmdline: d.cmdline, baseImage: { path: d.image, format: 'qcow2' } });
});

Given('a template {string} for the Debian image without its agent, with {int} CPUs and {int} MB, ready when SSH answers', async function (this: VmanWorld, name: string, cpus: number, mb: number) {
  const d = debianImage(this);
  await createTemplate(this, name, {
    cpus, memoryMb: mb, kernel: d.kernel, initrd: d.initrd, cmdline: d.cmdline, baseImage: { path: d.imageWithoutAgent, format: 'qcow2' }, readiness: 'ssh',
  });
});

Given('a template {string} that boots the test guest from the disk image by its own bootloader', async function (this: VmanWorld, name: string) {
  if (!this.host.bootImage) throw new Error('the test guest has no bootable disk image (guest/build.sh makes boot.img)');
  await createTemplate(this, name, { cpus: 1, memoryMb: 512, kernel: null, baseImage: { path: this.host.bootImage, format: 'raw' } });
});

Given('a template {string} for the test guest without its agent, ready when its console says {string}', async function (this: VmanWorld, name: string, line: string) {
  await createTemplate(this, name, { cpus: 1, memoryMb: 512, cmdline: `${this.host.guest.cmdline} vman.noagent`, readiness: 'serial', readyPattern: line });
});

// As a Debian guest without D-Bus behaves: its shutdown command fails (the agent answers with an error) and the power button does nothing.
Given('a template {string} for the test guest whose shutdown command fails and which ignores the ACPI power button', async function (this: VmanWorld, name: string) {
  await createTemplate(this, name, { cpus: 1, memoryMb: 512, cmdline: `${this.host.guest.cmdline} vman.shutdown=fail vman.powerbutton=ignore` });
});

Given('a template {string} for the test guest that is ready as soon as QEMU runs', async function (this: VmanWorld, name: string) {
  await createTemplate(this, name, { cpus: 1, memoryMb: 512, readiness: 'none' });
});
