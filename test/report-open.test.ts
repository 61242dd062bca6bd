// `npm run report:open`: the site served on 127.0.0.1, nothing outside it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
// @ts-expect-error: a plain ES module of the report scripts, without types
import { fileFor, serveSite } from '../scripts/report/open.mjs';

const serve = serveSite as (dir: string, port?: number) => Promise<Server>;

function site(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vman-site-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'allure', 'awesome'), { recursive: true });
  writeFileSync(path.join(dir, 'index.html'), '<h1>the run</h1>');
  writeFileSync(path.join(dir, 'allure', 'awesome', 'index.html'), '<h1>allure</h1>');
  return dir;
}

describe('report:open', () => {
  it('serves the site\'s pages on 127.0.0.1, a folder by its index.html, with their types', async (t) => {
    const server = await serve(site(t));
    t.after(() => server.close());
    const { address, port } = server.address() as AddressInfo;
    assert.equal(address, '127.0.0.1');
    const front = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(front.status, 200);
    assert.equal(front.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(await front.text(), '<h1>the run</h1>');
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/allure/awesome/`)).text(), '<h1>allure</h1>');
    assert.equal((await fetch(`http://127.0.0.1:${port}/nothing.html`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${port}/`, { method: 'POST' })).status, 405);
  });

  it('never leaves the site: dot-dot, encoded or not, and NUL are refused or stay inside', () => {
    const root = '/srv/site';
    assert.equal(fileFor(root, '/allure/index.html'), '/srv/site/allure/index.html');
    assert.equal(fileFor(root, '/../site-secret.txt'), '/srv/site/site-secret.txt');
    assert.equal(fileFor(root, '/%2e%2e/%2e%2e/etc/passwd'), '/srv/site/etc/passwd');
    assert.equal(fileFor(root, '/a%00b'), undefined);
    assert.equal(fileFor(root, '/%E0%A4%A'), undefined);
  });

  it('prints the address to open, and says what to do when there is no site yet', async (t) => {
    const dir = site(t);
    const child = spawn(process.execPath, ['scripts/report/open.mjs', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const line = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
    child.kill('SIGTERM');
    const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(line);
    assert.ok(m, `an address in: ${line}`);
    const none = spawn(process.execPath, ['scripts/report/open.mjs', '--dir', path.join(dir, 'missing')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    none.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => none.on('exit', resolve));
    assert.equal(code, 2);
    assert.match(err, /run the suite, then npm run report/);
  });
});
