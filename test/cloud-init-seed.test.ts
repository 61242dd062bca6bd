// The cloud-init seed: what it says (meta-data with the hostname and keys,
// user-data as given), an ISO labelled cidata, made again only when what it
// says changes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { seedFiles, writeSeed } from '../src/operator/cloud-init-seed.ts';
import { assertProblem, dryVman } from './helpers/dry-vman.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEjhDmPl1Xb0MGH2Fbdc4bC0d3ZT3O7Cj0zg3Bq8W4vA test@host';
const hasGenisoimage = fs.existsSync('/usr/bin/genisoimage');

describe('cloud-init seed', () => {
  it('says the instance, the hostname and the keys in meta-data, and passes user-data through as given', () => {
    const f = seedFiles({ instanceId: 'vm-1', hostname: 'web', sshKeys: [KEY], userData: '#cloud-config\npackages: [htop]\n' });
    assert.deepEqual(JSON.parse(f['meta-data']), { 'instance-id': 'vm-1', 'local-hostname': 'web', 'public-keys': [KEY] });
    assert.equal(f['user-data'], '#cloud-config\npackages: [htop]\n');
    assert.equal(seedFiles({ instanceId: 'vm-1', hostname: 'web', sshKeys: [], userData: null })['user-data'], '#cloud-config\n{}\n');
  });

  it('is an ISO labelled cidata, made again only when what it says changes', { skip: hasGenisoimage ? false : 'genisoimage is not installed' }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-seed-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const content = { instanceId: 'vm-1', hostname: 'web', sshKeys: [KEY], userData: null };
    const iso = await writeSeed(dir, content);
    assert.match(execFileSync('isoinfo', ['-d', '-i', iso]).toString(), /Volume id: cidata/);
    assert.match(execFileSync('isoinfo', ['-i', iso, '-R', '-x', '/meta-data']).toString(), /"local-hostname": "web"/);
    const made = fs.statSync(iso).mtimeMs;
    await writeSeed(dir, content);
    assert.equal(fs.statSync(iso).mtimeMs, made, 'the same content is not made again');
    await writeSeed(dir, { ...content, sshKeys: [] });
    assert.doesNotMatch(execFileSync('isoinfo', ['-i', iso, '-R', '-x', '/meta-data']).toString(), /ssh-ed25519/);
  });
});

describe('VMs and templates with keys, user-data and readiness', () => {
  it('a VM keeps its keys and user-data, and its seed has its name, its template\'s keys and its own', async (t) => {
    const v = await dryVman(t);
    const other = KEY.replace('test@host', 'other@host');
    const tpl = await v.api('POST', '/api/v1/templates', { name: 'keyed', cpus: 1, memory_mb: 128, kernel_path: v.kernel, ssh_keys: [other] });
    assert.equal(tpl.status, 201, tpl.raw);
    assert.deepEqual(tpl.body.ssh_keys, [other]);
    assert.equal(tpl.body.readiness, 'agent');
    const vm = await v.api('POST', '/api/v1/vms', { name: 'web', template: 'keyed', ssh_keys: [KEY], user_data: '#cloud-config\n{}\n' });
    assert.equal(vm.status, 201, vm.raw);
    const meta = JSON.parse(fs.readFileSync(path.join(vm.body.storage_dir, 'seed', 'meta-data'), 'utf8'));
    assert.deepEqual(meta, { 'instance-id': vm.body.id, 'local-hostname': 'web', 'public-keys': [other, KEY] });
    assert.ok(fs.existsSync(path.join(vm.body.storage_dir, 'seed.iso')));
  });

  it('refuses a key that is not an OpenSSH public key, serial readiness without a pattern, and a pattern that is not one', async (t) => {
    const v = await dryVman(t);
    assertProblem(await v.api('POST', '/api/v1/vms', { name: 'web', template: 'small', ssh_keys: ['not a key'] }), 400, /ssh_keys/);
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 's', cpus: 1, memory_mb: 128, kernel_path: v.kernel, readiness: 'serial' }), 400, /readiness serial needs ready_pattern/);
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 's', cpus: 1, memory_mb: 128, kernel_path: v.kernel, readiness: 'serial', ready_pattern: '(' }), 400, /ready_pattern is not a regular expression/);
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 's', cpus: 1, memory_mb: 128, kernel_path: v.kernel, ready_pattern: 'x' }), 400, /ready_pattern only applies to readiness serial/);
  });
});
