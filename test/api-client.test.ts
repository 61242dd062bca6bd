// The API for clients: filtered lists, lookups by name, ?wait=false, /ready,
// the OpenAPI document and the documentation page, ids in log lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildApp, type AppServices } from '../src/api/app.ts';
import { loadConfig } from '../src/config.ts';
import { DryRunOperator } from '../src/operator/dry-run-operator.ts';
import { createVman } from '../src/server.ts';
import { dryVman, eventually, type ApiResponse, type DryVman } from './helpers/dry-vman.ts';

const PROBLEM = /^application\/problem\+json/;

function ok(res: ApiResponse, status = 200): any {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw}`);
  return res.body;
}

function problem(res: ApiResponse, status: number, detail?: RegExp): any {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw}`);
  assert.match(res.type, PROBLEM);
  if (detail) assert.match(res.body.detail, detail);
  return res.body;
}

const names = (list: Array<{ name: string }>): string[] => list.map((x) => x.name).sort();

async function vm(v: DryVman, name: string, start = false): Promise<any> {
  const created = ok(await v.api('POST', '/api/v1/vms', { name, template: 'small' }), 201);
  if (start) ok(await v.api('POST', `/api/v1/vms/${created.id}/start`));
  return created;
}

describe('lists filtered by state and name', () => {
  it('GET /vms?state=&name= returns exactly the matching VMs', async (t) => {
    const v = await dryVman(t);
    await vm(v, 'web-1', true);
    await vm(v, 'web-2');
    await vm(v, 'db-1', true);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/vms?state=running&name=web'))), ['web-1']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/vms?name=web'))), ['web-1', 'web-2']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/vms?state=running'))), ['db-1', 'web-1']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/vms?state=stopped'))), []);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/vms'))), ['db-1', 'web-1', 'web-2']);
  });

  it('GET /disks?state=&name= and GET /templates?name= filter too', async (t) => {
    const v = await dryVman(t);
    const web = await vm(v, 'web', true);
    for (const name of ['data-1', 'data-2', 'logs']) ok(await v.api('POST', '/api/v1/disks', { name, size_gb: 1 }), 201);
    ok(await v.api('POST', '/api/v1/disks/data-1/attach', { vm_id: web.id }));
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/disks?state=attached&name=data'))), ['data-1']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/disks?state=available'))), ['data-2', 'logs']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/disks?name=data'))), ['data-1', 'data-2']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/templates?name=small'))), ['small']);
    assert.deepEqual(names(ok(await v.api('GET', '/api/v1/templates?name=nothing'))), []);
  });

  it('an unknown state is a 400 naming the allowed ones; an unknown key is a 400', async (t) => {
    const v = await dryVman(t);
    problem(await v.api('GET', '/api/v1/vms?state=sleeping'), 400, /"created", "starting", "running", "stopping", "stopped", "error", "saving" or "restoring", not "sleeping"/);
    problem(await v.api('GET', '/api/v1/disks?state=lost'), 400, /"available" or "attached", not "lost"/);
    problem(await v.api('GET', '/api/v1/vms?colour=red'), 400, /colour is unknown/);
    problem(await v.api('GET', '/api/v1/disks?vm=x'), 400, /vm is unknown/);
    problem(await v.api('GET', '/api/v1/templates?state=running'), 400, /state is unknown/);
  });
});

describe('lookups by id or name', () => {
  it('a VM is read, started, stopped, restarted and deleted by its name', async (t) => {
    const v = await dryVman(t);
    const web = await vm(v, 'web');
    assert.equal(ok(await v.api('GET', '/api/v1/vms/web')).id, web.id);
    assert.equal(ok(await v.api('POST', '/api/v1/vms/web/start')).state, 'running');
    assert.equal(ok(await v.api('POST', '/api/v1/vms/web/restart')).state, 'running');
    assert.equal(ok(await v.api('GET', '/api/v1/vms/web/console')).offset, 0);
    assert.equal(ok(await v.api('POST', '/api/v1/vms/web/stop')).state, 'stopped');
    assert.equal((await v.api('DELETE', '/api/v1/vms/web')).status, 204);
    assert.deepEqual(v.rows('SELECT id FROM vms'), []);
  });

  it('a disk is read, attached (to a VM given by name), detached and deleted by its name', async (t) => {
    const v = await dryVman(t);
    const web = await vm(v, 'web', true);
    const data = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    assert.equal(ok(await v.api('GET', '/api/v1/disks/data')).id, data.id);
    const attached = ok(await v.api('POST', '/api/v1/disks/data/attach', { vm_id: 'web' }));
    assert.deepEqual([attached.state, attached.vm_id], ['attached', web.id]);
    assert.equal(ok(await v.api('POST', '/api/v1/disks/data/detach')).state, 'available');
    assert.equal((await v.api('DELETE', '/api/v1/disks/data')).status, 204);
    assert.deepEqual(v.rows('SELECT id FROM disks'), []);
  });

  it('a template is read and deleted by its name', async (t) => {
    const v = await dryVman(t);
    const tpl = ok(await v.api('POST', '/api/v1/templates', { name: 'mine', cpus: 1, memory_mb: 256, kernel_path: v.kernel }), 201);
    assert.equal(ok(await v.api('GET', '/api/v1/templates/mine')).id, tpl.id);
    assert.equal((await v.api('DELETE', '/api/v1/templates/mine')).status, 204);
  });

  it('an id is tried before a name: a VM named like another VM\'s id is not the one found', async (t) => {
    const v = await dryVman(t);
    const first = await vm(v, 'first');
    ok(await v.api('POST', '/api/v1/vms', { name: first.id, template: 'small' }), 201);
    assert.equal(ok(await v.api('GET', `/api/v1/vms/${first.id}`)).name, 'first');
  });

  it('neither an id nor a name: 404 "no VM with id or name …", and nothing changes', async (t) => {
    const v = await dryVman(t);
    await vm(v, 'web');
    const before = v.rows('SELECT * FROM vms');
    problem(await v.api('POST', '/api/v1/vms/nobody/start'), 404, /^no VM with id or name "nobody"$/);
    problem(await v.api('GET', '/api/v1/disks/nothing'), 404, /^no disk with id or name "nothing"$/);
    problem(await v.api('GET', '/api/v1/templates/none'), 404, /^no template with id or name "none"$/);
    ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    problem(await v.api('POST', '/api/v1/disks/data/attach', { vm_id: 'nobody' }), 404, /no VM with id or name "nobody"/);
    assert.deepEqual(v.rows('SELECT * FROM vms'), before);
    assert.equal((v.rows('SELECT state FROM disks') as Array<{ state: string }>)[0]!.state, 'available');
  });
});

describe('?wait=false on start, stop and restart', () => {
  it('answers 202 at once with a Location and the VM starting; the start goes on to running', async (t) => {
    const v = await dryVman(t);
    const web = await vm(v, 'web');
    const res = await v.api('POST', `/api/v1/vms/${web.id}/start?wait=false`);
    assert.equal(ok(res, 202).state, 'starting');
    assert.equal(res.headers.location, `/api/v1/vms/${web.id}`);
    await eventually(async () => (await v.api('GET', `/api/v1/vms/${web.id}`)).body.state === 'running', 'web running');
  });

  it('stop and restart answer 202 with the VM stopping', async (t) => {
    const v = await dryVman(t);
    const web = await vm(v, 'web', true);
    const restart = await v.api('POST', '/api/v1/vms/web/restart?wait=false');
    assert.equal(ok(restart, 202).state, 'stopping');
    assert.equal(restart.headers.location, `/api/v1/vms/${web.id}`);
    await eventually(async () => (await v.api('GET', '/api/v1/vms/web')).body.state === 'running', 'web running again');
    assert.equal(ok(await v.api('POST', '/api/v1/vms/web/stop?wait=false&force=true'), 202).state, 'stopping');
    await eventually(async () => (await v.api('GET', '/api/v1/vms/web')).body.state === 'stopped', 'web stopped');
  });

  it('a failure in the background ends in state error with its reason (no unhandled rejection)', async (t) => {
    const v = await dryVman(t);
    const web = await vm(v, 'web');
    const unhandled: unknown[] = [];
    const note = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', note);
    t.after(() => process.off('unhandledRejection', note));
    v.operator.behaviour.failLaunch = 'boom';
    assert.equal(ok(await v.api('POST', `/api/v1/vms/${web.id}/start?wait=false`), 202).state, 'starting');
    const after = await eventually(async () => {
      const now = (await v.api('GET', `/api/v1/vms/${web.id}`)).body;
      return now.state === 'error' ? now : undefined;
    }, 'web in error');
    assert.match(after.state_reason, /boom/);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  });

  it('a refusal before the action is under way is still the answer (409, 404), not a 202', async (t) => {
    const v = await dryVman(t);
    await vm(v, 'web', true);
    problem(await v.api('POST', '/api/v1/vms/web/start?wait=false'), 409, /running/);
    problem(await v.api('POST', '/api/v1/vms/nobody/stop?wait=false'), 404);
  });

  it('wait=true or no wait answers 200 when done; any other value is a 400', async (t) => {
    const v = await dryVman(t);
    await vm(v, 'web');
    assert.equal(ok(await v.api('POST', '/api/v1/vms/web/start?wait=true')).state, 'running');
    for (const bad of ['no', '0', 'FALSE', '']) {
      problem(await v.api('POST', `/api/v1/vms/web/stop?wait=${bad}`), 400, /the query parameter wait must be "true" or "false"/);
    }
    assert.equal(ok(await v.api('GET', '/api/v1/vms/web')).state, 'running');
  });
});

describe('GET /ready', () => {
  it('is 200 {status: ready} when VMs can start, without the API token', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret' } });
    const res = await v.api('GET', '/ready');
    assert.deepEqual([res.status, res.body], [200, { status: 'ready' }]);
  });

  it('is a 503 problem naming the reason when QEMU is not usable; /health stays 200', async (t) => {
    const v = await dryVman(t);
    const host = { ...v.vman.host, dry_run: false, qemu_path: null, qemu_img_path: null, accelerator_reason: 'QEMU is not usable: /usr/bin/qemu-system-x86_64 is version 2.0.0' };
    const app = await buildApp({ ...(servicesOf(v)), host });
    t.after(() => app.close());
    const res = await app.inject({ method: 'GET', url: '/ready' });
    assert.equal(res.statusCode, 503);
    assert.match(String(res.headers['content-type']), PROBLEM);
    assert.match(JSON.parse(res.body).detail, /version 2\.0\.0/);
    assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
  });

  it('is a 503 problem when the storage folder is not writable', async (t) => {
    const v = await dryVman(t);
    const host = { ...v.vman.host, dry_run: false, qemu_path: '/usr/bin/qemu-system-x86_64', qemu_img_path: '/usr/bin/qemu-img' };
    const app = await buildApp({ ...(servicesOf(v)), host, storagePath: path.join(v.dir, 'no', 'such', 'folder') });
    t.after(() => app.close());
    const res = await app.inject({ method: 'GET', url: '/ready' });
    assert.equal(res.statusCode, 503, res.body);
    assert.match(JSON.parse(res.body).detail, /storage folder .* is not writable/);
  });

  it('takes GET and HEAD only: another method is a 405 with Allow', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('POST', '/ready');
    problem(res, 405);
    assert.equal(res.headers.allow, 'GET, HEAD, OPTIONS');
  });
});

function servicesOf(v: DryVman): AppServices {
  const x = v.vman as unknown as AppServices & { repairs?: unknown };
  // buildApp needs the same services vman's own app has; repairs and network are only called by their routes.
  return { templates: x.templates, vms: x.vms, disks: x.disks, observer: x.observer, host: v.vman.host } as unknown as AppServices;
}

describe('the OpenAPI document and the documentation page', () => {
  it('every operation has a summary and a unique camelCase operationId, and takes the bearer token but /health and /ready', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret' } });
    const doc = ok(await v.api('GET', '/api/v1/openapi.json'));
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: doc.components.securitySchemes.bearerAuth.description });
    assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
    const ids = new Set<string>();
    for (const [p, ops] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        assert.ok(op.summary, `${method} ${p} has a summary`);
        assert.match(op.operationId ?? '', /^[a-z][A-Za-z]+$/, `${method} ${p} has a camelCase operationId`);
        assert.ok(!ids.has(op.operationId), `${op.operationId} is unique`);
        ids.add(op.operationId);
        const open = p === '/health' || p === '/ready';
        assert.deepEqual(op.security, open ? [] : undefined, `${method} ${p}: ${open ? 'no token' : 'the document-wide bearer token'}`);
      }
    }
    for (const id of ['listVms', 'createVm', 'startVm', 'stopVm', 'restartVm', 'deleteVm', 'attachDisk', 'listDisks', 'ready']) assert.ok(ids.has(id), id);
  });

  it('the main operations carry examples of their bodies and answers', async (t) => {
    const v = await dryVman(t);
    const doc = ok(await v.api('GET', '/api/v1/openapi.json'));
    const json = (x: any) => x.content['application/json'];
    assert.deepEqual(json(doc.paths['/api/v1/vms'].post.requestBody).examples['example1'].value, { name: 'web', template: 'small' });
    assert.deepEqual(json(doc.paths['/api/v1/vms'].post.requestBody).examples['example2'].value, { name: 'web-2', from_snapshot: { vm: 'web', name: 'warm' } });
    assert.equal(json(doc.paths['/api/v1/vms'].post.responses['201']).example.state, 'running');
    assert.deepEqual(json(doc.paths['/api/v1/disks/{id}/attach'].post.requestBody).example, { vm_id: 'web' });
    assert.ok(json(doc.paths['/api/v1/vms/{id}/start'].post.responses['202']), 'start documents its 202');
    assert.ok(json(doc.paths['/api/v1/vms/{id}/start'].post.responses['504']), 'start documents its 504');
  });

  it('the document and the documentation page (with its own static files) are served without the token', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret' } });
    assert.equal((await v.api('GET', '/api/v1/openapi.json')).status, 200);
    const page = await v.vman.app.inject({ method: 'GET', url: '/api/v1/docs' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.doesNotMatch(page.body, /https?:\/\/(?!127\.0\.0\.1)[a-z]/i, 'no file from elsewhere (no CDN)');
    for (const file of ['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js']) {
      assert.equal((await v.vman.app.inject({ method: 'GET', url: `/api/v1/docs/static/${file}` })).statusCode, 200, file);
    }
    assert.equal((await v.api('GET', '/api/v1/vms')).status, 401, 'the data still takes the token');
  });
});

describe('log lines carry ids as fields', () => {
  it('vm_id and vm_name on the lines about a VM, disk_id on those about a disk, also on its request lines', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-api-test-'));
    const lines: Array<Record<string, unknown>> = [];
    const operator = new DryRunOperator();
    const vman = await createVman(loadConfig({
      VMAN_STORAGE_PATH: path.join(dir, 'storage'), VMAN_OPERATOR_DRY_RUN: '1', VMAN_OBSERVER_INTERVAL: '0', VMAN_GUEST_DIR: path.join(dir, 'no-guest'),
    }), { operator, logger: { level: 'info', stream: { write: (l: string) => void lines.push(JSON.parse(l)) } } });
    t.after(async () => {
      await vman.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const inject = async (method: 'GET' | 'POST', url: string, payload?: object) => JSON.parse((await vman.app.inject({ method, url, ...(payload ? { payload } : {}) })).body);
    const web = await inject('POST', '/api/v1/vms', { name: 'web', template: 'small' });
    await inject('POST', '/api/v1/vms/web/start');
    const data = await inject('POST', '/api/v1/disks', { name: 'data', size_gb: 1 });
    await inject('POST', '/api/v1/disks/data/attach', { vm_id: 'web' });
    const launched = lines.find((l) => /launched as pid/.test(String(l.msg)));
    assert.deepEqual([launched?.vm_id, launched?.vm_name], [web.id, 'web']);
    const plugged = lines.find((l) => /hot-plugged/.test(String(l.msg)));
    assert.deepEqual([plugged?.disk_id, plugged?.vm_id], [data.id, web.id]);
    const completed = lines.filter((l) => l.msg === 'request completed' && l.vm_id === web.id);
    assert.ok(completed.length >= 1, `a request line about web carries vm_id: ${JSON.stringify(lines.filter((l) => l.msg === 'request completed'))}`);
    // QEMU ending on its own: the runtime's line carries the id too.
    operator.vms.get(web.id)?.crash();
    const deadline = Date.now() + 5_000;
    const leftLine = () => lines.find((l) => /left running/.test(String(l.msg)));
    while (!leftLine() && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    const left = leftLine();
    assert.equal(left?.vm_id, web.id, `the line about web leaving running: ${JSON.stringify(lines.slice(-3))}`);
  });
});
