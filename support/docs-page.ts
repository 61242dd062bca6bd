// vman's documentation page as a browser shows it: headless Chromium renders
// the page (running swagger-ui's scripts), and the suite reads the resulting
// DOM and takes a screenshot. Nothing here comes from vman's code.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export const CHROMIUM = '/usr/bin/chromium';

/** What a browser rendered: the DOM after the page's scripts ran, and a PNG of it. */
export interface RenderedPage {
  dom: string;
  screenshot: Buffer;
}

/** Flags for a headless run as root on a machine without a GPU; scripts get 10 s of virtual time to render. */
function chromiumArgs(profile: string): string[] {
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', `--user-data-dir=${profile}`, '--virtual-time-budget=10000'];
}

/**
 * One headless Chromium run over `url`, with a profile of its own (removed
 * after): the DOM after the page's scripts ran, and a PNG of the same
 * rendering, 1280 wide. (Two runs, one for each, cost a second browser start:
 * about 5 CPU-seconds a page on this machine.)
 */
export async function renderPage(url: string, timeoutMs = 60_000): Promise<RenderedPage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vman-docs-'));
  try {
    const png = path.join(dir, 'page.png');
    const r = await execa(CHROMIUM, [...chromiumArgs(path.join(dir, 'profile')), '--dump-dom', `--screenshot=${png}`, '--window-size=1280,2000', url],
      { timeout: timeoutMs, reject: false, all: true });
    if (r.exitCode !== 0 || !r.stdout) throw new Error(`chromium --dump-dom --screenshot ${url} exited with ${r.exitCode}: ${String(r.all ?? '').slice(-800)}`);
    const screenshot = await readFile(png).catch(() => undefined);
    if (!screenshot) throw new Error(`chromium --screenshot ${url} made no file (exit ${r.exitCode}): ${String(r.all ?? '').slice(-800)}`);
    return { dom: String(r.stdout), screenshot };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every (method, path) pair of an OpenAPI document, e.g. ["POST", "/api/v1/vms/{id}/start"]. */
export function operationsOf(doc: { paths: Record<string, Record<string, unknown>> }): Array<[string, string]> {
  const methods = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
  return Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => methods.includes(m)).map((m) => [m.toUpperCase(), p] as [string, string]));
}

/**
 * The operations swagger-ui rendered: each is a block whose id is
 * `operations-<tag>-<operationId>` holding the method and the path in its
 * summary (`opblock-summary-method`, `opblock-summary-path` with `data-path`).
 */
export function renderedOperations(dom: string): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  const block = /<div class="opblock opblock-(\w+)[^"]*"[^>]*>([\s\S]*?)(?=<div class="opblock opblock-|$)/g;
  for (const m of dom.matchAll(block)) {
    const method = /<span class="opblock-summary-method">([A-Z]+)<\/span>/.exec(m[2]!)?.[1] ?? m[1]!.toUpperCase();
    const p = /data-path="([^"]+)"/.exec(m[2]!)?.[1];
    if (p) found.push([method, decodeEntities(p)]);
  }
  return found;
}

function decodeEntities(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'");
}
