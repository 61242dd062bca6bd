// The package `npm pack` makes: only what an installed vman runs (the command,
// the bundle, the systemd unit), and a `vman` command that runs the bundle
// without a TypeScript loader when there are no sources next to it, while the
// checkout still never runs a build older than its sources.
// The install itself, from the registry, is features/package.feature.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What `npm pack` would put in the tarball (its prepack builds dist/ first). */
function packedFiles(): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const report = JSON.parse(out.slice(out.lastIndexOf('\n[') + 1)) as Array<{ files: Array<{ path: string }> }>;
  return report[0]!.files.map((f) => f.path).sort();
}

/** A folder laid out as the package is: package.json, bin/vman.mjs (the real one) and a stand-in bundle saying who ran. */
function layout(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-bin-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.mkdirSync(path.join(dir, 'dist'));
  fs.copyFileSync(path.join(root, 'bin', 'vman.mjs'), path.join(dir, 'bin', 'vman.mjs'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  fs.writeFileSync(path.join(dir, 'dist', 'vman.mjs'), "export async function main(argv) { console.log(`dist ${argv.join(' ')}`); return 0; }\n");
  return dir;
}

function addSources(dir: string): void {
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(path.join(dir, 'src', 'cli.ts'), "export async function main(argv: string[]): Promise<number> { console.log(`src ${argv.join(' ')}`); return 0; }\n");
  // The checkout's TypeScript loader, as the checkout has it.
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
}

function setMtime(file: string, secondsAgo: number): void {
  const when = new Date(Date.now() - secondsAgo * 1000);
  fs.utimesSync(file, when, when);
}

/** Runs the layout's bin/vman.mjs; VMAN_FROM_SOURCES only as given (the coverage run sets it for everything else). */
function vman(dir: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return vmanWith(dir, {}, ...args);
}

function vmanWith(dir: string, env: Record<string, string>, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const { VMAN_FROM_SOURCES: _unset, ...inherited } = process.env;
  const r = spawnSync(process.execPath, [path.join(dir, 'bin', 'vman.mjs'), ...args], { encoding: 'utf8', cwd: dir, timeout: 30_000, env: { ...inherited, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the package', () => {
  it('holds the command, the bundle and its map, the systemd unit, package.json and the README: no sources, tests or suite', () => {
    assert.deepEqual(packedFiles(), ['README.md', 'bin/vman.mjs', 'contrib/vman.service', 'dist/vman.mjs', 'dist/vman.mjs.map', 'package.json']);
  });

  it('leaves out of the bundle what reads files next to its own module', () => {
    const bundle = fs.readFileSync(path.join(root, 'dist', 'vman.mjs'), 'utf8');
    for (const external of ['better-sqlite3', '@fastify/swagger-ui', '@fastify/swagger']) {
      assert.match(bundle, new RegExp(`^import \\w+ from "${external.replace('/', '\\/')}";$`, 'm'), `${external} imported from node_modules at run time`);
    }
    // swagger-ui's own code (the static/ folder it serves) is not inlined.
    assert.doesNotMatch(bundle, /node_modules\/@fastify\/swagger-ui\//);
  });
});

describe('bin/vman.mjs', () => {
  it('installed (no src/ beside it, no node_modules at all): runs the bundle, without tsx', (t) => {
    const dir = layout(t);
    setMtime(path.join(dir, 'dist', 'vman.mjs'), 3600);
    assert.deepEqual(vman(dir, '--version'), { status: 0, stdout: 'dist --version\n', stderr: '' });
  });

  it('in the checkout, with a source newer than the bundle: runs the sources through tsx', (t) => {
    const dir = layout(t);
    addSources(dir);
    setMtime(path.join(dir, 'dist', 'vman.mjs'), 3600);
    assert.deepEqual(vman(dir, 'serve'), { status: 0, stdout: 'src serve\n', stderr: '' });
  });

  it('in the checkout, with the bundle newer than every source: runs the bundle', (t) => {
    const dir = layout(t);
    addSources(dir);
    setMtime(path.join(dir, 'src', 'cli.ts'), 3600);
    assert.deepEqual(vman(dir, 'serve'), { status: 0, stdout: 'dist serve\n', stderr: '' });
  });

  it('in the checkout, with VMAN_FROM_SOURCES=1 (coverage): runs the sources even when the bundle is newer', (t) => {
    const dir = layout(t);
    addSources(dir);
    setMtime(path.join(dir, 'src', 'cli.ts'), 3600);
    assert.deepEqual(vmanWith(dir, { VMAN_FROM_SOURCES: '1' }, 'serve'), { status: 0, stdout: 'src serve\n', stderr: '' });
  });

  it('installed, with VMAN_FROM_SOURCES=1: there are no sources, so the bundle', (t) => {
    const dir = layout(t);
    assert.deepEqual(vmanWith(dir, { VMAN_FROM_SOURCES: '1' }, '--version'), { status: 0, stdout: 'dist --version\n', stderr: '' });
  });
});
