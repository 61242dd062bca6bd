// /api/v1/templates: the built-ins, creation and its refusals, deletion.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { dryVman, sharedDryVman, type DryVman, assertProblem } from './helpers/dry-vman.ts';



const templatesTable = (v: DryVman) => v.rows('SELECT * FROM templates ORDER BY id');

function body(v: DryVman, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'custom', cpus: 2, memory_mb: 256, kernel_path: v.kernel, ...over };
}

/** Posts a template that must be refused with `status`, and checks the templates table did not change. */
async function refused(v: DryVman, payload: unknown, status: number, detail?: RegExp, headers?: Record<string, string>) {
  const before = templatesTable(v);
  const res = await v.api('POST', '/api/v1/templates', payload as any, headers);
  assertProblem(res, status, detail);
  assert.deepEqual(templatesTable(v), before, 'a refused request changes no template');
  return res;
}

describe('templates API: built-ins', () => {
  it('lists small, medium and large from the start', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('GET', '/api/v1/templates');
    assert.equal(res.status, 200);
    const byName = new Map<string, any>(res.body.map((x: any) => [x.name, x]));
    for (const [name, cpus, mem] of [['small', 1, 512], ['medium', 2, 1024], ['large', 4, 2048]] as const) {
      const tpl = byName.get(name);
      assert.ok(tpl, `${name} is listed`);
      assert.equal(tpl.cpus, cpus);
      assert.equal(tpl.memory_mb, mem);
      assert.equal(tpl.builtin, true);
      assert.equal(typeof tpl.id, 'string');
      assert.equal(typeof tpl.kernel_path, 'string');
    }
    assert.equal(res.body.length, 3);
  });

  it('a built-in can be read by id', async (t) => {
    const v = await dryVman(t);
    const list = (await v.api('GET', '/api/v1/templates')).body;
    const small = list.find((x: any) => x.name === 'small');
    const res = await v.api('GET', `/api/v1/templates/${small.id}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, small);
  });
});

describe('templates API: create', () => {
  it('creates a template (201) that can then be read by id and is listed', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('POST', '/api/v1/templates', body(v, { name: 'web-1.x_y', cmdline: 'console=ttyS0 quiet' }));
    assert.equal(res.status, 201, res.raw);
    assert.match(res.type, /^application\/json/);
    const tpl = res.body;
    assert.equal(tpl.name, 'web-1.x_y');
    assert.equal(tpl.cpus, 2);
    assert.equal(tpl.memory_mb, 256);
    assert.equal(tpl.kernel_path, v.kernel);
    assert.equal(tpl.initrd_path, null);
    assert.equal(tpl.cmdline, 'console=ttyS0 quiet');
    assert.equal(tpl.base_image_path, null);
    assert.equal(tpl.base_image_format, null);
    assert.equal(tpl.builtin, false);
    assert.equal(typeof tpl.id, 'string');
    assert.ok(!Number.isNaN(Date.parse(tpl.created_at)), 'created_at is a date');

    const got = await v.api('GET', `/api/v1/templates/${tpl.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, tpl);
    const list = await v.api('GET', '/api/v1/templates');
    assert.equal(list.body.length, 4);
    assert.ok(list.body.some((x: any) => x.id === tpl.id));
    assert.equal(templatesTable(v).length, 4);
  });

  it('accepts the cpu and name boundaries (1 and 64 CPUs, a 63-character name)', async (t) => {
    const v = await dryVman(t);
    const a = await v.api('POST', '/api/v1/templates', body(v, { name: 'one', cpus: 1 }));
    assert.equal(a.status, 201, a.raw);
    const b = await v.api('POST', '/api/v1/templates', body(v, { name: 'sixtyfour', cpus: 64 }));
    assert.equal(b.status, 201, b.raw);
    const c = await v.api('POST', '/api/v1/templates', body(v, { name: 'n'.repeat(63) }));
    assert.equal(c.status, 201, c.raw);
  });

  it('refuses a duplicate name with 409', async (t) => {
    const v = await dryVman(t);
    assert.equal((await v.api('POST', '/api/v1/templates', body(v))).status, 201);
    await refused(v, body(v, { cpus: 4 }), 409, /custom/);
  });

  it('refuses the name of a built-in with 409', async (t) => {
    const v = await dryVman(t);
    await refused(v, body(v, { name: 'small' }), 409, /small/);
  });
});

// Every refusal below leaves the database as it was, so they share one vman;
// each uses a name of its own, so one wrongly accepted template cannot fail the others.
describe('templates API: malformed input is refused', () => {
  const shared = sharedDryVman();
  let n = 0;
  const unique = () => `refused-${++n}`;

  it('refuses a kernel_path that does not exist with 400', async () => {
    const v = shared();
    await refused(v, body(v, { name: unique(), kernel_path: path.join(v.dir, 'missing-kernel') }), 400, /kernel_path/);
  });

  it('refuses a kernel_path that is a folder with 400', async () => {
    const v = shared();
    await refused(v, body(v, { name: unique(), kernel_path: v.dir }), 400, /kernel_path/);
  });

  it('refuses a missing initrd file with 400', async () => {
    const v = shared();
    await refused(v, body(v, { name: unique(), initrd_path: path.join(v.dir, 'missing-initrd') }), 400, /initrd_path/);
  });

  it('refuses a relative path with 400', async () => {
    const v = shared();
    await refused(v, body(v, { name: unique(), kernel_path: 'vmlinuz-test' }), 400);
    await refused(v, body(v, { name: unique(), kernel_path: './vmlinuz-test' }), 400);
  });

  it('refuses a path that is not normalised with 400', async () => {
    const v = shared();
    const sneaky = path.join(v.dir, 'storage') + '/../' + path.basename(v.kernel);
    assert.ok(fs.existsSync(sneaky));
    await refused(v, body(v, { name: unique(), kernel_path: sneaky }), 400, /kernel_path/);
  });

  it('refuses a template with no boot source with 400', async () => {
    const v = shared();
    await refused(v, { name: unique(), cpus: 1, memory_mb: 128 }, 400, /kernel_path|base_image_path/);
    await refused(v, { name: unique(), cpus: 1, memory_mb: 128, kernel_path: null }, 400);
  });

  it('refuses a cmdline without a kernel with 400', async () => {
    const v = shared();
    const image = path.join(v.dir, 'base.raw');
    fs.writeFileSync(image, '');
    await refused(v, { name: unique(), cpus: 1, memory_mb: 128, base_image_path: image }, 400, /base_image_format/);
    await refused(v, { name: unique(), cpus: 1, memory_mb: 128, base_image_path: image, base_image_format: 'raw', cmdline: 'quiet' }, 400, /cmdline/);
  });

  for (const [label, cpus] of [['0', 0], ['65', 65], ['"2" (a string)', '2'], ['1.5', 1.5], ['-1', -1], ['null', null]] as const) {
    it(`refuses cpus ${label} with 400`, async () => {
      const v = shared();
      await refused(v, body(v, { name: unique(), cpus }), 400, /cpus/);
    });
  }

  it('refuses memory_mb below 64, or a string, with 400', async () => {
    const v = shared();
    await refused(v, body(v, { name: unique(), memory_mb: 63 }), 400, /memory_mb/);
    await refused(v, body(v, { name: unique(), memory_mb: '512' }), 400, /memory_mb/);
  });

  it('refuses a missing required field with 400 naming it', async () => {
    const v = shared();
    await refused(v, { name: unique(), cpus: 1, kernel_path: v.kernel }, 400, /memory_mb/);
    await refused(v, { cpus: 1, memory_mb: 128, kernel_path: v.kernel }, 400, /name/);
  });

  it('refuses an unknown extra field with 400 naming it', async () => {
    const v = shared();
    const res = await refused(v, body(v, { name: unique(), disk_gb: 10 }), 400, /disk_gb/);
    assert.ok(Array.isArray(res.body.errors), 'the problem lists the errors');
    assert.ok(res.body.errors.some((e: any) => /disk_gb/.test(e.message)));
  });

  it('refuses a malformed JSON body with a 400 problem+json', async () => {
    const v = shared();
    await refused(v, '{"name": "broken", "cpus": ', 400, undefined, { 'content-type': 'application/json' });
  });

  it('refuses a body that is not an object with 400', async () => {
    const v = shared();
    await refused(v, '[1, 2]', 400, undefined, { 'content-type': 'application/json' });
    await refused(v, 'null', 400, undefined, { 'content-type': 'application/json' });
  });

  const badNames: Array<[string, string]> = [
    ['a slash', 'a/b'],
    ['a leading slash', '/etc'],
    ['..', '..'],
    ['a ".." inside', 'a..b'],
    ['a leading dot', '.hidden'],
    ['a leading dash', '-x'],
    ['a space', 'my template'],
    ['a control character', 'tab\there'],
    ['a newline', 'line\nbreak'],
    ['a comma', 'a,b'],
    ['64 characters', 'n'.repeat(64)],
    ['200 characters', 'n'.repeat(200)],
    ['nothing', ''],
    ['non-ASCII letters', 'tëmplate'],
  ];
  for (const [label, name] of badNames) {
    it(`refuses a name with ${label} with 400`, async () => {
      const v = shared();
      await refused(v, body(v, { name }), 400);
    });
  }
});

describe('templates API: get and delete', () => {
  it('an unknown id is 404 for GET and DELETE', async (t) => {
    const v = await dryVman(t);
    assertProblem(await v.api('GET', '/api/v1/templates/tpl-nope'), 404, /tpl-nope/);
    const before = templatesTable(v);
    assertProblem(await v.api('DELETE', '/api/v1/templates/tpl-nope'), 404, /tpl-nope/);
    assert.deepEqual(templatesTable(v), before);
  });

  it('deletes a template (204), after which GET is 404', async (t) => {
    const v = await dryVman(t);
    const tpl = (await v.api('POST', '/api/v1/templates', body(v))).body;
    const del = await v.api('DELETE', `/api/v1/templates/${tpl.id}`);
    assert.equal(del.status, 204);
    assert.equal(del.raw, '');
    assertProblem(await v.api('GET', `/api/v1/templates/${tpl.id}`), 404);
    assert.equal(templatesTable(v).length, 3);
    assertProblem(await v.api('DELETE', `/api/v1/templates/${tpl.id}`), 404);
    // The name is free again.
    assert.equal((await v.api('POST', '/api/v1/templates', body(v))).status, 201);
  });

  it('refuses to delete a built-in with 409', async (t) => {
    const v = await dryVman(t);
    const list = (await v.api('GET', '/api/v1/templates')).body;
    for (const b of list) {
      const before = templatesTable(v);
      assertProblem(await v.api('DELETE', `/api/v1/templates/${b.id}`), 409, new RegExp(b.name));
      assert.deepEqual(templatesTable(v), before);
    }
  });

  it('refuses to delete a template a VM uses with 409, and allows it once the VM is gone', async (t) => {
    const v = await dryVman(t);
    const tpl = (await v.api('POST', '/api/v1/templates', body(v))).body;
    const vm = await v.api('POST', '/api/v1/vms', { name: 'user', template: tpl.id });
    assert.equal(vm.status, 201, vm.raw);
    const before = templatesTable(v);
    assertProblem(await v.api('DELETE', `/api/v1/templates/${tpl.id}`), 409, /VM/);
    assert.deepEqual(templatesTable(v), before);
    assert.equal((await v.api('GET', `/api/v1/templates/${tpl.id}`)).status, 200);

    assert.equal((await v.api('DELETE', `/api/v1/vms/${vm.body.id}`)).status, 204);
    assert.equal((await v.api('DELETE', `/api/v1/templates/${tpl.id}`)).status, 204);
  });
});
