// /health, /api/v1/host, the OpenAPI document and problem+json for unknown routes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dryVman } from './helpers/dry-vman.ts';

const PROBLEM = /^application\/problem\+json/;

function assertProblem(body: any, status: number): void {
  assert.equal(typeof body.type, 'string');
  assert.ok(body.type.length > 0);
  assert.equal(typeof body.title, 'string');
  assert.ok(body.title.length > 0);
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, 'string');
  assert.ok(body.detail.length > 0);
}

describe('system API', () => {
  it('GET /health answers 200 {status: ok}', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('GET', '/health');
    assert.equal(res.status, 200);
    assert.match(res.type, /^application\/json/);
    assert.deepEqual(res.body, { status: 'ok' });
  });

  it('GET /api/v1/host says it is a dry run', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('GET', '/api/v1/host');
    assert.equal(res.status, 200);
    assert.equal(res.body.dry_run, true);
    assert.equal(res.body.qemu_path, null);
    assert.equal(typeof res.body.accelerator, 'string');
    assert.equal(typeof res.body.accelerator_reason, 'string');
    assert.equal(typeof res.body.host_kernel, 'string');
  });

  it('GET /api/v1/openapi.json is an OpenAPI 3 document of the template and VM paths', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('GET', '/api/v1/openapi.json');
    assert.equal(res.status, 200);
    const doc = res.body;
    assert.match(doc.openapi, /^3\./);
    assert.equal(typeof doc.info?.title, 'string');
    const paths = Object.keys(doc.paths ?? {});
    for (const p of [
      '/health',
      '/api/v1/host',
      '/api/v1/templates',
      '/api/v1/templates/{id}',
      '/api/v1/vms',
      '/api/v1/vms/{id}',
      '/api/v1/vms/{id}/start',
      '/api/v1/vms/{id}/stop',
      '/api/v1/vms/{id}/restart',
    ]) {
      assert.ok(paths.includes(p), `${p} is missing from the OpenAPI paths: ${paths.join(', ')}`);
    }
    assert.ok(doc.paths['/api/v1/templates'].post, 'POST /api/v1/templates is documented');
    assert.ok(doc.paths['/api/v1/vms/{id}'].delete, 'DELETE /api/v1/vms/{id} is documented');
    assert.ok(doc.paths['/api/v1/vms/{id}/start'].post, 'POST /api/v1/vms/{id}/start is documented');
    assert.ok(!paths.includes('/api/v1/openapi.json'), 'the document does not list itself');
  });

  it('an unknown route is a 404 problem+json', async (t) => {
    const v = await dryVman(t);
    for (const [method, url] of [['GET', '/api/v1/nope'], ['POST', '/api/v1/vms/x/explode'], ['GET', '/nothing?x=1']] as const) {
      const res = await v.api(method, url);
      assert.equal(res.status, 404, `${method} ${url}`);
      assert.match(res.type, PROBLEM);
      assertProblem(res.body, 404);
      assert.ok(res.body.detail.includes(url.split('?')[0]!), res.body.detail);
    }
  });

  it('a body too large is a 413 problem+json', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('POST', '/api/v1/templates', JSON.stringify({ name: 'x'.repeat(70 * 1024) }), { 'content-type': 'application/json' });
    assert.equal(res.status, 413);
    assert.match(res.type, PROBLEM);
    assertProblem(res.body, 413);
  });

  it('a body that is not JSON is a 415 problem+json naming the type', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('POST', '/api/v1/templates', 'name=x', { 'content-type': 'text/plain' });
    assert.equal(res.status, 415);
    assert.match(res.type, PROBLEM);
    assertProblem(res.body, 415);
    assert.match(res.body.detail, /not as "text\/plain"/);
  });

  // Errors Fastify's router raises before any route runs must be problem+json too.
  it('an id longer than any vman hands out is a 400 problem+json naming the id', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('GET', `/api/v1/vms/vm-${'a'.repeat(200)}`);
    assert.equal(res.status, 400);
    assert.match(res.type, PROBLEM, `content-type ${res.type}: ${res.raw}`);
    assertProblem(res.body, 400);
    assert.match(res.body.detail, /the id in the path must be at most 128 characters long/);
  });

  it('a badly percent-encoded path is a 400 problem+json', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('GET', '/api/v1/vms/%E0%A4%A');
    assert.equal(res.status, 400);
    assert.match(res.type, PROBLEM, `content-type ${res.type}: ${res.raw}`);
    assertProblem(res.body, 400);
  });

  it('a wrong method on a known path is a 405 problem+json with Allow', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('PUT', '/api/v1/templates');
    assert.equal(res.status, 405);
    assert.match(res.type, PROBLEM);
    assertProblem(res.body, 405);
    assert.equal(res.headers.allow, 'GET, HEAD, POST, OPTIONS');
  });
});

describe('a host without QEMU', () => {
  it('vman still serves, says why, and refuses starts with 503 without changing the VM', async (t) => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { loadConfig } = await import('../src/config.ts');
    const { createVman } = await import('../src/server.ts');
    const dir = mkdtempSync(`${(await import('node:os')).tmpdir()}/vman-api-test-`);
    const vman = await createVman(loadConfig({ VMAN_STORAGE_PATH: dir, VMAN_GUEST_DIR: `${dir}/no-guest`, VMAN_OBSERVER_INTERVAL: '0' }));
    t.after(async () => {
      await vman.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const host = (await vman.app.inject({ method: 'GET', url: '/api/v1/host' })).json();
    assert.equal(host.accelerator, 'none');
    assert.match(host.accelerator_reason, /not usable/);
    const vm = (await vman.app.inject({ method: 'POST', url: '/api/v1/vms', payload: { name: 'a', template: 'small' } })).json();
    const start = await vman.app.inject({ method: 'POST', url: `/api/v1/vms/${vm.id}/start` });
    assert.equal(start.statusCode, 503);
    assert.match(start.headers['content-type'] as string, /problem\+json/);
    assert.equal(vman.db.vms.get(vm.id)?.state, 'created');
  });
});
