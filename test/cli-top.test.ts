// `vman vm top`: rows from two readings of /metrics (CPU share over the
// interval), the table people read, and the command run as a process.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseExposition } from '../src/metrics/exposition.ts';
import { topRows, topTable } from '../src/cli/top.ts';
import { formatBytes } from '../src/cli/table.ts';
import { dryVman } from './helpers/dry-vman.ts';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'vman.mjs');

const scrape = (cpuA: number, cpuB: number): string => `
vman_vm_cpu_seconds_total{vm="vm-a",name="web"} ${cpuA}
vman_vm_cpu_seconds_total{vm="vm-b",name="db"} ${cpuB}
vman_vm_resident_memory_bytes{vm="vm-a",name="web"} 104857600
vman_vm_resident_memory_bytes{vm="vm-b",name="db"} 52428800
vman_disk_written_bytes_total{vm="vm-a",disk="root-a"} 1024
vman_disk_written_bytes_total{vm="vm-a",disk="disk-1"} 8388608
vman_disk_read_bytes_total{vm="vm-a",disk="root-a"} 4096
vman_disk_writes_total{vm="vm-a",disk="disk-1"} 8
vman_disk_errors_total{vm="vm-a",disk="disk-1",op="write"} 0
vman_vms{state="running"} 2
`;

describe('vman vm top: figures', () => {
  it('sums each VM\'s disks, and gives CPU as a share of one core over the interval', () => {
    const rows = topRows(parseExposition(scrape(12.5, 3)), parseExposition(scrape(12, 3)), 2);
    assert.deepEqual(rows.map((r) => [r.name, r.cpu_percent, r.cpu_seconds, r.memory_bytes, r.written_bytes, r.read_bytes, r.writes]), [
      ['db', 0, 3, 52428800, 0, 0, 0],
      ['web', 25, 12.5, 104857600, 8389632, 4096, 8],
    ]);
  });

  it('gives no share for a VM whose QEMU began again between the readings', () => {
    const rows = topRows(parseExposition(scrape(0.5, 3)), parseExposition(scrape(12, 3)), 1);
    assert.deepEqual(rows.map((r) => [r.name, r.cpu_percent]), [['db', 0], ['web', null]]);
  });

  it('without an earlier reading there is no CPU share, only totals', () => {
    const rows = topRows(parseExposition(scrape(1, 2)), undefined, 0);
    assert.deepEqual(rows.map((r) => r.cpu_percent), [null, null]);
    assert.match(topTable(rows), /^NAME +ID +CPU% +CPU-S +MEMORY +READ +WRITTEN +READS +WRITES +ERRORS\ndb +vm-b +- +2\.00 +50\.0 MiB +0 B +0 B +0 +0 +0\n/);
  });

  it('says so when no VM runs', () => {
    assert.equal(topTable([]), 'no running VMs\n');
    assert.deepEqual([0, 1023, 1024, 8 * 1024 ** 3].map((n) => formatBytes(n)), ['0 B', '1023 B', '1.0 KiB', '8.0 GiB']);
  });
});

describe('vman vm top: the command', () => {
  it('reads /metrics with the token; a wrong token exits 1 with the API\'s answer; a bad interval exits 2', async (t) => {
    const v = await dryVman(t, { env: { VMAN_LISTEN: '127.0.0.1:0', VMAN_API_TOKEN: 'tok' } });
    const url = await v.vman.listen();
    const run = (args: string[], token: string) => execa('node', [bin, 'vm', 'top', ...args], { reject: false, timeout: 30_000, env: { VMAN_URL: url, VMAN_API_TOKEN: token } });
    const ok = await run(['--interval', '0'], 'tok');
    assert.equal(ok.exitCode, 0, String(ok.stderr));
    assert.equal(ok.stdout, 'no running VMs');
    const json = await run(['--interval', '0.1', '--json'], 'tok');
    assert.equal(json.exitCode, 0, String(json.stderr));
    assert.deepEqual(JSON.parse(String(json.stdout)), []);
    const refused = await run(['--interval', '0'], 'wrong');
    assert.equal(refused.exitCode, 1);
    assert.match(String(refused.stderr), /401/);
    const bad = await run(['--interval', 'soon'], 'tok');
    assert.equal(bad.exitCode, 2);
    assert.match(String(bad.stderr), /"soon" is not a number of seconds/);
  });
});
