import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decideAccelerator, type AccelProbeOptions, type ProbeOutcome } from '../src/host/accel-probe.ts';
import type { GuestImage } from '../src/host/guest-image.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'vman-accel-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function options(over: Partial<AccelProbeOptions> & { outcome?: ProbeOutcome }): AccelProbeOptions & { probes: number } {
  const state = { probes: 0 };
  const o = {
    qemu: { path: '/usr/bin/qemu-system-x86_64', version: { major: 7, minor: 2, micro: 22 }, banner: '' },
    guest: {} as GuestImage,
    requested: 'auto' as const,
    cacheFile: path.join(dir, `cache-${++n}.json`),
    kvmAccessible: async () => true,
    probe: async () => {
      state.probes++;
      return over.outcome ?? { ok: false, detail: 'no ready marker within 6000 ms' };
    },
    ...over,
  };
  return Object.defineProperty(o, 'probes', { get: () => state.probes }) as AccelProbeOptions & { probes: number };
}

describe('accelerator decision', () => {
  test('TCG when asked for, without probing', async () => {
    const o = options({ requested: 'tcg' });
    const d = await decideAccelerator(o);
    assert.equal(d.accel, 'tcg');
    assert.equal(o.probes, 0);
  });

  test('TCG when /dev/kvm is not accessible, without probing', async () => {
    const o = options({ kvmAccessible: async () => false });
    const d = await decideAccelerator(o);
    assert.equal(d.accel, 'tcg');
    assert.match(d.reason, /\/dev\/kvm/);
    assert.equal(o.probes, 0);
  });

  test('falls back to TCG when the KVM probe VM does not boot, and says why', async () => {
    const o = options({});
    const d = await decideAccelerator(o);
    assert.equal(d.accel, 'tcg');
    assert.match(d.reason, /did not boot \(no ready marker within 6000 ms\)/);
    assert.equal(o.probes, 1);
  });

  test('KVM when the probe VM boots', async () => {
    const d = await decideAccelerator(options({ outcome: { ok: true, ms: 900 } }));
    assert.equal(d.accel, 'kvm');
    assert.match(d.reason, /900 ms/);
  });

  test('the decision is cached per QEMU version and host kernel', async () => {
    const first = options({ outcome: { ok: true, ms: 900 } });
    await decideAccelerator(first);
    const second = options({ cacheFile: first.cacheFile, outcome: { ok: false, detail: 'x' } });
    const d = await decideAccelerator(second);
    assert.equal(d.accel, 'kvm');
    assert.equal(d.fromCache, true);
    assert.equal(second.probes, 0);
    const cache = JSON.parse(readFileSync(first.cacheFile!, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(cache), [`qemu 7.2.22 on kernel ${os.release()}`]);
  });

  test('another QEMU version probes again', async () => {
    const first = options({ outcome: { ok: true, ms: 900 } });
    await decideAccelerator(first);
    const second = options({ cacheFile: first.cacheFile, qemu: { path: 'q', version: { major: 8, minor: 0, micro: 0 }, banner: '' } });
    const d = await decideAccelerator(second);
    assert.equal(second.probes, 1);
    assert.equal(d.accel, 'tcg');
  });

  test('KVM requested but unusable is an error, not a silent fallback', async () => {
    await assert.rejects(decideAccelerator(options({ requested: 'kvm' })), /KVM requested/);
    await assert.rejects(decideAccelerator(options({ requested: 'kvm', kvmAccessible: async () => false })), /KVM requested/);
  });
});
