// Steps about vman's API for clients: the documentation page, the readiness
// check, filtered lists and lookups by name. Evidence comes from a browser
// (headless Chromium), /proc, QMP and the database file.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Response } from 'got';
import { operationsOf, renderPage, renderedOperations } from '../support/docs-page.ts';
import { qemuProcessOf } from '../support/qemu-facts.ts';
import { GUEST_STEP } from '../support/timeouts.ts';
import { rememberVm } from '../support/vm-facts.ts';
import { expectStatus } from '../support/vm-tasks.ts';
import type { VmState } from '../support/closed-sets.ts';
import type { VmanWorld } from '../world/vman-world.ts';

const DOCS = 'api/v1/docs';

interface OpenApiDocument {
  paths: Record<string, Record<string, unknown>>;
}

// --- vman started with a QEMU it cannot use ----------------------------------------------------

/**
 * A `qemu-system-x86_64` that says it is QEMU 2.0.0 (older than vman takes),
 * first on the PATH of a separate vman process: vman serves, but cannot start VMs.
 */
Given('vman runs as a separate process that finds QEMU {word} first on its PATH', async function (this: VmanWorld, version: string) {
  const bin = path.join(this.storage, 'old-qemu');
  await mkdir(bin, { recursive: true });
  const fake = path.join(bin, 'qemu-system-x86_64');
  await writeFile(fake, `#!/bin/sh\necho "QEMU emulator version ${version}"\n`);
  await chmod(fake, 0o755);
  await this.vman?.stop();
  await this.startVman({ child: true, env: { PATH: `${bin}:${process.env.PATH ?? ''}` } });
});

// --- the documentation page ----------------------------------------------------------------------

When('the documentation page is opened in a browser without the token', { timeout: 180_000 }, async function (this: VmanWorld) {
  // The document the page is made from; public, like the page.
  const res = await this.api().http.get('api/v1/openapi.json');
  const doc = expectStatus<OpenApiDocument>(res, 200, 'GET /api/v1/openapi.json without a token');
  const page = await renderPage(`${this.api().baseUrl}${DOCS}`);
  this.attach(page.screenshot, 'image/png');
  this.notes.documentedOperations = operationsOf(doc);
  this.notes.renderedOperations = renderedOperations(page.dom);
});

Then('the page lists every route of the OpenAPI document', function (this: VmanWorld) {
  const key = ([m, p]: [string, string]) => `${m} ${p}`;
  const documented = this.noted('documentedOperations', 'api docs: operations').map(key).sort();
  const rendered = this.noted('renderedOperations', 'api docs: rendered operations').map(key).sort();
  expect(documented.length, 'operations in the OpenAPI document').to.be.greaterThan(20);
  expect(rendered, 'operations the rendered page shows (method and path)').to.deep.equal(documented);
});

// --- /ready ----------------------------------------------------------------------------------------

When('the operator asks vman whether it is ready', async function (this: VmanWorld) {
  this.lastResponse = await this.api().http.get('ready');
});

Then('vman answers that it is ready', function (this: VmanWorld) {
  const res = this.lastResponse!;
  // The suite runs as root: vman gives each VM's QEMU a user of its own, and says so.
  expect({ status: res.statusCode, body: res.body }, 'GET /ready').to.deep.equal({ status: 200, body: { status: 'ready', confinement: 'per-vm-user' } });
});

Then('vman answers 503 not ready, saying {string}', function (this: VmanWorld, words: string) {
  const res = this.lastResponse!;
  expect(res.statusCode, `GET /ready; body ${JSON.stringify(res.body)}`).to.equal(503);
  expect(res.headers['content-type'] ?? '').to.include('application/problem+json');
  expect((res.body as { detail?: string }).detail ?? '', 'the problem\'s detail').to.include(words);
});

Then('its health check still answers 200', async function (this: VmanWorld) {
  const res = await this.api().http.get('health');
  expect(res.statusCode, 'GET /health').to.equal(200);
});

// --- filtered lists --------------------------------------------------------------------------------

/** GET /vms with these query parameters; the names listed are noted for the steps below. */
async function listVms(world: VmanWorld, searchParams: Record<string, string>): Promise<void> {
  const res = await world.api().http.get('api/v1/vms', { searchParams });
  world.lastResponse = res;
  const vms = expectStatus<Array<{ name: string }>>(res, 200, `list VMs with ${new URLSearchParams(searchParams).toString()}`);
  world.notes.listedVmNames = vms.map((v) => v.name).sort();
}

When('the operator lists the VMs with state "{vm-state}" and name {string}', async function (this: VmanWorld, state: VmState, name: string) {
  await listVms(this, { state, name });
});

When('the operator lists the VMs with state "{vm-state}"', async function (this: VmanWorld, state: VmState) {
  await listVms(this, { state });
});

When('the operator lists the VMs with name {string}', async function (this: VmanWorld, name: string) {
  await listVms(this, { name });
});

Then('the list holds exactly {}', function (this: VmanWorld, names: string) {
  const expected = [...names.matchAll(/"([^"]+)"/g)].map((m) => m[1]!).sort();
  expect(this.noted('listedVmNames', 'api: listed names'), 'names in the list').to.deep.equal(expected);
});

Then('of the VMs {}, only {string} has a QEMU process', async function (this: VmanWorld, names: string, running: string) {
  const all = [...names.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  const withQemu: string[] = [];
  for (const name of all) {
    const row = await this.db().vmByName(name);
    if (!row) throw new Error(`the database has no VM named ${name}`);
    if (await qemuProcessOf(String(row.id), String(row.storage_dir))) withQemu.push(name);
  }
  expect(withQemu, 'VMs with a QEMU process in /proc').to.deep.equal([running]);
});

// --- by name ---------------------------------------------------------------------------------------

async function byName(world: VmanWorld, method: 'post' | 'delete', url: string, json?: object): Promise<Response<unknown>> {
  const res = await world.api().http[method](url, json ? { json } : {});
  world.lastResponse = res;
  return res;
}

When('the VM {string} is started by its name', GUEST_STEP, async function (this: VmanWorld, name: string) {
  const vm = expectStatus<{ id: string; state: string }>(await byName(this, 'post', `api/v1/vms/${name}/start`), 200, `start ${name} by its name`);
  expect(vm, 'the started VM').to.include({ id: this.idOf(name), state: 'running' });
  await rememberVm(this, name);
});

When('the VM {string} is stopped by its name', GUEST_STEP, async function (this: VmanWorld, name: string) {
  expectStatus(await byName(this, 'post', `api/v1/vms/${name}/stop`), 200, `stop ${name} by its name`);
});

When('the VM {string} is deleted by its name', async function (this: VmanWorld, name: string) {
  expectStatus(await byName(this, 'delete', `api/v1/vms/${name}`), 204, `delete ${name} by its name`);
});

When('the disk {string} is attached to the VM {string}, both given by name', GUEST_STEP, async function (this: VmanWorld, disk: string, vm: string) {
  const d = expectStatus<{ id: string; vm_id: string }>(await byName(this, 'post', `api/v1/disks/${disk}/attach`, { vm_id: vm }), 200, `attach ${disk} to ${vm} by name`);
  expect(d, 'the attached disk').to.include({ id: this.idOf(disk), vm_id: this.idOf(vm) });
});
