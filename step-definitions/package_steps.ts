// Steps about vman as a package: packed, installed into an empty prefix, run
// from there as an operator would, with nothing of the checkout.
import path from 'node:path';
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { pollUntil } from '../support/poll.ts';
import {
  checkoutManifest, getStatus, installedDependencies, installGlobally, localPrebuilds, ownFiles, packCheckout, processesFrom, runInstalled, serveInstalled,
  type InstalledPackage, type InstalledServe, type PackedTarball,
} from '../support/package-install.ts';

const INSTALL_TIMEOUT_MS = 600_000;

const tarball = (w: VmanWorld): PackedTarball => w.noted('packedTarball', 'packed tarball');
const installed = (w: VmanWorld): InstalledPackage => w.noted('installedPackage', 'installed package');
const served = (w: VmanWorld): InstalledServe => w.noted('installedServe', 'installed vman serve');

Given('vman packed with npm pack', { timeout: 180_000 }, async function (this: VmanWorld) {
  const packed = await packCheckout(path.join(this.storage, 'pack'));
  this.notes.packedTarball = packed;
  this.attach(`${path.basename(packed.file)} sha256 ${packed.sha256}\n\n${packed.output}`, { mediaType: 'text/plain', fileName: 'npm pack' });
});

When('the tarball is installed with npm install -g into an empty prefix', { timeout: INSTALL_TIMEOUT_MS + 30_000 }, async function (this: VmanWorld) {
  const env = await localPrebuilds(path.join(this.storage, 'prebuilds'));
  const pkg = await installGlobally(tarball(this).file, path.join(this.storage, 'prefix'), env);
  this.notes.installedPackage = pkg;
  this.attach(`npm install -g took ${pkg.installMs} ms; better-sqlite3's addon: ${pkg.addon}\n\n${pkg.output}`, { mediaType: 'text/plain', fileName: 'npm install -g' });
});

Then('the installed vman --version prints the version of package.json', async function (this: VmanWorld) {
  const { version } = await checkoutManifest();
  const r = await runInstalled(installed(this), ['--version']);
  expect(r.stdout.trim(), `stdout of vman --version (exit ${r.exitCode}, stderr: ${r.stderr})`).to.equal(version);
  expect(r.exitCode, 'exit code of vman --version').to.equal(0);
});

When('the installed vman serves on a free port', async function (this: VmanWorld) {
  const pkg = installed(this);
  const serve = await serveInstalled(pkg, path.join(this.storage, 'vman'));
  this.notes.installedServe = serve;
  // Whatever the scenario's end, nothing started from the prefix outlives it.
  this.cleanups.push(async () => {
    for (const p of await processesFrom(pkg.prefix)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  });
});

Then('the installed vman answers GET {string} with {int} and a {string} body', async function (this: VmanWorld, urlPath: string, status: number, type: string) {
  const serve = served(this);
  const r = await getStatus(serve.baseUrl, urlPath);
  expect(r.status, `status of GET ${urlPath}; vman said:\n${serve.log().slice(-1500)}`).to.equal(status);
  expect(r.contentType.split(';')[0], `content type of GET ${urlPath}`).to.equal(type);
});

When('the installed vman serve is sent SIGTERM', function (this: VmanWorld) {
  served(this).signal('SIGTERM');
});

Then('the installed vman serve exits with code 0', async function (this: VmanWorld) {
  const serve = served(this);
  const end = await pollUntil('the installed vman serve to exit after SIGTERM', async () => {
    const settled = await Promise.race([serve.exited, new Promise<undefined>((resolve) => setTimeout(resolve, 0, undefined))]);
    return settled ? { done: true, value: settled } : { done: false, seen: `pid ${serve.pid} still running` };
  }, { timeoutMs: 40_000, intervalMs: 100 });
  expect(end, `how vman serve ended; it said:\n${serve.log().slice(-1500)}`).to.deep.equal({ code: 0, signal: null });
});

Then('no process runs from the installed prefix', async function (this: VmanWorld) {
  const prefix = installed(this).prefix;
  const running = await processesFrom(prefix);
  expect(running.map((p) => `${p.pid} ${p.argv.join(' ')}`), `processes running from ${prefix}`).to.deep.equal([]);
});

Then('the installed package holds no tsx, no src folder and no TypeScript file', async function (this: VmanWorld) {
  const pkg = installed(this);
  const files = await ownFiles(pkg.dir);
  this.attach(files.join('\n'), { mediaType: 'text/plain', fileName: 'the installed package' });
  expect(files.filter((f) => f === 'src/' || /\.(c|m)?ts$/.test(f)), `vman's own files in ${pkg.dir}`).to.deep.equal([]);
  expect(await installedDependencies(pkg), `the packages in ${pkg.dir}/node_modules`).not.to.include('tsx');
});
