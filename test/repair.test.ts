// Repair of an observer report, over the dry-run operator: it settles VMs
// whose QEMU is gone, gives back stray addresses, takes out of QEMU what no
// disk record accounts for, and touches nothing else.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import type { Finding, ObserverReport } from '../src/observer/findings.ts';
import { DryRunOperator } from '../src/operator/dry-run-operator.ts';
import { RepairService } from '../src/services/repair.ts';
import { dryVman, type ApiResponse, type DryVman } from './helpers/dry-vman.ts';

function ok(res: ApiResponse, status = 200): any {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw}`);
  return res.body;
}

function report(...findings: Finding[]): ObserverReport {
  return { checkedAt: new Date().toISOString(), durationMs: 1, findings, counts: { vms: 0, disks: 0, processes: 0, diskFiles: 0 } };
}

const notRunning = (vmId: string, observed = 'no QEMU process', pid?: number): Finding => ({
  kind: 'vm-not-running', resourceType: 'vm', resourceId: vmId, recorded: 'running', observed, ...(pid !== undefined && { pid }),
});

const repairs = (v: DryVman) => new RepairService({ db: v.vman.db, runtime: v.vman.runtime });
const dump = (v: DryVman) => ({ vms: v.rows('SELECT * FROM vms'), disks: v.rows('SELECT * FROM disks'), addresses: v.rows('SELECT * FROM address_allocations') });

async function running(v: DryVman, name: string): Promise<string> {
  const vm = ok(await v.api('POST', '/api/v1/vms', { name, template: 'small' }), 201);
  ok(await v.api('POST', `/api/v1/vms/${vm.id}/start`));
  return vm.id;
}

describe('repair', () => {
  it('settles a VM whose QEMU is gone: error, no address, no mount points; nothing else changes', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const gone = await running(v, 'gone');
    const fine = await running(v, 'fine');
    const disk = ok(await v.api('POST', '/api/v1/disks', { name: 'data', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${disk.id}/attach`, { vm_id: gone }));
    v.operator.vms.get(gone)!.alive = false; // died without vman noticing
    const before = dump(v);

    const result = await repairs(v).repair(report(notRunning(gone)));
    const reason = 'observer: QEMU process gone (no QEMU process)';
    assert.deepEqual(result.changed, [{ vmId: gone, from: 'running', to: 'error', reason }]);
    assert.equal(result.releasedAddresses.length, 1);
    const row = v.rows('SELECT state, state_reason, pid FROM vms WHERE id = ?', gone)[0];
    assert.deepEqual(row, { state: 'error', state_reason: reason, pid: null });
    assert.deepEqual(v.rows('SELECT vm_id, mount_point FROM disks'), [{ vm_id: gone, mount_point: null }]);
    const after = dump(v);
    assert.deepEqual(after.vms.filter((r: any) => r.id === fine), before.vms.filter((r: any) => r.id === fine));
    assert.deepEqual(after.addresses, before.addresses.filter((a: any) => a.vm_id === fine));
  });

  it('leaves a QEMU that is alive but not running as it is (a stop with force ends it)', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const halted = await running(v, 'halted');
    const before = dump(v);
    const result = await repairs(v).repair(report(notRunning(halted, 'QEMU is shutdown', 77)));
    assert.deepEqual(result.changed, []);
    assert.deepEqual(dump(v), before);
  });

  it('gives back an address held by a VM at rest, and leaves one a VM uses', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const on = await running(v, 'on');
    const off = ok(await v.api('POST', '/api/v1/vms', { name: 'off', template: 'small' }), 201).id as string;
    v.vman.db.addresses.allocate('10.0.2.99', off);
    const onAddress = v.vman.db.addresses.getByVm(on)!.address;
    const f = (address: string): Finding => ({ kind: 'address-without-running-vm', resourceType: 'address', resourceId: address, recorded: '', observed: '' });
    const result = await repairs(v).repair(report(f('10.0.2.99'), f(onAddress)));
    assert.deepEqual(result.releasedAddresses, ['10.0.2.99']);
    assert.deepEqual(v.rows('SELECT address FROM address_allocations'), [{ address: onAddress }]);
  });

  it('takes out of QEMU a disk no record attaches to that VM, and leaves recorded disks and the file alone', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const app = await running(v, 'app');
    const stray = ok(await v.api('POST', '/api/v1/disks', { name: 'stray', size_gb: 1 }), 201);
    const kept = ok(await v.api('POST', '/api/v1/disks', { name: 'kept', size_gb: 1 }), 201);
    ok(await v.api('POST', `/api/v1/disks/${kept.id}/attach`, { vm_id: app }));
    const qemu = v.operator.vms.get(app)!;
    qemu.disks.set(stray.id, '/dev/vdc'); // held by QEMU, unknown to the database
    const before = dump(v);
    const finding: Finding = { kind: 'qemu-block-unrecorded', resourceType: 'disk', resourceId: stray.id, vmId: app, recorded: '', observed: '' };

    const result = await repairs(v).repair(report(finding));
    assert.deepEqual(result.removedFromQemu, [{ vmId: app, devices: [`disk-${stray.id}`], nodes: [`drive-${stray.id}`, `file-${stray.id}`] }]);
    assert.deepEqual([...qemu.disks.keys()], [kept.id]);
    assert.deepEqual(dump(v), before, 'no row changed');
    assert.ok(fs.existsSync(stray.path), 'the disk file is untouched');
  });

  it('ignores orphans and missing files, snapshot folders and files too: it never kills or deletes', async (t) => {
    const v = await dryVman(t, { operator: new DryRunOperator() });
    const x = await running(v, 'x');
    const before = dump(v);
    const result = await repairs(v).repair(report(
      { kind: 'orphan-process', resourceType: 'process', resourceId: String(process.pid), recorded: '', observed: '', pid: process.pid },
      { kind: 'orphan-disk-file', resourceType: 'file', resourceId: '/nowhere', recorded: '', observed: '', path: '/nowhere' },
      { kind: 'vm-process-unexpected', resourceType: 'vm', resourceId: x, recorded: '', observed: '', pid: process.pid },
      { kind: 'orphan-vm-folder', resourceType: 'folder', resourceId: '/nowhere', recorded: '', observed: '' },
      { kind: 'orphan-snapshot-files', resourceType: 'folder', resourceId: '/nowhere', vmId: x, recorded: '', observed: '', path: '/nowhere' },
      { kind: 'snapshot-files-missing', resourceType: 'snapshot', resourceId: 'snap-000000000000', vmId: x, recorded: '', observed: '' },
    ));
    assert.deepEqual(result, { changed: [], releasedAddresses: [], removedFromQemu: [], failed: [] });
    assert.deepEqual(dump(v), before);
    assert.equal(v.operator.vms.get(x)!.alive, true);
  });
});
