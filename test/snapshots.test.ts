// Snapshots, reverts and clones over the dry-run operator (its saved "state"
// is a small JSON file; its resumed guest keeps the address it was saved
// with), and the one transition table every VM state write is checked
// against. Real QEMU saving and resuming is proven by the acceptance suite.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import type { VmState } from '../src/db/types.ts';
import { assertTransition, IllegalTransitionError, TRANSITIONS } from '../src/model/vm-states.ts';
import { UserNetworkBackend, type NetworkBackend } from '../src/network/backend.ts';
import { DryRunOperator } from '../src/operator/dry-run-operator.ts';
import { createVman } from '../src/server.ts';
import { EventBus, type PublishedEvent } from '../src/services/events.ts';
import { MEMORY_STATE_FILE } from '../src/model/snapshot-files.ts';
import { publishingStateChanges } from '../src/services/state-events.ts';
import { assertProblem, dryVman, eventually, sharedDryVman, type ApiResponse, type DryVman, type HasAfter } from './helpers/dry-vman.ts';

function ok(res: ApiResponse, status = 200): any {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw}`);
  return res.body;
}

/** A refusal with its problem type (`urn:vman:problem:<code>`). */
function refused(res: ApiResponse, status: number, code: string, detail?: RegExp): void {
  assertProblem(res, status, detail);
  assert.equal(res.body.type, `urn:vman:problem:${code}`, res.raw);
}

async function createVm(v: Pick<DryVman, 'api'>, name: string): Promise<any> {
  return ok(await v.api('POST', '/api/v1/vms', { name, template: 'small' }), 201);
}

async function runningVm(v: Pick<DryVman, 'api'>, name: string): Promise<any> {
  const vm = await createVm(v, name);
  return ok(await v.api('POST', `/api/v1/vms/${vm.id}/start`));
}

const snap = (v: Pick<DryVman, 'api'>, vm: string, name: string) => v.api('POST', `/api/v1/vms/${vm}/snapshots`, { name });
const snapshotRows = (v: DryVman) => v.rows('SELECT vm_id, name, with_memory FROM snapshots ORDER BY created_at, id');
const vmRow = (v: DryVman, id: string) => v.rows('SELECT * FROM vms WHERE id = ?', id)[0] as Record<string, any> | undefined;

/**
 * A dry-run vman on a network backend of the test's own (the helper's vman
 * always has the user-mode one): requests through `app.inject`.
 */
async function vmanOn(t: HasAfter, network: NetworkBackend): Promise<Pick<DryVman, 'api'> & { operator: DryRunOperator }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-snapshot-test-'));
  const config = loadConfig({
    VMAN_STORAGE_PATH: path.join(dir, 'storage'), VMAN_OPERATOR_DRY_RUN: '1', VMAN_OBSERVER_INTERVAL: '0',
    VMAN_GUEST_DIR: path.join(dir, 'no-guest'), VMAN_IMAGE_DIRS: dir,
  });
  const operator = new DryRunOperator();
  const vman = await createVman(config, { operator, networkBackend: network }).catch((err: unknown) => {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  t.after(async () => {
    await vman.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    operator,
    async api(method, url, payload) {
      const res = await vman.app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
      const body = res.body === '' ? undefined : JSON.parse(res.body);
      return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), headers: res.headers as ApiResponse['headers'], body, raw: res.body };
    },
  };
}

/** A request whose path goes out exactly as written (no ".." resolved on the way). */
function rawRequest(base: URL, method: string, pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method, path: pathname }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** Bridge mode as far as vman's services see it: a tap device per VM, nothing done on the host. */
const dryBridge = (): NetworkBackend => ({
  mode: 'bridge',
  open: async () => undefined,
  prepare: async (req) => ({ mode: 'tap', ifname: `vt-${req.vmId.slice(3, 12)}`, mac: req.mac }),
  release: async () => undefined,
  close: async () => undefined,
});

describe('snapshots API: take, list, get, delete', () => {
  it('of a running VM: 201 with memory; the guest paused only while it was taken and runs on', async (t) => {
    const v = await dryVman(t);
    const vm = await runningVm(v, 'web');
    const res = await snap(v, vm.id, 'warm');
    const s = ok(res, 201);
    assert.equal(res.headers.location, `/api/v1/vms/${vm.id}/snapshots/warm`);
    assert.deepEqual({ name: s.name, vm_id: s.vm_id, vm_name: s.vm_name, with_memory: s.with_memory, clones: s.clones, memory_mb: s.memory_mb },
      { name: 'warm', vm_id: vm.id, vm_name: 'web', with_memory: true, clones: [], memory_mb: 512 });
    assert.match(s.id, /^snap-[0-9a-f]{12}$/);
    assert.ok(Number.isInteger(s.pause_ms) && s.pause_ms >= 0, `pause_ms ${s.pause_ms}`);
    assert.ok(s.state_bytes > 0, `state_bytes ${s.state_bytes}`);
    assert.equal(s.guest_address, vm.address, 'the address the guest had');
    const dir = path.join(vm.storage_dir, 'snapshots', s.id);
    assert.equal(fs.statSync(path.join(dir, MEMORY_STATE_FILE)).size, s.state_bytes);
    const qemu = v.operator.vms.get(vm.id)!;
    assert.deepEqual({ alive: qemu.alive, paused: qemu.paused }, { alive: true, paused: false });
    assert.equal(vmRow(v, vm.id)?.state, 'running');
    assert.deepEqual(v.rows('SELECT op FROM intents'), []);
  });

  it('of a VM created or stopped: 201 without memory, no pause, no state', async (t) => {
    const v = await dryVman(t);
    const created = await createVm(v, 'fresh');
    const a = ok(await snap(v, created.id, 'first'), 201);
    assert.deepEqual({ with_memory: a.with_memory, pause_ms: a.pause_ms, state_bytes: a.state_bytes, guest_address: a.guest_address },
      { with_memory: false, pause_ms: null, state_bytes: null, guest_address: null });
    assert.equal(vmRow(v, created.id)?.state, 'created');
    const vm = await runningVm(v, 'web');
    ok(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    const b = ok(await snap(v, 'web', 'cold'), 201);
    assert.equal(b.with_memory, false);
    assert.equal(fs.existsSync(path.join(vm.storage_dir, 'snapshots', b.id, MEMORY_STATE_FILE)), false);
    assert.equal(vmRow(v, vm.id)?.state, 'stopped');
    assert.equal(v.operator.launches, 1, 'a snapshot of a VM at rest starts nothing');
  });

  it('lists a VM\'s snapshots in the order taken and gets one by name, by the VM\'s id or name', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v, 'web');
    await createVm(v, 'other');
    const a = ok(await snap(v, vm.id, 'one'), 201);
    const b = ok(await snap(v, 'web', 'two'), 201);
    ok(await snap(v, 'other', 'one'), 201);
    assert.deepEqual(ok(await v.api('GET', `/api/v1/vms/${vm.id}/snapshots`)), [a, b]);
    assert.deepEqual(ok(await v.api('GET', '/api/v1/vms/web/snapshots')), [a, b]);
    assert.deepEqual(ok(await v.api('GET', '/api/v1/vms/web/snapshots/two')), b);
    assert.deepEqual(ok(await v.api('GET', `/api/v1/vms/${vm.id}/snapshots/one`)), a);
    assert.deepEqual(ok(await v.api('GET', '/api/v1/vms/other/snapshots')).map((s: any) => s.vm_name), ['other']);
  });

  it('DELETE: 204, its row and its folder go; then 404 snapshot-not-found', async (t) => {
    const v = await dryVman(t);
    const vm = await runningVm(v, 'web');
    const s = ok(await snap(v, vm.id, 'warm'), 201);
    const dir = path.join(vm.storage_dir, 'snapshots', s.id);
    assert.ok(fs.existsSync(dir));
    const res = await v.api('DELETE', `/api/v1/vms/${vm.id}/snapshots/warm`);
    assert.equal(res.status, 204, res.raw);
    assert.equal(res.raw, '');
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(snapshotRows(v), []);
    refused(await v.api('GET', `/api/v1/vms/${vm.id}/snapshots/warm`), 404, 'snapshot-not-found', /warm/);
    refused(await v.api('DELETE', `/api/v1/vms/${vm.id}/snapshots/warm`), 404, 'snapshot-not-found', /warm/);
    assert.equal(vmRow(v, vm.id)?.state, 'running');
  });

  it('a name the VM\'s snapshots already have: 409 snapshot-name-taken, nothing taken', async (t) => {
    const v = await dryVman(t);
    const vm = await runningVm(v, 'web');
    ok(await snap(v, vm.id, 'warm'), 201);
    const before = v.rows('SELECT * FROM snapshots');
    refused(await snap(v, vm.id, 'warm'), 409, 'snapshot-name-taken', /warm/);
    assert.deepEqual(v.rows('SELECT * FROM snapshots'), before);
    assert.equal(fs.readdirSync(path.join(vm.storage_dir, 'snapshots')).length, 1);
    // Another VM may use the name.
    ok(await snap(v, await createVm(v, 'other').then((o) => o.id), 'warm'), 201);
  });

  it('of a VM in error: 409 vm-state-conflict', async (t) => {
    const v = await dryVman(t);
    const vm = await runningVm(v, 'web');
    v.operator.vms.get(vm.id)!.crash();
    await eventually(() => vmRow(v, vm.id)?.state === 'error', 'the crashed VM recorded in error');
    refused(await snap(v, vm.id, 'broken'), 409, 'vm-state-conflict', /error/);
    assert.deepEqual(snapshotRows(v), []);
  });
});

// Refusals change nothing, so they share one vman.
describe('snapshots API: refusals', () => {
  const shared = sharedDryVman();

  it('an unknown VM: 404 vm-not-found, for every snapshot route', async () => {
    const v = shared();
    for (const [method, url, body] of [
      ['POST', '/api/v1/vms/vm-nope/snapshots', { name: 'x' }], ['GET', '/api/v1/vms/vm-nope/snapshots', undefined],
      ['GET', '/api/v1/vms/vm-nope/snapshots/x', undefined], ['DELETE', '/api/v1/vms/vm-nope/snapshots/x', undefined],
      ['POST', '/api/v1/vms/vm-nope/snapshots/x/restore', undefined],
    ] as const) {
      refused(await v.api(method, url, body), 404, 'vm-not-found', /vm-nope/);
    }
    assert.deepEqual(snapshotRows(v), []);
  });

  it('an unknown snapshot: 404 snapshot-not-found for get, delete and restore', async () => {
    const v = shared();
    await createVm(v, 'known');
    for (const [method, url] of [['GET', '/api/v1/vms/known/snapshots/nope'], ['DELETE', '/api/v1/vms/known/snapshots/nope'], ['POST', '/api/v1/vms/known/snapshots/nope/restore']] as const) {
      refused(await v.api(method, url), 404, 'snapshot-not-found', /VM known has no snapshot named "nope"/);
    }
  });

  for (const [label, name, inUrl] of [
    ['a slash', 'a/b', 'a%2Fb'], ['".."', '..', undefined], ['a ".." inside', 'x..y', 'x..y'], ['a leading dot', '.hidden', '.hidden'], ['a space', 'a b', 'a%20b'],
  ] as const) {
    it(`a name with ${label}: 400 in the body of a POST${inUrl ? ', and in the URL of a GET, DELETE or restore' : ''}`, async () => {
      const v = shared();
      const vm = (v.rows("SELECT id FROM vms WHERE name = 'known'")[0] as { id: string } | undefined)?.id ?? (await createVm(v, 'known')).id;
      refused(await snap(v, vm, name), 400, 'validation-error', /name/);
      // (".." in a URL is resolved before routing by inject, as by a browser: the next test sends it as it is.)
      if (inUrl) {
        refused(await v.api('GET', `/api/v1/vms/${vm}/snapshots/${inUrl}`), 400, 'validation-error', /name/);
        refused(await v.api('DELETE', `/api/v1/vms/${vm}/snapshots/${inUrl}`), 400, 'validation-error', /name/);
        refused(await v.api('POST', `/api/v1/vms/${vm}/snapshots/${inUrl}/restore`), 400, 'validation-error', /name/);
      }
      assert.deepEqual(snapshotRows(v), []);
      assert.equal(fs.existsSync(path.join(vmRow(v, vm)!.storage_dir as string, 'snapshots')), false, 'no folder made');
    });
  }

  it('".." as the snapshot in a URL sent as it is (over a socket): 400, literal or percent-encoded', async (t) => {
    const v = await dryVman(t, { env: { VMAN_LISTEN: '127.0.0.1:0' } });
    const base = new URL(await v.vman.listen());
    await createVm(v, 'web');
    for (const [method, name] of [['GET', '..'], ['DELETE', '..'], ['GET', '%2E%2E'], ['DELETE', '%2e%2e'], ['GET', '.%2E']] as const) {
      const res = await rawRequest(base, method, `/api/v1/vms/web/snapshots/${name}`);
      assert.equal(res.status, 400, `${method} ${name}: ${res.body}`);
      assert.match(res.body, /validation-error/);
    }
    const restore = await rawRequest(base, 'POST', '/api/v1/vms/web/snapshots/%2E%2E/restore');
    assert.equal(restore.status, 400, restore.body);
    assert.deepEqual(snapshotRows(v), []);
  });

  it('a body with another field, or none: 400', async () => {
    const v = shared();
    refused(await v.api('POST', '/api/v1/vms/known/snapshots', { name: 'x', memory: true }), 400, 'validation-error', /memory/);
    assertProblem(await v.api('POST', '/api/v1/vms/known/snapshots'), 400);
    assert.deepEqual(snapshotRows(v), []);
  });
});

describe('clones', () => {
  it('of a snapshot with memory: created, resumes_snapshot true; its start resumes the guest (running, keeping the saved address)', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    const s = ok(await snap(v, 'web', 'warm'), 201);
    const clone = ok(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'warm' } }), 201);
    assert.deepEqual({ state: clone.state, resumes_snapshot: clone.resumes_snapshot, origin_snapshot: clone.origin_snapshot, template: clone.template, pid: clone.pid },
      { state: 'created', resumes_snapshot: true, origin_snapshot: { vm_id: web.id, name: 'warm' }, template: 'small', pid: null });
    assert.notEqual(clone.mac, web.mac, 'a VM of its own');
    assert.deepEqual(ok(await v.api('GET', '/api/v1/vms/web/snapshots/warm')).clones, ['web-2']);
    assert.deepEqual(vmRow(v, clone.id)?.device_model, vmRow(v, web.id)?.device_model, 'the snapshot\'s hardware');

    const started = ok(await v.api('POST', `/api/v1/vms/${clone.id}/start`));
    assert.deepEqual({ state: started.state, resumes_snapshot: started.resumes_snapshot, origin_snapshot: started.origin_snapshot },
      { state: 'running', resumes_snapshot: false, origin_snapshot: { vm_id: web.id, name: 'warm' } });
    const qemu = v.operator.vms.get(clone.id)!;
    assert.ok(qemu.resumed, 'the dry-run VM reports it resumed a saved state');
    assert.equal(qemu.paused, false, 'the resumed guest runs');
    assert.equal(started.address, s.guest_address, 'the resumed guest keeps the address it was saved with');

    // Its next start boots from its own disks.
    ok(await v.api('POST', `/api/v1/vms/${clone.id}/stop`));
    ok(await v.api('POST', `/api/v1/vms/${clone.id}/start`));
    assert.equal(v.operator.vms.get(clone.id)!.resumed, undefined);
  });

  it('of a snapshot without memory: its first start boots', async (t) => {
    const v = await dryVman(t);
    await createVm(v, 'web');
    ok(await snap(v, 'web', 'cold'), 201);
    const clone = ok(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'cold' } }), 201);
    assert.equal(clone.resumes_snapshot, false);
    assert.deepEqual(clone.origin_snapshot?.name, 'cold');
    ok(await v.api('POST', `/api/v1/vms/${clone.id}/start`));
    assert.equal(v.operator.vms.get(clone.id)!.resumed, undefined);
  });

  it('of a snapshot that is gone, or of an unknown VM: 404, nothing made', async (t) => {
    const v = await dryVman(t);
    await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    assert.equal((await v.api('DELETE', '/api/v1/vms/web/snapshots/warm')).status, 204);
    const vms = v.rows('SELECT id FROM vms');
    const folders = fs.readdirSync(path.join(v.config.storagePath, 'vms'));
    refused(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'warm' } }), 404, 'snapshot-not-found', /warm/);
    refused(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'nope', name: 'warm' } }), 404, 'vm-not-found', /nope/);
    assert.deepEqual(v.rows('SELECT id FROM vms'), vms);
    assert.deepEqual(fs.readdirSync(path.join(v.config.storagePath, 'vms')), folders);
  });

  it('neither a template nor a snapshot: 400 template-required; another template than the origin\'s: 400', async (t) => {
    const v = await dryVman(t);
    await createVm(v, 'web');
    ok(await snap(v, 'web', 'cold'), 201);
    refused(await v.api('POST', '/api/v1/vms', { name: 'x' }), 400, 'template-required', /template/);
    refused(await v.api('POST', '/api/v1/vms', { name: 'x', template: 'large', from_snapshot: { vm: 'web', name: 'cold' } }), 400, 'clone-template-mismatch', /small/);
    ok(await v.api('POST', '/api/v1/vms', { name: 'x', template: 'small', from_snapshot: { vm: 'web', name: 'cold' } }), 201);
  });

  it('of a snapshot holding a data disk: 409 snapshot-has-data-disks', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v, 'web');
    ok(await v.api('POST', '/api/v1/vms/web/start'));
    ok(await v.api('POST', '/api/v1/vms/web/stop'));
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: vm.id }));
    const s = ok(await snap(v, 'web', 'with-data'), 201);
    assert.deepEqual(s.disks, [{ role: 'data', disk_id: disk.id }]);
    refused(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'with-data' } }), 409, 'snapshot-has-data-disks', new RegExp(disk.id));
  });

  it('a snapshot, or its VM, cannot be deleted while a clone stands on it: 409 snapshot-has-clones naming the clone', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    const s = ok(await snap(v, 'web', 'warm'), 201);
    const clone = ok(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'warm' } }), 201);
    const before = { vms: v.rows('SELECT * FROM vms ORDER BY id'), snapshots: v.rows('SELECT * FROM snapshots') };
    refused(await v.api('DELETE', '/api/v1/vms/web/snapshots/warm'), 409, 'snapshot-has-clones', /web-2/);
    refused(await v.api('DELETE', `/api/v1/vms/${web.id}?force=true`), 409, 'snapshot-has-clones', /web-2 \(from warm\)/);
    ok(await v.api('POST', `/api/v1/vms/${web.id}/stop`));
    refused(await v.api('DELETE', `/api/v1/vms/${web.id}`), 409, 'snapshot-has-clones', /web-2/);
    assert.deepEqual(v.rows('SELECT * FROM snapshots'), before.snapshots);
    assert.ok(fs.existsSync(path.join(web.storage_dir, 'snapshots', s.id)));

    // The clone gone, both go.
    assert.equal((await v.api('DELETE', `/api/v1/vms/${clone.id}`)).status, 204);
    assert.equal((await v.api('DELETE', '/api/v1/vms/web/snapshots/warm')).status, 204);
    assert.equal((await v.api('DELETE', `/api/v1/vms/${web.id}`)).status, 204);
    assert.deepEqual(v.rows('SELECT * FROM vms'), []);
  });

  it('from memory in bridge mode: 409 clone-needs-user-network (from disks only it is made)', async (t) => {
    const v = await vmanOn(t, dryBridge());
    const web = await runningVm(v, 'web');
    assert.equal(v.operator.vms.get(web.id)?.address, null, 'a tap device, not user mode');
    ok(await snap(v, 'web', 'warm'), 201);
    refused(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'warm' } }), 409, 'clone-needs-user-network', /user-mode network/);
    assert.equal((await v.api('GET', '/api/v1/vms/web-2')).status, 404);
    ok(await v.api('POST', '/api/v1/vms/web/stop'));
    ok(await snap(v, 'web', 'cold'), 201);
    ok(await v.api('POST', '/api/v1/vms', { name: 'web-2', from_snapshot: { vm: 'web', name: 'cold' } }), 201);
  });
});

describe('deleting a VM with snapshots', () => {
  it('removes its snapshot rows and its folder (with theirs)', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    ok(await v.api('POST', '/api/v1/vms/web/stop'));
    ok(await snap(v, 'web', 'cold'), 201);
    const other = await createVm(v, 'other');
    ok(await snap(v, 'other', 'keep'), 201);
    assert.equal((await v.api('DELETE', `/api/v1/vms/${web.id}`)).status, 204);
    assert.deepEqual(snapshotRows(v), [{ vm_id: other.id, name: 'keep', with_memory: 0 }]);
    assert.equal(fs.existsSync(web.storage_dir), false);
    assert.deepEqual(v.rows('SELECT op FROM intents'), []);
  });

  it('a running one with ?force=true: the same', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    assert.equal((await v.api('DELETE', `/api/v1/vms/${web.id}?force=true`)).status, 204);
    assert.deepEqual(snapshotRows(v), []);
    assert.equal(fs.existsSync(web.storage_dir), false);
  });
});

describe('reverts', () => {
  it('of a running VM: 409 revert-loses-data without ?force, nothing changed; with it 200, running, the saved guest resumed', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    const before = vmRow(v, web.id);
    const qemu = v.operator.vms.get(web.id)!;
    refused(await v.api('POST', '/api/v1/vms/web/snapshots/warm/restore'), 409, 'revert-loses-data', /\?force=true/);
    refused(await v.api('POST', '/api/v1/vms/web/snapshots/warm/restore?force=false'), 409, 'revert-loses-data');
    assert.deepEqual(vmRow(v, web.id), before);
    assert.equal(qemu.alive, true);

    const after = ok(await v.api('POST', '/api/v1/vms/web/snapshots/warm/restore?force=true'));
    assert.equal(after.state, 'running');
    assert.equal(after.resumes_snapshot, false);
    assert.equal(qemu.alive, false, 'what ran is thrown away');
    const now = v.operator.vms.get(web.id)!;
    assert.notEqual(now, qemu);
    assert.equal(after.pid, now.pid);
    assert.deepEqual({ resumed: Boolean(now.resumed), paused: now.paused }, { resumed: true, paused: false });
    assert.deepEqual(v.rows('SELECT vm_id FROM address_allocations'), [{ vm_id: web.id }]);
    assert.deepEqual(v.rows('SELECT op FROM intents'), []);
  });

  it('of a stopped VM to a snapshot with memory: it runs on from it; to one without: it ends stopped', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    ok(await v.api('POST', '/api/v1/vms/web/stop'));
    ok(await snap(v, 'web', 'cold'), 201);
    const warm = ok(await v.api('POST', '/api/v1/vms/web/snapshots/warm/restore'));
    assert.equal(warm.state, 'running');
    assert.ok(v.operator.vms.get(web.id)!.resumed);
    const cold = ok(await v.api('POST', '/api/v1/vms/web/snapshots/cold/restore?force=true'));
    assert.deepEqual({ state: cold.state, reason: cold.state_reason, pid: cold.pid }, { state: 'stopped', reason: 'reverted to snapshot cold', pid: null });
    assert.deepEqual(v.rows('SELECT * FROM address_allocations'), []);
  });

  it('with a disk attached now that the snapshot does not hold, or without one it holds: 409 snapshot-disks-differ naming it', async (t) => {
    const v = await dryVman(t);
    const web = await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: web.id }));
    const before = vmRow(v, web.id);
    refused(await v.api('POST', '/api/v1/vms/web/snapshots/warm/restore?force=true'), 409, 'snapshot-disks-differ', /has disks attached that snapshot warm does not hold: data/);
    assert.deepEqual(vmRow(v, web.id), before);
    assert.equal(v.operator.vms.get(web.id)!.alive, true);

    ok(await snap(v, 'web', 'with-data'), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/detach`));
    refused(await v.api('POST', '/api/v1/vms/web/snapshots/with-data/restore?force=true'), 409, 'snapshot-disks-differ', /holds disks that are not attached to VM web: data/);
  });

  it('a revert whose network is refused ends stopped (its disks the snapshot\'s), not left restoring; the VM starts again', async (t) => {
    let refuse = false;
    const inner = new UserNetworkBackend(loadConfig({ VMAN_STORAGE_PATH: '/nowhere' }).network);
    const network: NetworkBackend = {
      mode: 'user', open: () => inner.open(), release: () => inner.release(), close: () => inner.close(),
      prepare: async (req) => {
        if (refuse) throw new Error('no network today');
        return inner.prepare(req);
      },
    };
    const v = await vmanOn(t, network);
    await runningVm(v, 'web');
    ok(await snap(v, 'web', 'warm'), 201);
    ok(await v.api('POST', '/api/v1/vms/web/stop'));
    refuse = true;
    refused(await v.api('POST', '/api/v1/vms/web/snapshots/warm/restore'), 409, 'vm-network-failed', /no network today/);
    const vm = ok(await v.api('GET', '/api/v1/vms/web'));
    assert.equal(vm.state, 'stopped');
    assert.match(vm.state_reason, /revert to snapshot warm failed/);
    refuse = false;
    assert.equal(ok(await v.api('POST', '/api/v1/vms/web/start')).state, 'running');
  });
});

const STATES = Object.keys(TRANSITIONS) as VmState[];

describe('the VM state machine', () => {
  it('assertTransition accepts every pair in TRANSITIONS, and staying put', () => {
    for (const from of STATES) {
      assert.doesNotThrow(() => assertTransition('vm-x', from, from));
      for (const to of TRANSITIONS[from]) assert.doesNotThrow(() => assertTransition('vm-x', from, to), `${from} → ${to}`);
    }
  });

  it('assertTransition throws IllegalTransitionError for every other pair (e.g. created → running, stopped → saving)', () => {
    assert.throws(() => assertTransition('vm-x', 'created', 'running'), (err: unknown) =>
      err instanceof IllegalTransitionError && err.from === 'created' && err.to === 'running' && /VM vm-x cannot go from created to running/.test(err.message));
    assert.throws(() => assertTransition('vm-x', 'stopped', 'saving'), IllegalTransitionError);
    let refusedPairs = 0;
    for (const from of STATES) {
      for (const to of STATES) {
        if (from === to || TRANSITIONS[from].includes(to)) continue;
        assert.throws(() => assertTransition('vm-x', from, to), IllegalTransitionError, `${from} → ${to}`);
        refusedPairs++;
      }
    }
    assert.ok(refusedPairs > 0);
  });

  it('a snapshot\'s states: saving only from running and back; restoring from every state at rest and from running', () => {
    assert.deepEqual(STATES.filter((s) => TRANSITIONS[s].includes('saving')), ['running']);
    assert.ok(TRANSITIONS.saving.includes('running'));
    assert.deepEqual(STATES.filter((s) => TRANSITIONS[s].includes('restoring')).sort(), ['created', 'error', 'running', 'stopped']);
  });

  it('the state-events wrapper refuses an illegal write, changes nothing and publishes nothing', (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-states-test-'));
    const raw = openDatabase(path.join(dir, 'vman.db'));
    t.after(() => {
      raw.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const bus = new EventBus();
    const seen: PublishedEvent[] = [];
    bus.subscribe({ deliver: (e) => seen.push(e), end: () => undefined });
    const db = publishingStateChanges(raw, bus);
    db.templates.insert({ id: 't1', name: 'tiny', cpus: 1, memoryMb: 256, kernelPath: '/k', initrdPath: null, cmdline: null, baseImagePath: null, baseImageFormat: null, builtin: false });
    const vm = db.vms.insert({ id: 'vm-1', name: 'web', templateId: 't1', state: 'created', stateReason: null, pid: null, mac: '52:54:00:00:00:01', storageDir: '/x' });
    assert.deepEqual(seen.map((e) => e.type === 'vm.state' && [e.data.previous, e.data.state]), [[null, 'created']]);
    seen.length = 0;

    assert.throws(() => db.vms.setState('vm-1', 'running'), IllegalTransitionError);
    assert.throws(() => db.vms.compareAndSetState('vm-1', ['created'], 'saving'), IllegalTransitionError);
    assert.throws(() => db.vms.restore({ ...vm, state: 'stopping' }), IllegalTransitionError);
    assert.throws(() => db.transaction(() => db.vms.setState('vm-1', 'saving')), IllegalTransitionError);
    assert.throws(() => db.vms.insert({ id: 'vm-2', name: 'b', templateId: 't1', state: 'running', stateReason: null, pid: null, mac: '52:54:00:00:00:02', storageDir: '/y' }), IllegalTransitionError);
    assert.deepEqual(raw.vms.list().map((v) => [v.id, v.state]), [['vm-1', 'created']]);
    assert.equal(seen.length, 0, 'nothing published');
    // A compare-and-set whose expected state does not match is not a transition: refused quietly, as before.
    assert.equal(db.vms.compareAndSetState('vm-1', ['running'], 'saving'), undefined);
    assert.equal(seen.length, 0);

    // A legal write goes through and publishes once.
    db.vms.setState('vm-1', 'starting');
    assert.deepEqual(seen.map((e) => e.type === 'vm.state' && [e.data.previous, e.data.state]), [['created', 'starting']]);
  });
});
