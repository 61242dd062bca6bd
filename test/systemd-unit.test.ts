// contrib/vman.service: systemd accepts it without a single warning, and it
// keeps the promises an operator relies on (VMs outlive the service, the stop
// waits for vman's graceful shutdown, storage in /var/lib/vman).
//
// `systemd-analyze verify` checks that ExecStart's program exists, and
// /usr/bin/vman is not installed here: it verifies a copy, named vman.service
// too, whose ExecStart runs the checkout's bin/vman.mjs through this node.
// Only the program changes; every other line is verified as written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const unitFile = path.join(root, 'contrib', 'vman.service');
const INSTALLED_COMMAND = '/usr/bin/vman';
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

/** The unit's `Key=value` lines of one section, comments and blank lines left out. */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

/** Seconds of a systemd time span such as `45`, `45s`, `1min 30s`. */
function seconds(span: string): number {
  const units: Record<string, number> = { '': 1, s: 1, sec: 1, m: 60, min: 60, h: 3600 };
  let total = 0;
  for (const m of span.matchAll(/(\d+)\s*([a-z]*)/g)) {
    const unit = units[m[2]!];
    assert.ok(unit !== undefined, `unknown time unit in ${span}`);
    total += Number(m[1]) * unit;
  }
  return total;
}

describe('the systemd unit contrib/vman.service', () => {
  const text = fs.readFileSync(unitFile, 'utf8');
  const service = section(text, 'Service');

  it('passes systemd-analyze verify with no warning', { skip: hasSystemdAnalyze ? false : 'systemd-analyze is not installed' }, (t) => {
    assert.match(text, new RegExp(`^ExecStart=${INSTALLED_COMMAND} serve$`, 'm'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-unit-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const copy = path.join(dir, 'vman.service');
    fs.writeFileSync(copy, text.replace(`ExecStart=${INSTALLED_COMMAND} `, `ExecStart=${process.execPath} ${path.join(root, 'bin', 'vman.mjs')} `));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    // A key systemd does not understand is only a warning on stderr: exit 0 alone proves little.
    assert.equal(`${r.stdout}${r.stderr}`, '', `systemd-analyze verify said (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    assert.equal(r.status, 0);
  });

  it('stops vman only, so the VMs it started keep running (KillMode=process)', () => {
    assert.deepEqual(service.get('KillMode'), ['process']);
  });

  it('waits longer than vman\'s 30 s shutdown deadline before it kills vman', () => {
    const stop = service.get('TimeoutStopSec');
    assert.equal(stop?.length, 1, 'one TimeoutStopSec');
    assert.ok(seconds(stop![0]!) > 30, `TimeoutStopSec=${stop![0]} is not longer than VMAN_SHUTDOWN_TIMEOUT's 30 s`);
  });

  it('keeps storage and images in /var/lib/vman, restarts on failure, serves', () => {
    assert.deepEqual(service.get('Environment'), ['VMAN_STORAGE_PATH=/var/lib/vman', 'VMAN_IMAGE_DIRS=/var/lib/vman/images', 'VMAN_LISTEN=127.0.0.1:8600']);
    assert.deepEqual(service.get('Restart'), ['on-failure']);
    assert.deepEqual(service.get('ExecStart'), [`${INSTALLED_COMMAND} serve`]);
  });

  it('has no hardening that breaks QEMU (devices, JIT, its own mount namespace)', () => {
    const breaking = ['PrivateDevices', 'DevicePolicy', 'DeviceAllow', 'ProtectClock', 'MemoryDenyWriteExecute', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'ReadWritePaths', 'ReadOnlyPaths', 'InaccessiblePaths', 'ProtectKernelTunables', 'ProtectControlGroups', 'PrivateMounts', 'PrivateNetwork'];
    assert.deepEqual(breaking.filter((k) => service.has(k)), []);
    assert.deepEqual(service.get('NoNewPrivileges'), ['yes']);
  });
});
