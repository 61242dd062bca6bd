// Steps about templates: made, removed, and the built-in ones.
import { Given, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { createTemplate, deleteTemplate } from '../support/template-tasks.ts';

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
  expect(rows, 'built-in templates in the database').to.deep.equal([
    { name: 'small', cpus: 1, memory_mb: 512 }, { name: 'medium', cpus: 2, memory_mb: 1024 }, { name: 'large', cpus: 4, memory_mb: 2048 },
  ]);
});
