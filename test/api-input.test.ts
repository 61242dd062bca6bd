// What vman does with input it cannot take: its own JSON reader (duplicate
// keys, keys that poison objects), 405 with Allow, OPTIONS and HEAD, problems
// that name the field and the rule, control characters and commas, the API
// token on every route, and URLs longer than vman reads (over a real socket).
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { keyFlaw, parseJsonBody } from '../src/api/json-body.ts';
import { describeValidation } from '../src/api/problem.ts';
import { assertProblem, dryVman, sharedDryVman } from './helpers/dry-vman.ts';

const JSON_TYPE = { 'content-type': 'application/json' };

describe('the JSON body reader', () => {
  it('finds a key given twice, also escaped, also nested, and nothing in bodies without one', () => {
    assert.deepEqual(keyFlaw('{"name":"a","name":"b"}'), { kind: 'duplicate', key: 'name', path: [] });
    assert.deepEqual(keyFlaw('{"name":"a","\\u006eame":"b"}'), { kind: 'duplicate', key: 'name', path: [] });
    assert.deepEqual(keyFlaw('{"a":{"b":1,"b":2}}'), { kind: 'duplicate', key: 'b', path: ['a'] });
    assert.deepEqual(keyFlaw('{"a":[{"b":1},{"b":2,"b":3}]}'), { kind: 'duplicate', key: 'b', path: ['a'] });
    // The same key in two objects, a value equal to a key, and quotes and braces inside strings are fine.
    assert.equal(keyFlaw('{"a":{"x":1},"b":{"x":1},"c":"a","d":"}{\\",","e":["a","a"]}'), undefined);
    assert.equal(keyFlaw('[1,"x",{"k":1},{"k":2}]'), undefined);
  });

  it('finds __proto__, constructor and prototype at any depth', () => {
    assert.deepEqual(keyFlaw('{"__proto__":{"x":1}}'), { kind: 'forbidden', key: '__proto__', path: [] });
    assert.deepEqual(keyFlaw('{"a":{"constructor":{"prototype":{}}}}'), { kind: 'forbidden', key: 'constructor', path: ['a'] });
    assert.deepEqual(keyFlaw('{"a":[{"prototype":1}]}'), { kind: 'forbidden', key: 'prototype', path: ['a'] });
    assert.deepEqual(keyFlaw('{"\\u005f_proto__":1}'), { kind: 'forbidden', key: '__proto__', path: [] });
    assert.equal(keyFlaw('{"name":"__proto__"}'), undefined, 'as a value it is only text');
  });

  it('reads an empty body as none, refuses text that is not JSON, and returns the value otherwise', () => {
    assert.equal(parseJsonBody(''), undefined);
    assert.deepEqual(parseJsonBody('{"a":[1,null]}'), { a: [1, null] });
    assert.throws(() => parseJsonBody('{"a":'), /the body is not valid JSON/);
    assert.throws(() => parseJsonBody('{"a":1} {}'), /the body is not valid JSON/);
    assert.throws(() => parseJsonBody('{"a":1,"a":1}'), /the key "a" twice/);
    assert.throws(() => parseJsonBody('{"x":{"__proto__":{}}}'), /the key "__proto__" \(in "x"\)/);
  });
});

describe('validation problems name the field and the rule', () => {
  it('merges the alternatives of a union into what the field may be', () => {
    const errors = describeValidation([
      { keyword: 'type', instancePath: '/force', params: { type: 'boolean' } },
      { keyword: 'type', instancePath: '', params: { type: 'null' } },
      { keyword: 'anyOf', instancePath: '', params: {} },
    ], 'body', { force: 1 });
    assert.deepEqual(errors, [{ path: '/force', message: 'force must be true or false, not a whole number' }]);
    const root = describeValidation([
      { keyword: 'type', instancePath: '', params: { type: 'object' } },
      { keyword: 'type', instancePath: '', params: { type: 'null' } },
      { keyword: 'anyOf', instancePath: '', params: {} },
    ], 'body', [1]);
    assert.deepEqual(root, [{ path: '/', message: 'the body must be a JSON object or null, not a list' }]);
    const query = describeValidation([
      { keyword: 'const', instancePath: '/force', params: { allowedValue: 'true' } },
      { keyword: 'const', instancePath: '/force', params: { allowedValue: 'false' } },
      { keyword: 'anyOf', instancePath: '/force', params: {} },
    ], 'querystring', { force: '1' });
    assert.deepEqual(query, [{ path: '/force', message: 'the query parameter force must be "true" or "false", not "1"' }]);
  });

  const v = sharedDryVman();

  for (const [label, body, pattern] of [
    ['a name with a space', { name: 'a b', template: 'small' }, /^invalid body: name must be 1 to 63 ASCII letters/],
    ['a non-ASCII name', { name: 'wéb', template: 'small' }, /name must be 1 to 63 ASCII letters/],
    ['a name with two dots', { name: 'a..b', template: 'small' }, /name .*without "\.\."/],
    ['a missing field', { name: 'web' }, /the field "template" is missing/],
    ['an unknown field', { name: 'web', template: 'small', colour: 'blue' }, /the field "colour" is unknown/],
    ['a control character in the template', { name: 'web', template: 'small\u0007' }, /template must not contain control characters/],
    ['a name of the wrong type', { name: 42, template: 'small' }, /name must be text, not a whole number/],
  ] as const) {
    it(`a VM create with ${label} is a 400 naming it`, async () => {
      const res = await v().api('POST', '/api/v1/vms', body);
      assertProblem(res, 400, pattern);
      assert.deepEqual(v().rows('SELECT id FROM vms'), []);
    });
  }

  it('a template named like a template id is a 400 naming the name', async () => {
    const res = await v().api('POST', '/api/v1/templates', { name: 'tpl-small', cpus: 1, memory_mb: 256, kernel_path: v().kernel });
    assertProblem(res, 400, /name .*not starting with "tpl-"/);
  });

  it('an id with a control character in the path is a 400 naming the id', async () => {
    for (const url of ['/api/v1/vms/vm-1%00', '/api/v1/disks/d%07/detach', '/api/v1/templates/t%1B', '/api/v1/vms/x%7F/start']) {
      const method = url.endsWith('detach') || url.endsWith('start') ? 'POST' : 'GET';
      assertProblem(await v().api(method, url), 400, /the id in the path must not contain control characters/);
    }
  });

  it('a body sent as another type than JSON is a 415 naming the type', async () => {
    for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'application/problem+json']) {
      const res = await v().api('POST', '/api/v1/vms', '{"name":"web","template":"small"}', { 'content-type': type });
      assertProblem(res, 415, new RegExp(`not as "${type.replace(/[+/]/g, '\\$&')}"`));
    }
    const none = await v().vman.app.inject({ method: 'POST', url: '/api/v1/vms', payload: '{"name":"web","template":"small"}', headers: { 'content-type': '' } });
    assert.equal(none.statusCode, 415);
    assert.match(none.json().detail, /this one has no content type/);
  });
});

describe('keys given twice and keys that poison objects', () => {
  const v = sharedDryVman();

  it('a key given twice is a 400 naming it, and nothing is created', async () => {
    const res = await v().api('POST', '/api/v1/vms', '{"name":"a","template":"small","name":"b"}', JSON_TYPE);
    assertProblem(res, 400, /the key "name" twice/);
    assert.equal(res.body.type, 'urn:vman:problem:duplicate-key');
    assert.deepEqual(v().rows('SELECT id FROM vms'), []);
  });

  for (const [key, payload] of [['__proto__', { polluted: true }], ['constructor', { prototype: { polluted: true } }], ['prototype', { polluted: true }]] as const) {
    it(`a "${key}" key is a 400 naming it, on every body, and Object.prototype stays as it was`, async () => {
      const before = Object.getOwnPropertyNames(Object.prototype).sort();
      const vm = (await v().api('POST', '/api/v1/vms', { name: `v-${key.replace(/_/g, '')}`, template: 'small' })).body;
      for (const [url, rest] of [
        ['/api/v1/templates', `"name":"t","cpus":1,"memory_mb":256,"kernel_path":${JSON.stringify(v().kernel)}`],
        ['/api/v1/vms', '"name":"x","template":"small"'],
        ['/api/v1/disks', '"name":"d","size_gb":1'],
        [`/api/v1/vms/${vm.id}/start`, ''],
        [`/api/v1/vms/${vm.id}/stop`, '"force":true'],
        [`/api/v1/disks/disk-x/attach`, `"vm_id":"${vm.id}"`],
      ] as const) {
        const body = `{${JSON.stringify(key)}:${JSON.stringify(payload)}${rest ? `,${rest}` : ''}}`;
        const res = await v().api('POST', url, body, JSON_TYPE);
        assertProblem(res, 400, new RegExp(`the key "${key}"`));
      }
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), before);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.deepEqual(v().rows("SELECT name FROM vms WHERE name = 'x' UNION ALL SELECT name FROM templates WHERE name = 't' UNION ALL SELECT name FROM disks"), []);
      assert.equal((v().rows('SELECT state FROM vms WHERE id = ?', vm.id)[0] as { state: string }).state, 'created');
    });
  }

  it('an empty body sent as JSON is no body: an action without options runs', async () => {
    const vm = (await v().api('POST', '/api/v1/vms', { name: 'empty-body', template: 'small' })).body;
    const res = await v().api('POST', `/api/v1/vms/${vm.id}/start`, '', JSON_TYPE);
    assert.equal(res.status, 200, res.raw);
    assert.equal((await v().api('POST', `/api/v1/vms/${vm.id}/stop`, '', JSON_TYPE)).status, 200);
    assertProblem(await v().api('POST', '/api/v1/vms', '', JSON_TYPE), 400, /the body must be a JSON object, not nothing/);
  });
});

describe('methods: 405 with Allow, OPTIONS, HEAD', () => {
  const v = sharedDryVman();

  for (const [method, url, allow] of [
    ['PUT', '/api/v1/vms', 'GET, HEAD, POST, OPTIONS'],
    ['DELETE', '/api/v1/disks', 'GET, HEAD, POST, OPTIONS'],
    ['PATCH', '/api/v1/templates/tpl-small', 'GET, HEAD, DELETE, OPTIONS'],
    ['GET', '/api/v1/vms/vm-1/start', 'POST, OPTIONS'],
    ['POST', '/health', 'GET, HEAD, OPTIONS'],
  ] as const) {
    it(`${method} ${url} is a 405 listing ${allow}`, async () => {
      const res = await v().api(method, url);
      assertProblem(res, 405, new RegExp(`${method} is not a method of`));
      assert.equal(res.headers.allow, allow);
    });
  }

  it('a method a path does not take is 405 whatever the body (not 415)', async () => {
    const res = await v().api('PUT', '/api/v1/vms', 'x=1', { 'content-type': 'text/plain' });
    assertProblem(res, 405);
  });

  it('OPTIONS on a served path is a 204 with Allow; on a path vman does not serve, a 404', async () => {
    const res = await v().api('OPTIONS', '/api/v1/vms/vm-1');
    assert.equal(res.status, 204);
    assert.equal(res.raw, '');
    assert.equal(res.headers.allow, 'GET, HEAD, DELETE, OPTIONS');
    assertProblem(await v().api('OPTIONS', '/api/v1/volumes'), 404);
  });

  it('HEAD answers as GET does, without a body', async () => {
    for (const url of ['/health', '/api/v1/vms', '/api/v1/templates/small', '/api/v1/vms/vm-000000000000']) {
      const [head, get] = [await v().api('HEAD', url), await v().api('GET', url)];
      assert.equal(head.status, get.status, url);
      assert.equal(head.type, get.type, url);
      assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.raw)), url);
      assert.equal(head.raw, '', url);
    }
  });

  it('a path vman does not serve stays a 404, naming the path', async () => {
    assertProblem(await v().api('DELETE', '/api/v1/volumes'), 404, /no route for DELETE \/api\/v1\/volumes/);
  });
});

describe('template paths', () => {
  const v = sharedDryVman();

  for (const field of ['kernel_path', 'initrd_path', 'base_image_path'] as const) {
    it(`a comma or a control character in ${field} is a 400 naming it, even for a file that exists`, async () => {
      for (const name of [`f,${field}`, `f\u0007${field}`, `f\u007f${field}`]) {
        const file = path.join(v().dir, name);
        fs.writeFileSync(file, 'x');
        const body = { name: 'odd', cpus: 1, memory_mb: 256, kernel_path: v().kernel, [field]: file, ...(field === 'base_image_path' ? { base_image_format: 'qcow2' } : {}) };
        assertProblem(await v().api('POST', '/api/v1/templates', body), 400, new RegExp(`${field} must be an absolute path \\(starting with "/"\\) without commas or control characters`));
      }
    });
  }

  it('"=" and ":" in a path are taken as they are', async () => {
    const file = path.join(v().dir, 'boot=a:b');
    fs.writeFileSync(file, 'x');
    const res = await v().api('POST', '/api/v1/templates', { name: 'sep', cpus: 1, memory_mb: 256, kernel_path: file, initrd_path: file });
    assert.equal(res.status, 201, res.raw);
    assert.equal(res.body.kernel_path, file);
  });
});

describe('the API token on every route', () => {
  it('every route of the OpenAPI document, HEAD and OPTIONS too, is a 401 with a Bearer challenge without the token or with a wrong one', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret' } });
    const doc = (await v.api('GET', '/api/v1/openapi.json', undefined, { authorization: 'Bearer s3cret' })).body;
    const requests = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => [m.toUpperCase(), p.replace('{id}', 'x')] as const));
    requests.push(['GET', '/api/v1/openapi.json'], ['OPTIONS', '/api/v1/vms'], ['PUT', '/api/v1/vms'], ['GET', '/api/v1/nope']);
    assert.ok(requests.length > 20, `${requests.length} requests`);
    for (const [method, url] of requests) {
      for (const authorization of [undefined, 'Bearer wrong', 'Basic s3cret', 's3cret', 'Bearer s3cret ']) {
        const res = await v.api(method as 'GET', url, undefined, authorization ? { authorization } : undefined);
        // Public: whether vman answers, whether it can start VMs, and what its API is.
        if (url === '/health' || url === '/ready' || url === '/api/v1/openapi.json') {
          assert.notEqual(res.status, 401, `${method} ${url}`);
          continue;
        }
        assert.equal(res.status, 401, `${method} ${url} with ${authorization}`);
        assert.equal(res.headers['www-authenticate'], authorization === undefined ? 'Bearer realm="vman"' : 'Bearer realm="vman", error="invalid_token"');
        if (method !== 'HEAD') assertProblem(res, 401);
      }
    }
    assert.equal((await v.api('GET', '/api/v1/vms', undefined, { authorization: 'bearer s3cret' })).status, 200, 'the scheme is case-insensitive');
    assert.equal((await v.api('GET', '/api/v1/vms', undefined, { authorization: 'Bearer S3CRET' })).status, 401, 'the token is not');
    assert.deepEqual(v.rows('SELECT id FROM vms'), []);
  });
});

describe('URLs longer than vman reads', () => {
  /** GET over a real socket (inject skips Node's HTTP parser, which refuses these). */
  function get(base: string, urlPath: string): Promise<{ status: number; type: string; body: any }> {
    const u = new URL(base);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: urlPath, agent: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('is a 414 problem: a segment the router cannot read, a request line Node will not read', async (t) => {
    const v = await dryVman(t, { env: { VMAN_LISTEN: '127.0.0.1:0' } });
    const base = await v.vman.listen();
    for (const [urlPath, detail] of [
      [`/api/v1/vms/${'a'.repeat(10_000)}`, /segment of the path is longer than the 8192 characters/],
      [`/api/v1/vms/${'a'.repeat(20_000)}`, /the URL is longer than the 16384 bytes/],
      [`/api/v1/vms?name=${'a'.repeat(100_000)}`, /the URL is longer than the 16384 bytes/],
    ] as const) {
      const res = await get(base, urlPath);
      assert.equal(res.status, 414, `${urlPath.length} characters`);
      assert.match(res.type, /^application\/problem\+json/);
      assert.equal(res.body.status, 414);
      assert.match(res.body.detail, detail);
    }
    // vman still serves afterwards.
    assert.equal((await get(base, '/health')).status, 200);
  });
});
