// The `vman` command (bin/vman.mjs, run as a process) against an in-process
// dry-run vman listening on a real port: tables and --json, exit codes 0/1/2,
// help on stdout, --version, and names resolved to ids.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { dryVman, type DryVman } from './helpers/dry-vman.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'vman.mjs');

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function vman(url: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await execa('node', [bin, ...args], {
    reject: false, timeout: 30_000,
    env: { VMAN_URL: url, VMAN_API_TOKEN: '', ...env },
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A dry-run vman on 127.0.0.1:<free port>; its base URL. */
async function listening(t: { after(fn: () => Promise<void>): void }, env: Record<string, string> = {}): Promise<{ v: DryVman; url: string }> {
  const v = await dryVman(t, { env: { VMAN_LISTEN: '127.0.0.1:0', ...env } });
  const url = await v.vman.listen();
  return { v, url };
}

describe('vman command: VMs, disks, templates', () => {
  let v: DryVman;
  let url: string;
  // Cleaned up by this describe's own `after`, not by one registered while `before` runs.
  before(async () => ({ v, url } = await listening({ after: () => undefined })));
  after(async () => v?.cleanup());

  it('creates a VM from a template named, starts it by name and lists it in a table', async () => {
    const created = await vman(url, ['vm', 'create', 'web', '--template', 'small']);
    assert.equal(created.exitCode, 0, created.stderr);
    const started = await vman(url, ['vm', 'start', 'web']);
    assert.equal(started.exitCode, 0, started.stderr);
    const row = v.rows("SELECT id, state, template_id FROM vms WHERE name = 'web'")[0] as { id: string; state: string; template_id: string };
    assert.equal(row.state, 'running');
    assert.equal(row.template_id, 'tpl-small');

    const list = await vman(url, ['vm', 'list']);
    assert.equal(list.exitCode, 0, list.stderr);
    const [head, line] = list.stdout.trimEnd().split('\n');
    assert.match(head ?? '', /^NAME +ID +STATE +ADDRESS +SSH +TEMPLATE$/);
    assert.match(line ?? '', new RegExp(`^web +${row.id} +running +10\\.0\\.2\\.\\d+ +\\d+ +small$`));
  });

  it('--json prints exactly what the API answers, for a list and for one object', async () => {
    const list = await vman(url, ['--json', 'vm', 'list']);
    assert.equal(list.exitCode, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), (await v.api('GET', '/api/v1/vms')).body);
    const show = await vman(url, ['vm', 'show', 'web', '--json']);
    assert.equal(show.exitCode, 0, show.stderr);
    const id = (v.rows("SELECT id FROM vms WHERE name = 'web'")[0] as { id: string }).id;
    assert.deepEqual(JSON.parse(show.stdout), (await v.api('GET', `/api/v1/vms/${id}`)).body);
  });

  it('creates a disk and attaches it by names; the disk table names the VM and the device', async () => {
    assert.equal((await vman(url, ['disk', 'create', 'data', '--size', '1'])).exitCode, 0);
    const attached = await vman(url, ['disk', 'attach', 'data', 'web']);
    assert.equal(attached.exitCode, 0, attached.stderr);
    const disk = v.rows("SELECT d.state, v.name AS vm FROM disks d JOIN vms v ON v.id = d.vm_id WHERE d.name = 'data'")[0] as { state: string; vm: string };
    assert.deepEqual(disk, { state: 'attached', vm: 'web' });
    const list = await vman(url, ['disk', 'list']);
    assert.match(list.stdout, /^NAME +ID +SIZE +STATE +VM +DEVICE\n/);
    assert.match(list.stdout, /^data +disk-\S+ +1G +attached +web +\/dev\/vd[b-z]$/m);
  });

  it('a refusal exits 1 with the problem\'s detail and status on stderr, and changes nothing', async () => {
    const before = v.rows('SELECT * FROM vms ORDER BY id');
    const r = await vman(url, ['vm', 'create', 'web', '--template', 'small']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /already exists \(HTTP 409 Conflict\)/);
    assert.equal(r.stdout, '');
    assert.deepEqual(v.rows('SELECT * FROM vms ORDER BY id'), before);
  });

  it('an unknown name exits 1 naming it', async () => {
    const r = await vman(url, ['vm', 'rm', 'no-such-vm']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /"no-such-vm".*HTTP 404/);
  });

  it('template list shows the built-ins; template create and rm work by name', async () => {
    const list = await vman(url, ['template', 'list']);
    assert.match(list.stdout, /^NAME +ID +CPUS +MEMORY +READINESS\n/);
    assert.match(list.stdout, /^small +tpl-small +1 +512M +agent$/m);
    const created = await vman(url, ['template', 'create', 'tiny', '--cpus', '1', '--memory', '128', '--kernel', v.kernel, '--readiness', 'none']);
    assert.equal(created.exitCode, 0, created.stderr);
    assert.deepEqual(v.rows("SELECT cpus, memory_mb, readiness FROM templates WHERE name = 'tiny'"), [{ cpus: 1, memory_mb: 128, readiness: 'none' }]);
    assert.equal((await vman(url, ['template', 'rm', 'tiny'])).exitCode, 0);
    assert.deepEqual(v.rows("SELECT * FROM templates WHERE name = 'tiny'"), []);
  });

  it('vm rm refuses a running VM and says --force; vm rm --force stops it, and its disk stays', async () => {
    const before = v.rows('SELECT * FROM vms ORDER BY id');
    const refused = await vman(url, ['vm', 'rm', 'web']);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /vman vm rm --force web/);
    assert.match(refused.stderr, /HTTP 409/);
    assert.deepEqual(v.rows('SELECT * FROM vms ORDER BY id'), before);
    const forced = await vman(url, ['vm', 'rm', '--force', 'web']);
    assert.equal(forced.exitCode, 0, forced.stderr);
    assert.deepEqual(v.rows("SELECT * FROM vms WHERE name = 'web'"), []);
    assert.deepEqual(v.rows("SELECT state, vm_id, mount_point FROM disks WHERE name = 'data'"), [{ state: 'available', vm_id: null, mount_point: null }]);
  });
});

describe('vman command: usage, help, version, reachability', () => {
  const url = 'http://127.0.0.1:9';

  it('a typo in a command exits 2 naming it', async () => {
    const r = await vman(url, ['vm', 'strat', 'x']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /unknown command 'strat'/);
  });

  it('an unknown option exits 2 naming it', async () => {
    const r = await vman(url, ['vm', 'list', '--colour']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /unknown option '--colour'/);
  });

  it('a size that is not a number is a usage error (2), not a request', async () => {
    const r = await vman(url, ['disk', 'create', 'd', '--size', 'ten']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /"ten" is not a whole number/);
  });

  for (const args of [['--help'], ['help'], ['vm', '--help'], ['help', 'disk']]) {
    it(`${args.join(' ')} prints help on stdout and exits 0`, async () => {
      const r = await vman(url, args);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(r.stdout, /^Usage: vman/);
      assert.equal(r.stderr, '');
    });
  }

  it('--version prints the package version', async () => {
    const r = await vman(url, ['--version']);
    assert.equal(r.exitCode, 0);
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('vman unreachable: exit 1 naming the URL', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const r = await vman(`http://127.0.0.1:${port}`, ['vm', 'list']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, new RegExp(`could not reach vman at http://127\\.0\\.0\\.1:${port}`));
  });

  it('serve still reads its own flags: an unknown one exits 2', async () => {
    const r = await vman(url, ['serve', '--no-such-flag']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /--no-such-flag/);
  });
});

describe('vman command: names resolved on the client', () => {
  it('finds a VM by name in the list when vman answers 404 to GET /vms/<name>', async (t) => {
    // A vman that knows ids only: the command must list and match the name itself.
    const vm = { id: 'vm-0123456789ab', name: 'web', template_id: 'tpl-small', template: 'small', state: 'stopped', address: null, ssh_port: null };
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const send = (status: number, body: unknown, type = 'application/json'): void => {
        res.writeHead(status, { 'content-type': type }).end(JSON.stringify(body));
      };
      if (req.url === '/api/v1/vms') return send(200, [vm]);
      if (req.method === 'GET' && req.url === `/api/v1/vms/${vm.id}`) return send(200, vm);
      if (req.method === 'POST' && req.url === `/api/v1/vms/${vm.id}/start`) return send(200, { ...vm, state: 'running' });
      return send(404, { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such thing' }, 'application/problem+json');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const r = await vman(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, ['vm', 'start', 'web']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(seen, ['GET /api/v1/vms/web', 'GET /api/v1/vms', `POST /api/v1/vms/${vm.id}/start`]);
  });

  it('vm ssh runs the OpenSSH client with an args array on the VM\'s port, and exits with its code', async (t) => {
    const vm = { id: 'vm-0123456789ab', name: 'web', state: 'running', ssh_port: 40022 };
    const server = http.createServer((req, res) => {
      const found = req.url === `/api/v1/vms/${vm.id}` || req.url === '/api/v1/vms/web';
      res.writeHead(found ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(found ? vm : {}));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    // A stand-in `ssh` first on PATH: prints each argument on a line, exits 3.
    const dir = mkdtempSync(path.join(tmpdir(), 'vman-cli-ssh-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'ssh'), '#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\nexit 3\n', { mode: 0o755 });
    const r = await vman(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, ['vm', 'ssh', 'web', '--user', 'root', '--', 'echo', 'a b'], {
      PATH: `${dir}:${process.env.PATH ?? ''}`,
    });
    assert.equal(r.exitCode, 3, r.stderr);
    assert.equal(r.stdout, ['-p', '40022', 'root@127.0.0.1', 'echo', 'a b'].map((a) => `[${a}]`).join('\n'));
  });
});
