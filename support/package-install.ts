// vman as an operator gets it: the tarball `npm pack` makes of the checkout,
// installed with `npm install -g --prefix <folder>`, run from <prefix>/bin.
// Everything here goes through npm and the installed command, never through
// the checkout's code.
import { access, mkdir, readdir, readFile } from 'node:fs/promises';
import { sha256File } from './file-digest.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import got from 'got';
import { pollUntil } from './poll.ts';
import { hostProcesses, type HostProcess } from './proc-reader.ts';
import { freePort } from './free-port.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE_NAME = 'vman';

export interface PackedTarball {
  file: string;
  sha256: string;
  /** What npm printed (prepack's build included). */
  output: string;
}

export interface InstalledPackage {
  prefix: string;
  /** <prefix>/bin/vman, the link npm made. */
  command: string;
  /** <prefix>/lib/node_modules/vman. */
  dir: string;
  /** How long `npm install -g` took. */
  installMs: number;
  /** Where better-sqlite3's addon came from: node-gyp leaves a Makefile behind, a prebuild does not. */
  addon: 'prebuilt' | 'compiled from source';
  output: string;
}

/** The checkout's package.json, as npm reads it. */
export async function checkoutManifest(): Promise<{ name: string; version: string }> {
  return JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
}

/** `npm pack` of the checkout (its prepack builds dist/) into `dest`. */
export async function packCheckout(dest: string): Promise<PackedTarball> {
  await mkdir(dest, { recursive: true });
  const r = await execa('npm', ['pack', '--json', '--pack-destination', dest], { cwd: REPO, reject: false, all: true, timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`npm pack exited with ${r.exitCode}:\n${r.all}`);
  // prepack's own output comes first on stdout; npm's JSON report is last.
  const report = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\n[') + 1)) as Array<{ filename: string }>;
  const file = path.join(dest, report[0]!.filename);
  const sha256 = await sha256File(file);
  return { file, sha256, output: r.all ?? '' };
}

/**
 * better-sqlite3's install script (prebuild-install) downloads a prebuilt
 * addon from GitHub, which this host cannot reach, and then compiles SQLite
 * and the addon from source: about a minute of both cores. prebuild-install
 * first looks in a folder of local prebuilds; this puts there the addon the
 * checkout's own `npm ci` compiled, for the same better-sqlite3 version and
 * Node ABI, under the file name prebuild-install asks for. A package whose
 * better-sqlite3 resolves to another version finds nothing and compiles.
 */
export async function localPrebuilds(dir: string): Promise<Record<string, string>> {
  const addon = path.join(REPO, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(await readFile(path.join(addon, 'package.json'), 'utf8')) as { version: string };
  await mkdir(dir, { recursive: true });
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  await execa('tar', ['-czf', path.join(dir, name), '-C', addon, 'build/Release/better_sqlite3.node']);
  return { npm_config_better_sqlite3_local_prebuilds: dir };
}

/** `npm install -g --prefix <prefix> <tarball>`: the packages from the registry or npm's cache. */
export async function installGlobally(tarball: string, prefix: string, env: Record<string, string>): Promise<InstalledPackage> {
  await mkdir(prefix, { recursive: true });
  const started = Date.now();
  const r = await execa('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], {
    env, reject: false, all: true, timeout: 600_000,
  });
  const installMs = Date.now() - started;
  if (r.exitCode !== 0) throw new Error(`npm install -g exited with ${r.exitCode} after ${installMs} ms:\n${r.all}`);
  const dir = path.join(prefix, 'lib', 'node_modules', PACKAGE_NAME);
  const compiled = await access(path.join(dir, 'node_modules', 'better-sqlite3', 'build', 'Makefile')).then(() => true, () => false);
  return { prefix, command: path.join(prefix, 'bin', 'vman'), dir, installMs, addon: compiled ? 'compiled from source' : 'prebuilt', output: r.all ?? '' };
}

/** Runs the installed command to its end. */
export async function runInstalled(pkg: InstalledPackage, args: string[]): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const r = await execa(pkg.command, args, { reject: false, timeout: 30_000, cwd: pkg.prefix });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

export interface InstalledServe {
  baseUrl: string;
  pid: number;
  log(): string;
  exited: Promise<{ code: number | null; signal: string | null }>;
  signal(name: NodeJS.Signals): void;
}

/** `<prefix>/bin/vman serve` on a free port, once it answers /health. */
export async function serveInstalled(pkg: InstalledPackage, storage: string): Promise<InstalledServe> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const lines: string[] = [];
  const child: ResultPromise = execa(pkg.command, ['serve', '--storage', storage, '--listen', `127.0.0.1:${port}`], {
    cwd: pkg.prefix, reject: false, all: true, cleanup: true, env: { VMAN_LOG_LEVEL: 'info' },
  });
  child.all?.on('data', (d: Buffer) => lines.push(d.toString().trimEnd()));
  const exited = (child as unknown as Promise<{ exitCode?: number; signal?: string }>).then(
    (r) => ({ code: r.exitCode ?? null, signal: r.signal ?? null }),
    () => ({ code: child.exitCode, signal: child.signalCode }),
  );
  await pollUntil(`the installed vman serve to answer GET ${baseUrl}/health`, async () => {
    if (child.exitCode !== null) throw new Error(`vman serve exited with ${child.exitCode}: ${lines.join('\n').slice(-800)}`);
    const r = await got(`${baseUrl}/health`, { throwHttpErrors: false, retry: { limit: 0 }, timeout: { request: 1_000 } }).catch(() => undefined);
    return r?.statusCode === 200 ? { done: true, value: undefined } : { done: false, seen: r ? `HTTP ${r.statusCode}` : 'no answer' };
  }, { timeoutMs: 30_000, intervalMs: 100 });
  return { baseUrl, pid: child.pid!, log: () => lines.join('\n'), exited, signal: (name) => void child.kill(name) };
}

/** Status and content type of a GET. */
export async function getStatus(baseUrl: string, urlPath: string): Promise<{ status: number; contentType: string }> {
  const r = await got(`${baseUrl}${urlPath}`, { throwHttpErrors: false, retry: { limit: 0 }, timeout: { request: 10_000 } });
  return { status: r.statusCode, contentType: String(r.headers['content-type'] ?? '') };
}

/** Processes whose command line runs anything from the installed prefix. */
export async function processesFrom(prefix: string): Promise<HostProcess[]> {
  const inside = `${prefix}/`;
  return (await hostProcesses()).filter((p) => p.argv.some((a) => a.startsWith(inside)));
}

/** The package's own files (its node_modules left out), relative to its folder. */
export async function ownFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) {
      if (r !== 'node_modules') out.push(`${r}/`, ...(await ownFiles(dir, r)));
    } else out.push(r);
  }
  return out;
}

/** The package names in the package's own node_modules (scoped ones as @scope/name). */
export async function installedDependencies(pkg: InstalledPackage): Promise<string[]> {
  const nodeModules = path.join(pkg.dir, 'node_modules');
  const names: string[] = [];
  for (const e of await readdir(nodeModules).catch(() => [])) {
    if (e.startsWith('.')) continue;
    if (e.startsWith('@')) names.push(...(await readdir(path.join(nodeModules, e))).map((n) => `${e}/${n}`));
    else names.push(e);
  }
  return names;
}
