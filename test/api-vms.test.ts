// /api/v1/vms: creation, the state machine over the dry-run operator,
// failures, concurrency, address allocation, and adoption after a vman restart.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { DryRunOperator } from '../src/operator/dry-run-operator.ts';
import { dryVman, eventually, sharedDryVman, type ApiResponse, type DryVman, assertProblem } from './helpers/dry-vman.ts';

const MAC = /^52:54:00(:[0-9a-f]{2}){3}$/;
/** The default range, 10.0.2.15-10.0.2.254. */
const IN_DEFAULT_RANGE = /^10\.0\.2\.(1[5-9]|[2-9]\d|1\d\d|2[0-4]\d|25[0-4])$/;


function assertOk(res: ApiResponse, status = 200): any {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw}`);
  return res.body;
}

async function createVm(v: DryVman, name = 'vm1', template = 'small'): Promise<any> {
  return assertOk(await v.api('POST', '/api/v1/vms', { name, template }), 201);
}

async function startedVm(v: DryVman, name = 'vm1'): Promise<any> {
  const vm = await createVm(v, name);
  return assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/start`));
}

const getVm = async (v: DryVman, id: string): Promise<any> => assertOk(await v.api('GET', `/api/v1/vms/${id}`));
const allocations = (v: DryVman) => v.rows('SELECT address, vm_id FROM address_allocations ORDER BY address') as Array<{ address: string; vm_id: string }>;
const vmRow = (v: DryVman, id: string) => v.rows('SELECT * FROM vms WHERE id = ?', id)[0] as Record<string, unknown> | undefined;
const vmsTable = (v: DryVman) => v.rows('SELECT * FROM vms ORDER BY id');

describe('VMs API: create, list, get', () => {
  it('creates a VM from a template by name (201, created, no address, a QEMU MAC)', async (t) => {
    const v = await dryVman(t);
    const res = await v.api('POST', '/api/v1/vms', { name: 'web', template: 'small' });
    assert.equal(res.status, 201, res.raw);
    const vm = res.body;
    assert.match(vm.id, /^vm-[0-9a-f]+$/);
    assert.equal(vm.name, 'web');
    assert.equal(vm.template, 'small');
    assert.equal(vm.state, 'created');
    assert.equal(vm.state_reason, null);
    assert.equal(vm.address, null);
    assert.equal(vm.pid, null);
    assert.match(vm.mac, MAC);
    assert.ok(fs.statSync(vm.storage_dir).isDirectory(), 'the VM has its own storage folder');
    assert.equal(allocations(v).length, 0);
    assert.equal(v.operator.launches, 0, 'creating does not launch anything');
  });

  it('creates a VM from a template by id', async (t) => {
    const v = await dryVman(t);
    const medium = (await v.api('GET', '/api/v1/templates')).body.find((x: any) => x.name === 'medium');
    const vm = await createVm(v, 'db', medium.id);
    assert.equal(vm.template_id, medium.id);
    assert.equal(vm.template, 'medium');
    assert.equal(vm.state, 'created');
    assert.equal(vm.address, null);
    assert.match(vm.mac, MAC);
  });

  it('gives every VM its own MAC', async (t) => {
    const v = await dryVman(t);
    const macs = new Set<string>();
    for (let i = 0; i < 10; i++) macs.add((await createVm(v, `m${i}`)).mac);
    assert.equal(macs.size, 10);
  });

  it('refuses a duplicate name with 409 and creates nothing', async (t) => {
    const v = await dryVman(t);
    await createVm(v, 'web');
    const before = vmsTable(v);
    assertProblem(await v.api('POST', '/api/v1/vms', { name: 'web', template: 'large' }), 409, /web/);
    assert.deepEqual(vmsTable(v), before);
  });

  it('refuses an unknown template with 404 and creates nothing', async (t) => {
    const v = await dryVman(t);
    assertProblem(await v.api('POST', '/api/v1/vms', { name: 'web', template: 'huge' }), 404, /huge/);
    assert.deepEqual(vmsTable(v), []);
    assert.deepEqual(fs.readdirSync(v.config.storagePath + '/vms'), [], 'no storage folder left behind');
  });

  it('lists VMs and gets one by id', async (t) => {
    const v = await dryVman(t);
    assert.deepEqual(assertOk(await v.api('GET', '/api/v1/vms')), []);
    const a = await createVm(v, 'a');
    const b = await createVm(v, 'b', 'large');
    const list = assertOk(await v.api('GET', '/api/v1/vms'));
    assert.deepEqual(list.map((x: any) => x.name).sort(), ['a', 'b']);
    assert.deepEqual(list.find((x: any) => x.id === a.id), a);
    assert.deepEqual(await getVm(v, b.id), b);
  });

  it('an unknown id is 404 for get, start, stop, restart and delete', async (t) => {
    const v = await dryVman(t);
    await createVm(v, 'other');
    const before = vmsTable(v);
    assertProblem(await v.api('GET', '/api/v1/vms/vm-nope'), 404, /vm-nope/);
    assertProblem(await v.api('POST', '/api/v1/vms/vm-nope/start'), 404, /vm-nope/);
    assertProblem(await v.api('POST', '/api/v1/vms/vm-nope/stop'), 404, /vm-nope/);
    assertProblem(await v.api('POST', '/api/v1/vms/vm-nope/restart'), 404, /vm-nope/);
    assertProblem(await v.api('DELETE', '/api/v1/vms/vm-nope'), 404, /vm-nope/);
    assert.deepEqual(vmsTable(v), before);
    assert.equal(v.operator.launches, 0);
  });
});

// Refusals change nothing, so they share one vman.
describe('VMs API: malformed input is refused', () => {
  const shared = sharedDryVman();

  for (const [label, name] of [
    ['a slash', 'a/b'], ['..', '..'], ['a ".." inside', 'x..y'], ['a space', 'a b'], ['a control character', 'a\u0001b'],
    ['a comma', 'a,b'], ['64 characters', 'v'.repeat(64)], ['nothing', ''], ['a leading dash', '-v'],
  ] as const) {
    it(`refuses a name with ${label} with 400`, async () => {
      const v = shared();
      assertProblem(await v.api('POST', '/api/v1/vms', { name, template: 'small' }), 400);
      assert.deepEqual(vmsTable(v), []);
    });
  }

  it('refuses a missing template field, or an unknown field, with 400', async () => {
    const v = shared();
    assertProblem(await v.api('POST', '/api/v1/vms', { name: 'web' }), 400, /template/);
    assertProblem(await v.api('POST', '/api/v1/vms', { name: 'web', template: 'small', cpus: 8 }), 400, /cpus/);
    assert.deepEqual(vmsTable(v), []);
  });
});

describe('VMs API: transitions', () => {
  it('start from created → 200 running, with an address from the range and a pid', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    const res = await v.api('POST', `/api/v1/vms/${vm.id}/start`);
    const started = assertOk(res);
    assert.equal(started.state, 'running');
    assert.equal(started.state_reason, null);
    assert.match(started.address, IN_DEFAULT_RANGE);
    assert.equal(started.address, '10.0.2.15', 'the lowest free address');
    assert.equal(typeof started.pid, 'number');
    assert.equal(started.pid, v.operator.vms.get(vm.id)?.pid);
    assert.equal(v.operator.launches, 1);
    assert.deepEqual(allocations(v), [{ address: started.address, vm_id: vm.id }]);
    assert.deepEqual(await getVm(v, vm.id), started);
  });

  it('start of a running VM → 409 saying it is running; nothing changes', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const before = vmsTable(v);
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/start`), 409, /running/);
    assert.deepEqual(vmsTable(v), before);
    assert.deepEqual(allocations(v), [{ address: vm.address, vm_id: vm.id }]);
    assert.equal(v.operator.launches, 1);
  });

  it('stop → 200 stopped, address released, pid null', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const stopped = assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.pid, null);
    assert.equal(stopped.address, null);
    assert.deepEqual(allocations(v), []);
    assert.equal(v.operator.vms.get(vm.id)?.alive, false, 'the simulated process is gone');
    assert.deepEqual(await getVm(v, vm.id), stopped);
  });

  it('stop of a stopped VM → 409; stop of a created VM → 409', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    const before = vmsTable(v);
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/stop`), 409, /stopped/);
    assert.deepEqual(vmsTable(v), before);
    const fresh = await createVm(v, 'fresh');
    assertProblem(await v.api('POST', `/api/v1/vms/${fresh.id}/stop`), 409, /created/);
  });

  it('stop with {"force": true} works', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const stopped = assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`, { force: true }));
    assert.equal(stopped.state, 'stopped');
    assert.deepEqual(allocations(v), []);
  });

  it('stop with ?force=true works', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const stopped = assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop?force=true`));
    assert.equal(stopped.state, 'stopped');
    assert.deepEqual(allocations(v), []);
  });

  it('stop with {"force": false} and an empty JSON object work', async (t) => {
    const v = await dryVman(t);
    const a = await startedVm(v, 'a');
    const b = await startedVm(v, 'b');
    assert.equal(assertOk(await v.api('POST', `/api/v1/vms/${a.id}/stop`, { force: false })).state, 'stopped');
    assert.equal(assertOk(await v.api('POST', `/api/v1/vms/${b.id}/stop`, {})).state, 'stopped');
  });

  it('stop with an unknown body field, or a bad force value, → 400 and the VM keeps running', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const before = vmsTable(v);
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/stop`, { force: true, now: true }), 400);
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/stop`, { force: 'yes' }), 400);
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/stop?force=yes`), 400);
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/stop?hard=1`), 400);
    assert.deepEqual(vmsTable(v), before);
    assert.equal((await getVm(v, vm.id)).state, 'running');
    assert.equal(allocations(v).length, 1);
  });

  it('restart of a running VM → running again, one more launch', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const launches = v.operator.launches;
    const restarted = assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/restart`));
    assert.equal(restarted.state, 'running');
    assert.equal(v.operator.launches, launches + 1);
    assert.notEqual(restarted.pid, vm.pid, 'a new process');
    assert.equal(restarted.pid, v.operator.vms.get(vm.id)?.pid);
    assert.match(restarted.address, IN_DEFAULT_RANGE);
    assert.deepEqual(allocations(v), [{ address: restarted.address, vm_id: vm.id }]);
  });

  it('restart of a stopped or created VM → 409', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    const launches = v.operator.launches;
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/restart`), 409, /stopped/);
    const fresh = await createVm(v, 'fresh');
    assertProblem(await v.api('POST', `/api/v1/vms/${fresh.id}/restart`), 409, /created/);
    assert.equal(v.operator.launches, launches);
    assert.equal((await getVm(v, vm.id)).state, 'stopped');
    assert.equal((await getVm(v, fresh.id)).state, 'created');
  });

  it('start from stopped works', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    const again = assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/start`));
    assert.equal(again.state, 'running');
    assert.match(again.address, IN_DEFAULT_RANGE);
    assert.equal(typeof again.pid, 'number');
    assert.equal(v.operator.launches, 2);
  });

  it('start from error works and clears the reason', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    v.operator.behaviour.failLaunch = 'boom';
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/start`), 502);
    assert.equal((await getVm(v, vm.id)).state, 'error');
    v.operator.behaviour = {};
    const again = assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/start`));
    assert.equal(again.state, 'running');
    assert.equal(again.state_reason, null);
    assert.match(again.address, IN_DEFAULT_RANGE);
  });

  it('delete of a created VM → 204; the row and its folder are gone', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    const res = await v.api('DELETE', `/api/v1/vms/${vm.id}`);
    assert.equal(res.status, 204);
    assert.equal(res.raw, '');
    assert.equal(vmRow(v, vm.id), undefined);
    assert.equal(fs.existsSync(vm.storage_dir), false);
    assertProblem(await v.api('GET', `/api/v1/vms/${vm.id}`), 404);
    assertProblem(await v.api('DELETE', `/api/v1/vms/${vm.id}`), 404);
  });

  it('delete of a running VM without force → 409 naming ?force=true; the VM still runs, nothing changed', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const before = { vms: vmsTable(v), allocations: allocations(v) };
    for (const query of ['', '?force=false']) {
      assertProblem(await v.api('DELETE', `/api/v1/vms/${vm.id}${query}`), 409, /\?force=true/);
    }
    assert.deepEqual({ vms: vmsTable(v), allocations: allocations(v) }, before);
    assert.equal(v.operator.vms.get(vm.id)?.alive, true, 'the simulated process still runs');
    assert.ok(fs.existsSync(vm.storage_dir));
    assertProblem(await v.api('DELETE', `/api/v1/vms/${vm.id}?force=yes`), 400, /force/);
  });

  it('delete of a running VM with ?force=true → 204; the row, its folder and its address are gone', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    assert.ok(fs.existsSync(vm.storage_dir));
    const res = await v.api('DELETE', `/api/v1/vms/${vm.id}?force=true`);
    assert.equal(res.status, 204);
    assert.equal(vmRow(v, vm.id), undefined);
    assert.equal(fs.existsSync(vm.storage_dir), false);
    assert.deepEqual(allocations(v), []);
    assert.equal(v.operator.vms.get(vm.id)?.alive, false, 'the simulated process was stopped');
    assertProblem(await v.api('GET', `/api/v1/vms/${vm.id}`), 404);
    // The name is free again.
    await createVm(v, 'vm1');
  });

  it('delete of a stopped VM → 204', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    assert.equal((await v.api('DELETE', `/api/v1/vms/${vm.id}`)).status, 204);
    assert.equal(vmRow(v, vm.id), undefined);
  });
});

describe('VMs API: failures', () => {
  it('a launch failure → 502 naming it; the VM is in error, holds no address, and can be deleted', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    v.operator.behaviour.failLaunch = 'boom';
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/start`), 502, /boom/);
    const after = await getVm(v, vm.id);
    assert.equal(after.state, 'error');
    assert.match(after.state_reason, /failed to launch/);
    assert.match(after.state_reason, /boom/);
    assert.equal(after.pid, null);
    assert.equal(after.address, null);
    assert.deepEqual(allocations(v), []);
    const del = await v.api('DELETE', `/api/v1/vms/${vm.id}`);
    assert.equal(del.status, 204);
    assert.equal(vmRow(v, vm.id), undefined);
    assert.equal(fs.existsSync(vm.storage_dir), false);
  });

  it('a guest that never becomes ready → 504 naming the readiness rule and the timeout; the VM is in error, its process killed, its address released', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    v.operator.behaviour.neverReady = true;
    assertProblem(await v.api('POST', `/api/v1/vms/${vm.id}/start`), 504, /boot timeout of \d+ ms \(readiness agent/);
    const after = await getVm(v, vm.id);
    assert.equal(after.state, 'error');
    assert.match(after.state_reason, /never became ready/);
    assert.equal(after.pid, null);
    assert.equal(after.address, null);
    assert.deepEqual(allocations(v), []);
    assert.equal(v.operator.vms.get(vm.id)?.alive, false, 'the half-started process was killed');
  });

  it('a crash of a running VM moves it to error with a reason and releases its address', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    v.operator.vms.get(vm.id)!.crash();
    const after = await eventually(async () => {
      const cur = await getVm(v, vm.id);
      return cur.state === 'error' ? cur : undefined;
    }, 'the VM to be in error');
    assert.ok(after.state_reason, 'a reason is given');
    assert.match(after.state_reason, /died|exited/);
    assert.equal(after.pid, null);
    assert.equal(after.address, null);
    assert.deepEqual(allocations(v), []);
    // It can be started again.
    assert.equal(assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/start`)).state, 'running');
  });

  it('a guest power-off (guest-initiated exit) moves it to stopped and releases its address', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    v.operator.vms.get(vm.id)!.crash({ guestInitiated: true, detail: 'guest shut down' });
    const after = await eventually(async () => {
      const cur = await getVm(v, vm.id);
      return cur.state === 'stopped' ? cur : undefined;
    }, 'the VM to be stopped');
    assert.equal(after.pid, null);
    assert.equal(after.address, null);
    assert.deepEqual(allocations(v), []);
  });

  it('an exit after a stop changes nothing', async (t) => {
    const v = await dryVman(t);
    const vm = await startedVm(v);
    const sim = v.operator.vms.get(vm.id)!;
    assertOk(await v.api('POST', `/api/v1/vms/${vm.id}/stop`));
    const before = vmsTable(v);
    sim.crash();
    await v.vman.runtime.locks.drain();
    assert.deepEqual(vmsTable(v), before);
  });
});

describe('VMs API: concurrency', () => {
  it('two concurrent starts of one VM: exactly one 200 and one 409, one launch', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    const results = await Promise.all([
      v.api('POST', `/api/v1/vms/${vm.id}/start`),
      v.api('POST', `/api/v1/vms/${vm.id}/start`),
    ]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409]);
    const conflict = results.find((r) => r.status === 409)!;
    assertProblem(conflict, 409, /running/);
    assert.equal(v.operator.launches, 1);
    assert.equal((await getVm(v, vm.id)).state, 'running');
    assert.equal(allocations(v).length, 1);
  });

  it('concurrent start and delete end consistently', async (t) => {
    const v = await dryVman(t);
    const vm = await createVm(v);
    const [start, del] = await Promise.all([
      v.api('POST', `/api/v1/vms/${vm.id}/start`),
      v.api('DELETE', `/api/v1/vms/${vm.id}?force=true`),
    ]);
    assert.equal(del.status, 204, del.raw);
    assert.ok(start.status === 200 || start.status === 404, `start answered ${start.status}: ${start.raw}`);
    if (start.status === 200) {
      // Started first, then deleted: the process was stopped too.
      assert.equal(start.body.state, 'running');
      assert.equal(v.operator.launches, 1);
      assert.equal(v.operator.vms.get(vm.id)?.alive, false);
    } else {
      assert.equal(v.operator.launches, 0);
    }
    assert.equal(vmRow(v, vm.id), undefined);
    assert.deepEqual(allocations(v), [], 'no allocation outlives its VM');
    assert.equal(fs.existsSync(vm.storage_dir), false);
  });

  it('concurrent start and delete of several VMs: rows and allocations agree', async (t) => {
    const v = await dryVman(t);
    const vms = [];
    for (let i = 0; i < 4; i++) vms.push(await createVm(v, `c${i}`));
    await Promise.all(vms.flatMap((vm, i) => (i % 2 === 0
      ? [v.api('POST', `/api/v1/vms/${vm.id}/start`), v.api('DELETE', `/api/v1/vms/${vm.id}?force=true`)]
      : [v.api('DELETE', `/api/v1/vms/${vm.id}?force=true`), v.api('POST', `/api/v1/vms/${vm.id}/start`)])));
    assert.deepEqual(vmsTable(v), []);
    assert.deepEqual(allocations(v), []);
    for (const sim of v.operator.vms.values()) assert.equal(sim.alive, false);
  });
});

describe('VMs API: concurrent creation', () => {
  it('two concurrent creates of one name: one 201, one 409, one VM and one folder', async (t) => {
    const v = await dryVman(t);
    const results = await Promise.all([
      v.api('POST', '/api/v1/vms', { name: 'twin', template: 'small' }),
      v.api('POST', '/api/v1/vms', { name: 'twin', template: 'medium' }),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [201, 409]);
    assertProblem(results.find((r) => r.status === 409)!, 409, /twin/);
    const created = results.find((r) => r.status === 201)!.body;
    assert.deepEqual((vmsTable(v) as any[]).map((r) => r.id), [created.id]);
    assert.deepEqual(fs.readdirSync(v.config.storagePath + '/vms'), [created.id], 'the loser left no folder behind');
  });

  it('a template deleted while a VM is being created from it: a 404/409 refusal, not an internal error', async (t) => {
    const v = await dryVman(t);
    const tpl = assertOk(await v.api('POST', '/api/v1/templates', { name: 'brief', cpus: 1, memory_mb: 128, kernel_path: v.kernel }), 201);
    // What POST /api/v1/vms runs, interleaved with what DELETE /api/v1/templates/:id runs:
    // the delete lands while the create waits for its storage folder.
    const creating = v.vman.vms.create({ name: 'orphan', template: tpl.id });
    v.vman.templates.delete(tpl.id);
    await assert.rejects(creating, (err: any) => {
      assert.equal(err?.name, 'VmanError', `a VmanError, not ${err?.name}: ${err?.message}`);
      assert.ok(err.kind === 'not-found' || err.kind === 'conflict', `kind ${err.kind}`);
      return true;
    });
    assert.deepEqual(vmsTable(v), []);
    assert.deepEqual(fs.readdirSync(v.config.storagePath + '/vms'), [], 'no folder left behind');
  });
});

describe('VMs API: addresses', () => {
  it('hands out distinct addresses, refuses when the range is full, and reuses a freed one', async (t) => {
    const v = await dryVman(t, { env: { VMAN_RANGE: '10.0.2.15-10.0.2.16' } });
    const a = await startedVm(v, 'a');
    const b = await startedVm(v, 'b');
    assert.deepEqual([a.address, b.address].sort(), ['10.0.2.15', '10.0.2.16']);

    const c = await createVm(v, 'c');
    const before = vmsTable(v);
    assertProblem(await v.api('POST', `/api/v1/vms/${c.id}/start`), 409, /no free address/);
    const cAfter = await getVm(v, c.id);
    assert.equal(cAfter.state, 'created', 'the refused VM is unchanged');
    assert.equal(cAfter.state_reason, null);
    assert.equal(cAfter.address, null);
    assert.deepEqual(vmsTable(v), before);
    assert.equal(allocations(v).length, 2);
    assert.equal(v.operator.launches, 2, 'no process was launched for it');

    assertOk(await v.api('POST', `/api/v1/vms/${a.id}/stop`));
    const cStarted = assertOk(await v.api('POST', `/api/v1/vms/${c.id}/start`));
    assert.equal(cStarted.state, 'running');
    assert.equal(cStarted.address, a.address);
    assert.deepEqual(allocations(v).map((x) => x.vm_id).sort(), [b.id, c.id].sort());
  });

  it('a VM that failed for lack of an address can start later from stopped', async (t) => {
    const v = await dryVman(t, { env: { VMAN_RANGE: '10.0.2.15-10.0.2.15' } });
    const a = await startedVm(v, 'a');
    const b = await createVm(v, 'b');
    assertOk(await v.api('POST', `/api/v1/vms/${a.id}/stop`));
    const bStarted = assertOk(await v.api('POST', `/api/v1/vms/${b.id}/start`));
    assert.equal(bStarted.address, '10.0.2.15');
    assertProblem(await v.api('POST', `/api/v1/vms/${a.id}/start`), 409, /no free address/);
    assert.equal((await getVm(v, a.id)).state, 'stopped');
  });

  it('concurrent starts of 5 VMs over a range of 5 all get distinct addresses', async (t) => {
    const v = await dryVman(t, { env: { VMAN_RANGE: '10.0.2.20-10.0.2.24' } });
    const vms = [];
    for (let i = 0; i < 5; i++) vms.push(await createVm(v, `p${i}`));
    const results = await Promise.all(vms.map((vm) => v.api('POST', `/api/v1/vms/${vm.id}/start`)));
    for (const r of results) assertOk(r);
    const addresses = results.map((r) => r.body.address).sort();
    assert.deepEqual(addresses, ['10.0.2.20', '10.0.2.21', '10.0.2.22', '10.0.2.23', '10.0.2.24']);
    assert.equal(allocations(v).length, 5);
    // A sixth finds none.
    const sixth = await createVm(v, 'p5');
    assertProblem(await v.api('POST', `/api/v1/vms/${sixth.id}/start`), 409, /no free address/);
  });
});

describe('VMs API: adoption after a vman restart', () => {
  it('a running VM is adopted by the next vman (same pid, same address) and its crash is still noticed', async (t) => {
    const operator = new DryRunOperator();
    const a = await dryVman(t, { operator });
    const vm = await startedVm(a);
    await a.vman.close();
    assert.equal(operator.vms.get(vm.id)?.alive, true, 'VMs outlive vman');

    const b = await a.reopen();
    const adopted = await getVm(b, vm.id);
    assert.equal(adopted.state, 'running');
    assert.equal(adopted.pid, vm.pid);
    assert.equal(adopted.address, vm.address);
    assert.equal(operator.launches, 1, 'adoption launches nothing');

    operator.vms.get(vm.id)!.crash();
    const after = await eventually(async () => {
      const cur = await getVm(b, vm.id);
      return cur.state === 'error' ? cur : undefined;
    }, 'the adopted VM to be in error');
    assert.ok(after.state_reason);
    assert.equal(after.address, null);
    assert.deepEqual(allocations(b), []);
  });

  it('the adopted VM can be stopped by the next vman', async (t) => {
    const operator = new DryRunOperator();
    const a = await dryVman(t, { operator });
    const vm = await startedVm(a);
    await a.vman.close();
    const b = await a.reopen();
    const stopped = assertOk(await b.api('POST', `/api/v1/vms/${vm.id}/stop`));
    assert.equal(stopped.state, 'stopped');
    assert.equal(operator.vms.get(vm.id)?.alive, false);
    assert.deepEqual(allocations(b), []);
  });

  it('a VM whose process died while vman was away is in error, with its address released', async (t) => {
    const operator = new DryRunOperator();
    const a = await dryVman(t, { operator });
    const vm = await startedVm(a);
    const other = await createVm(a, 'untouched');
    await a.vman.close();
    operator.vms.get(vm.id)!.alive = false;

    const b = await a.reopen();
    const lost = await getVm(b, vm.id);
    assert.equal(lost.state, 'error');
    assert.match(lost.state_reason, /gone/);
    assert.equal(lost.pid, null);
    assert.equal(lost.address, null);
    assert.deepEqual(allocations(b), []);
    assert.equal((await getVm(b, other.id)).state, 'created');
    // And it can be started again.
    assert.equal(assertOk(await b.api('POST', `/api/v1/vms/${vm.id}/start`)).state, 'running');
  });
});

describe('VMs API: the serial console', () => {
  it('reads the console from an offset, and from where the last read ended only what is new', async (t) => {
    const v = await dryVman(t);
    const vm = assertOk(await v.api('POST', '/api/v1/vms', { name: 'c', template: 'small' }), 201);
    assert.deepEqual(assertOk(await v.api('GET', `/api/v1/vms/${vm.id}/console`)), { offset: 0, next_offset: 0, data: '' });
    fs.writeFileSync(`${vm.storage_dir}/serial.log`, 'booting\n');
    const first = assertOk(await v.api('GET', `/api/v1/vms/${vm.id}/console`));
    assert.deepEqual(first, { offset: 0, next_offset: 8, data: 'booting\n' });
    fs.appendFileSync(`${vm.storage_dir}/serial.log`, 'ready\n');
    assert.deepEqual(assertOk(await v.api('GET', `/api/v1/vms/${vm.id}/console?offset=${first.next_offset}`)), { offset: 8, next_offset: 14, data: 'ready\n' });
    // A console that began again (the VM restarted) is read from its start.
    fs.writeFileSync(`${vm.storage_dir}/serial.log`, 'again\n');
    assert.deepEqual(assertOk(await v.api('GET', `/api/v1/vms/${vm.id}/console?offset=14`)), { offset: 0, next_offset: 6, data: 'again\n' });
    assertProblem(await v.api('GET', `/api/v1/vms/${vm.id}/console?offset=-1`), 400, /offset/);
    assertProblem(await v.api('GET', '/api/v1/vms/vm-000000000000/console'), 404);
  });
});
