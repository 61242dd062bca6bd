// setup.sh's first minute, without installing anything: the Node.js check
// comes before any package is touched, a system without apt is told so in one
// line, and the guest image keys CI restores by are the ones the build
// scripts use. The commands setup.sh would run are fakes in a PATH of our own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A folder for PATH holding links to the real `tools` and the given fake scripts. */
function binDir(t: { after(fn: () => void): void }, tools: string[], fakes: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-setup-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const tool of tools) {
    const real = tool === 'node' ? process.execPath : spawnSync('sh', ['-c', `command -v ${tool}`]).stdout.toString().trim();
    assert.ok(real, `${tool} is on this host`);
    fs.symlinkSync(real, path.join(dir, tool));
  }
  for (const [name, body] of Object.entries(fakes)) fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return dir;
}

/** What the fakes record when they are run: nothing may be installed before the checks. */
const recorder = (log: string) => `echo "$(basename "$0") $*" >> ${log}`;

function setup(bin: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = spawnSync(path.join(root, 'setup.sh'), args, { env: { PATH: bin, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BASICS = ['bash', 'dirname', 'sed', 'cat', 'basename'];
const hasAptLists = spawnSync('sh', ['-c', 'apt-cache policy linux-image-cloud-amd64 | grep -q "Candidate: [0-9]"']).status === 0;

describe('setup.sh', () => {
  it('--help prints the usage; an unknown option exits 2 naming it', (t) => {
    const bin = binDir(t, BASICS);
    const help = setup(bin, ['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: \.\/setup\.sh \[--unit \| --packages\] \[--no-debian-guest\]$/m);
    const bad = setup(bin, ['--fast']);
    assert.equal(bad.status, 2);
    assert.match(bad.stdout, /unknown option: --fast/);
  });

  it('checks Node.js before anything is installed, and says how to get it', (t) => {
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vman-setup-log-')), 'ran');
    t.after(() => fs.rmSync(path.dirname(log), { recursive: true, force: true }));
    const bin = binDir(t, BASICS, {
      node: 'case "$1" in --version) echo v18.20.4;; *) echo no;; esac',
      'apt-get': recorder(log), sudo: recorder(log), 'dpkg-query': recorder(log), npm: recorder(log),
    });
    const r = setup(bin);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /^setup: Node\.js 20\.19 or newer .* found: v18\.20\.4\. .*nvm install \(reads \.nvmrc\)$/m);
    assert.equal(fs.existsSync(log), false, 'nothing ran before the check');
  });

  it('under sudo without Node.js on PATH: says that sudo replaced PATH', (t) => {
    const bin = binDir(t, BASICS);
    const r = setup(bin, [], { SUDO_USER: 'someone' });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /found: none on PATH/);
    assert.match(r.stdout, /under sudo PATH is sudo's own: run \.\/setup\.sh without sudo/);
  });

  it('on a system without apt-get: one line that says so', (t) => {
    const bin = binDir(t, [...BASICS, 'node']);
    const r = setup(bin);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, 'setup: this script supports Debian and its derivatives (apt-get); on this system install the packages it lists by hand\n');
  });
});

describe('guest/cache-key.sh', () => {
  it('refuses an unknown image name', () => {
    const r = spawnSync(path.join(root, 'guest', 'cache-key.sh'), ['windows'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /usage: .*cache-key\.sh \[guest\|debian\]/);
  });

  // A cache folder with a manifest under the printed key is taken as built: the
  // build scripts print it at once, so they computed the same key. With another
  // key they would build; TMPDIR that does not exist makes that fail at once.
  it('prints the keys guest/build.sh and guest/build-debian.sh use', { skip: hasAptLists ? false : 'apt has no package lists here' }, (t) => {
    const r = spawnSync(path.join(root, 'guest', 'cache-key.sh'), { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const keys = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
    assert.match(keys.guest ?? '', /^[0-9a-f]{16}$/);
    assert.match(keys.debian ?? '', /^[0-9a-f]{16}$/);
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-cache-key-test-'));
    t.after(() => fs.rmSync(cache, { recursive: true, force: true }));
    for (const [image, env] of [['guest', 'VMAN_GUEST_CACHE'], ['debian', 'VMAN_DEBIAN_CACHE']] as const) {
      const dir = path.join(cache, image, keys[image]!);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'manifest.json'), '{}');
      const script = path.join(root, 'guest', image === 'guest' ? 'build.sh' : 'build-debian.sh');
      const built = spawnSync(script, { encoding: 'utf8', env: { ...process.env, [env]: path.join(cache, image), TMPDIR: path.join(cache, 'none') }, timeout: 60_000 });
      assert.equal(built.status, 0, built.stderr);
      assert.equal(built.stdout.trim(), dir, `${image}: the build script found the folder of the printed key`);
    }
  });
});

// One version rule for Node.js: .nvmrc names the oldest 20.x supported, and
// package.json's engines and setup.sh's check say the same.
describe('the Node.js version rule', () => {
  it('is the same in .nvmrc, engines and setup.sh', () => {
    const nvmrc = fs.readFileSync(path.join(root, '.nvmrc'), 'utf8').trim();
    const [major, minor] = nvmrc.split('.').map(Number);
    assert.equal(major, 20, '.nvmrc names a 20.x');
    const engines = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    assert.equal(engines, `>=${nvmrc} <21 || >=22`);
    const setup = fs.readFileSync(path.join(root, 'setup.sh'), 'utf8');
    assert.ok(setup.includes(`a===20&&b>=${minor}||a>=22`), 'setup.sh checks the same minor');
    assert.ok(setup.includes(`Node.js ${nvmrc} or newer (20.x from ${nvmrc}, or 22 and later)`), 'setup.sh says the same rule');
  });
});
