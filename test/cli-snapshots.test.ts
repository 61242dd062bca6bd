// `vman vm snapshot ...` and `vman vm create --from VM@SNAPSHOT` (bin/vman.mjs,
// run as a process) against an in-process dry-run vman on a real port: what
// they print, what they change, and their exit codes (0 done, 1 refused with
// the problem's detail, 2 usage).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { formatBytes } from '../src/cli/table.ts';
import { dryVman, type DryVman } from './helpers/dry-vman.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'vman.mjs');

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function vman(url: string, args: string[]): Promise<Run> {
  const r = await execa('node', [bin, ...args], { reject: false, timeout: 30_000, env: { VMAN_URL: url, VMAN_API_TOKEN: '' } });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const ok = (r: Run): Run => {
  assert.equal(r.exitCode, 0, `exit ${r.exitCode}: ${r.stderr}`);
  return r;
};

describe('vman vm snapshot: create, list, restore, rm; vm create --from', () => {
  let v: DryVman;
  let url: string;
  const vmOf = (name: string) => v.rows('SELECT id, state, origin_snapshot_id, resume_from FROM vms WHERE name = ?', name)[0] as
    { id: string; state: string; origin_snapshot_id: string | null; resume_from: string | null } | undefined;
  const snapshotsOf = (name: string) => v.rows('SELECT s.name, s.with_memory FROM snapshots s JOIN vms m ON m.id = s.vm_id WHERE m.name = ? ORDER BY s.created_at', name);

  before(async () => {
    v = await dryVman({ after: () => undefined }, { env: { VMAN_LISTEN: '127.0.0.1:0' } });
    url = await v.vman.listen();
    ok(await vman(url, ['vm', 'create', 'web', '--template', 'small']));
  });
  after(async () => v?.cleanup());

  it('snapshot create of a VM at rest prints a snapshot without memory', async () => {
    const r = ok(await vman(url, ['vm', 'snapshot', 'create', 'web', 'cold']));
    assert.match(r.stdout, /^name: +cold$/m);
    assert.match(r.stdout, /^vm: +web$/m);
    assert.match(r.stdout, /^memory: +no \(disks only\)$/m);
    assert.match(r.stdout, /^pause: +-$/m);
    assert.match(r.stdout, /^state size: +-$/m);
    assert.deepEqual(snapshotsOf('web'), [{ name: 'cold', with_memory: 0 }]);
  });

  it('snapshot create of a running VM prints its memory, the pause and the state size', async () => {
    ok(await vman(url, ['vm', 'start', 'web']));
    const r = ok(await vman(url, ['vm', 'snapshot', 'create', 'web', 'warm']));
    assert.match(r.stdout, /^memory: +yes \(512M\)$/m);
    assert.match(r.stdout, /^pause: +\d+ ms$/m);
    assert.match(r.stdout, /^state size: +\d+ B$/m);
    assert.equal(vmOf('web')?.state, 'running');
  });

  it('snapshot list prints a table: name, memory, pause, state size, clones, created', async () => {
    const r = ok(await vman(url, ['vm', 'snapshot', 'list', 'web']));
    const [head, ...lines] = r.stdout.trimEnd().split('\n');
    assert.match(head ?? '', /^NAME +MEMORY +PAUSE +STATE SIZE +CLONES +CREATED$/);
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^cold +no +- +- +- +\d{4}-\d\d-\d\dT\S+Z$/);
    assert.match(lines[1] ?? '', /^warm +yes +\d+ ms +\d+ B +- +\d{4}-\d\d-\d\dT\S+Z$/);
  });

  it('--json prints what the API answers', async () => {
    const r = ok(await vman(url, ['--json', 'vm', 'snapshot', 'list', 'web']));
    const id = vmOf('web')!.id;
    assert.deepEqual(JSON.parse(r.stdout), (await v.api('GET', `/api/v1/vms/${id}/snapshots`)).body);
  });

  it('a duplicate name exits 1 with the problem\'s detail and status', async () => {
    const r = await vman(url, ['vm', 'snapshot', 'create', 'web', 'warm']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /already has a snapshot named warm \(HTTP 409 Conflict\)/);
    assert.equal(r.stdout, '');
  });

  it('an unknown snapshot exits 1 naming it; an unknown VM exits 1 naming it', async () => {
    const none = await vman(url, ['vm', 'snapshot', 'rm', 'web', 'nope']);
    assert.equal(none.exitCode, 1);
    assert.match(none.stderr, /no snapshot named "nope" \(HTTP 404/);
    const noVm = await vman(url, ['vm', 'snapshot', 'list', 'no-such-vm']);
    assert.equal(noVm.exitCode, 1);
    assert.match(noVm.stderr, /"no-such-vm".*HTTP 404/);
  });

  it('vm create --from VM@SNAPSHOT makes a clone whose first start resumes the snapshot', async () => {
    const r = ok(await vman(url, ['vm', 'create', 'web-2', '--from', 'web@warm']));
    assert.match(r.stdout, /^cloned from: +vm-\S+@warm \(its first start resumes it\)$/m);
    assert.match(r.stdout, /^state: +created$/m);
    const clone = vmOf('web-2')!;
    assert.ok(clone.origin_snapshot_id !== null && clone.origin_snapshot_id === clone.resume_from);
    ok(await vman(url, ['vm', 'start', 'web-2']));
    assert.deepEqual({ ...vmOf('web-2'), id: undefined }, { id: undefined, state: 'running', origin_snapshot_id: clone.origin_snapshot_id, resume_from: null });
    const list = ok(await vman(url, ['vm', 'snapshot', 'list', 'web']));
    assert.match(list.stdout, /^warm +yes +.* web-2 +\S+$/m);
  });

  it('snapshot rm of a snapshot a clone stands on exits 1 naming the clone', async () => {
    const r = await vman(url, ['vm', 'snapshot', 'rm', 'web', 'warm']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /clones whose disks stand on it: web-2.*HTTP 409/);
    assert.equal(snapshotsOf('web').length, 2);
  });

  it('restore of a running VM without --force exits 1 and says --force; with it, the VM runs again', async () => {
    const before = v.rows("SELECT * FROM vms WHERE name = 'web'");
    const refused = await vman(url, ['vm', 'snapshot', 'restore', 'web', 'warm']);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /throws away its memory/);
    assert.match(refused.stderr, /here: vman vm snapshot restore --force web warm/);
    assert.deepEqual(v.rows("SELECT * FROM vms WHERE name = 'web'"), before);
    const forced = ok(await vman(url, ['vm', 'snapshot', 'restore', '--force', 'web', 'warm']));
    assert.match(forced.stdout, /^NAME +ID +STATE +ADDRESS +SSH +TEMPLATE\n/);
    assert.match(forced.stdout, /^web +vm-\S+ +running /m);
  });

  it('restore of a snapshot without memory ends the VM stopped', async () => {
    ok(await vman(url, ['vm', 'stop', 'web']));
    const r = ok(await vman(url, ['vm', 'snapshot', 'restore', 'web', 'cold']));
    assert.match(r.stdout, /^web +vm-\S+ +stopped /m);
  });

  it('snapshot rm removes it', async () => {
    const r = ok(await vman(url, ['vm', 'snapshot', 'rm', 'web', 'cold']));
    assert.equal(r.stdout, 'removed snapshot cold of VM web');
    assert.deepEqual(snapshotsOf('web'), [{ name: 'warm', with_memory: 1 }]);
  });

  it('a clone of a snapshot that does not exist exits 1 and creates nothing', async () => {
    const r = await vman(url, ['vm', 'create', 'web-3', '--from', 'web@cold']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /no snapshot named "cold" \(HTTP 404/);
    assert.equal(vmOf('web-3'), undefined);
  });
});

describe('vman vm create: usage', () => {
  // Refused before any request: nothing listens here.
  const url = 'http://127.0.0.1:9';

  it('neither --template nor --from is a usage error (2) that says what it needs', async () => {
    const r = await vman(url, ['vm', 'create', 'web']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /needs --template <template>, or --from <vm@snapshot>/);
    assert.doesNotMatch(r.stderr, /could not reach/);
  });

  for (const bad of ['web', '@warm', 'a@b@c']) {
    it(`--from ${bad} (not VM@SNAPSHOT) is a usage error (2)`, async () => {
      const r = await vman(url, ['vm', 'create', 'x', '--from', bad]);
      assert.equal(r.exitCode, 2);
      assert.match(r.stderr, /is not VM@SNAPSHOT/);
    });
  }

  it('vm snapshot without its arguments is a usage error (2)', async () => {
    const r = await vman(url, ['vm', 'snapshot', 'create', 'web']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /missing required argument 'name'/);
  });

  it('state sizes are printed for people', () => {
    assert.deepEqual([0, 812, 1536, 512 * 1024 ** 2, 3 * 1024 ** 3, null].map(formatBytes), ['0 B', '812 B', '1.5 KiB', '512.0 MiB', '3.0 GiB', null]);
  });

  it('vm snapshot --help lists its commands on stdout', async () => {
    const r = await vman(url, ['vm', 'snapshot', '--help']);
    assert.equal(r.exitCode, 0, r.stderr);
    for (const c of ['create', 'list', 'rm', 'restore']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
  });
});
