// Steps about templates.
import { Given } from '@cucumber/cucumber';
import { expect } from 'chai';
import { copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus } from '../support/vm-tasks.ts';

Given('a template {string} whose kernel file has since been removed', async function (this: VmanWorld, name: string) {
  const kernel = path.join(this.storage, `${name}-vmlinuz`);
  await copyFile(this.host.guest.kernel, kernel);
  const res = await this.api().http.post('api/v1/templates', {
    json: { name, cpus: 1, memory_mb: 512, kernel_path: kernel, initrd_path: this.host.guest.initrd, cmdline: this.host.guest.cmdline },
  });
  const t = expectStatus<{ id: string }>(res, 201, `create template ${name}`);
  this.ids.set(`template:${name}`, t.id);
  await rm(kernel);
});

Given('the built-in templates are there', async function (this: VmanWorld) {
  const rows = await this.db().all('SELECT name, cpus, memory_mb FROM templates WHERE builtin = 1 ORDER BY cpus');
  expect(rows, 'built-in templates in the database').to.deep.equal([
    { name: 'small', cpus: 1, memory_mb: 512 }, { name: 'medium', cpus: 2, memory_mb: 1024 }, { name: 'large', cpus: 4, memory_mb: 2048 },
  ]);
});
