// `vman doctor`: checked on this host, not over the API; exit 0 when VMs can
// start, 1 naming what stops them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { loadGuestImage } from '../src/host/guest-image.ts';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'vman.mjs');

async function doctor(t: { after(fn: () => void): void }, env: Record<string, string>, args: string[] = [], dirMode = 0o711) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-doctor-test-'));
  // vman as root: a VM's own user must pass through every folder above the storage.
  fs.chmodSync(dir, dirMode);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // TCG asked for: the decision is immediate, no probe VM boots in a unit test.
  const r = await execa(process.execPath, [bin, 'doctor', ...args], {
    reject: false, timeout: 30_000, env: { VMAN_ACCEL: 'tcg', VMAN_STORAGE_PATH: path.join(dir, 'storage'), ...env },
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const guestBuilt = await loadGuestImage().then(() => true, () => false);

describe('vman doctor', () => {
  it('without the guest image: exit 1, naming it', async (t) => {
    const r = await doctor(t, { VMAN_GUEST_DIR: path.join(os.tmpdir(), 'vman-no-such-guest') });
    assert.equal(r.exitCode, 1);
    assert.match(r.stdout, /^FAIL +guest image +the test guest image is not built/m);
    assert.match(r.stderr, /^vman: VMs cannot start: .*guest image: /);
  });

  it('without QEMU on PATH: exit 1, naming QEMU', async (t) => {
    const r = await doctor(t, { PATH: '/nonexistent' });
    assert.equal(r.exitCode, 1);
    assert.match(r.stdout, /^FAIL +qemu +QEMU \(qemu-system-x86_64 or qemu-kvm\) not found on PATH/m);
    assert.match(r.stderr, /VMs cannot start: qemu: /);
  });

  it('on a host with QEMU and the guest image: exit 0, with versions, accelerator and storage', { skip: guestBuilt ? false : 'the test guest image is not built here' }, async (t) => {
    const r = await doctor(t, {}, ['--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { can_start_vms: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    assert.equal(report.can_start_vms, true);
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    assert.match(byName.get('qemu')?.detail ?? '', /^\d+\.\d+\.\d+ \(/);
    assert.match(byName.get('qemu-img')?.detail ?? '', /^\d+\.\d+\.\d+ \(/);
    assert.equal(byName.get('accelerator')?.detail, 'TCG: TCG requested (VMAN_ACCEL=tcg)');
    assert.match(byName.get('storage')?.detail ?? '', /GB free/);
    const root = process.getuid?.() === 0;
    assert.match(byName.get('confinement')?.detail ?? '', root ? /^per-vm-user: each VM's QEMU runs as its own user/ : /^vman-user: /);
    assert.match(byName.get('confinement')?.detail ?? '', /-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny/);
    if (root) assert.equal(byName.get('storage reach')?.ok, true);
  });

  it('as root, with a folder above the storage that others cannot pass: exit 1, naming it', { skip: process.getuid?.() === 0 ? false : 'only vman as root gives QEMU a user of its own' }, async (t) => {
    const r = await doctor(t, {}, [], 0o700);
    assert.equal(r.exitCode, 1);
    const folder = path.join(os.tmpdir(), 'vman-doctor-test-').replace(/[/.]/g, '\\$&');
    assert.match(r.stdout, new RegExp(`^FAIL +storage reach +${folder}\\w+ \\(mode 700\\) keeps a VM's own user out of `, 'm'));
  });
});
