import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config.ts';
import { dryVman } from './helpers/dry-vman.ts';

describe('security defaults', () => {
  test('vman listens on 127.0.0.1:8600 unless told otherwise', () => {
    assert.deepEqual(loadConfig({}).listen, { host: '127.0.0.1', port: 8600 });
    assert.deepEqual(loadConfig({ VMAN_LISTEN: '0.0.0.0:9000' }).listen, { host: '0.0.0.0', port: 9000 });
    assert.throws(() => loadConfig({ VMAN_LISTEN: 'nowhere' }), /VMAN_LISTEN/);
  });

  test('with VMAN_API_TOKEN set, every request but /health needs the token', async (t) => {
    const v = await dryVman(t, { env: { VMAN_API_TOKEN: 's3cret' } });
    assert.equal((await v.api('GET', '/health')).status, 200);
    const refused = await v.api('GET', '/api/v1/vms');
    assert.equal(refused.status, 401);
    assert.match(refused.type, /application\/problem\+json/);
    assert.equal((await v.api('GET', '/api/v1/vms', undefined, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await v.api('GET', '/api/v1/vms', undefined, { authorization: 'Bearer s3cret' })).status, 200);
    const create = await v.api('POST', '/api/v1/vms', { name: 'x', template: 'small' });
    assert.equal(create.status, 401, 'a refused request');
    assert.deepEqual(v.rows('SELECT id FROM vms'), [], 'changes nothing');
  });

  test('without a token the API is open (on loopback by default)', async (t) => {
    const v = await dryVman(t);
    assert.equal((await v.api('GET', '/api/v1/vms')).status, 200);
  });

  test('storage folders and the database are readable by vman\'s user only', async (t) => {
    const v = await dryVman(t);
    const mode = (p: string): number => statSync(p).mode & 0o777;
    assert.equal(mode(path.join(v.config.storagePath, 'vms')), 0o700);
    assert.equal(mode(path.join(v.config.storagePath, 'disks')), 0o700);
    assert.equal(mode(v.config.dbPath), 0o600);
    const vm = await v.api('POST', '/api/v1/vms', { name: 'x', template: 'small' });
    assert.equal(mode(vm.body.storage_dir), 0o700);
  });
});
