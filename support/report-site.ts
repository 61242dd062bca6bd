// The Allure report as someone who downloaded the site sees it: built by the
// project's own report script (scripts/report/allure.mjs) from results the
// suite writes in Allure's format, opened from disk (file://) in headless
// Chromium, and read from the DOM the page's scripts left.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { renderPage } from './docs-page.ts';
import { pollUntil } from './poll.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface FixtureResult {
  name: string;
  feature: string;
  status: 'passed' | 'failed';
}

/** Writes Allure results (the *-result.json files allure-cucumberjs writes) for the given scenarios. */
export async function writeAllureResults(dir: string, results: FixtureResult[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const now = Date.now();
  for (const [i, r] of results.entries()) {
    const uuid = randomUUID();
    await writeFile(path.join(dir, `${uuid}-result.json`), JSON.stringify({
      uuid, name: r.name, fullName: `vman:features/fixture.feature#${r.name}`, historyId: `fixture-${i}`, testCaseId: `fixture-${i}`,
      status: r.status, stage: 'finished', start: now + i * 1000, stop: now + i * 1000 + 500,
      labels: [{ name: 'feature', value: r.feature }, { name: 'tag', value: '@report' }],
      steps: [], attachments: [], parameters: [], links: [],
      ...(r.status === 'failed' ? { statusDetails: { message: 'AssertionError: expected 1 to equal 2' } } : {}),
    }));
  }
}

/** `node scripts/report/allure.mjs` over `results`, into `out`, with a history file of its own. */
export async function buildAllureReport(results: string, out: string, history: string): Promise<string> {
  const r = await execa(process.execPath, [path.join(REPO, 'scripts', 'report', 'allure.mjs'), '--results', results, '--out', out, '--history', history], {
    cwd: REPO, reject: false, all: true, timeout: 120_000,
  });
  if (r.exitCode !== 0) throw new Error(`scripts/report/allure.mjs exited with ${r.exitCode}: ${String(r.all ?? '').slice(-1500)}`);
  return r.all ?? '';
}

/** The text a page shows: its DOM without scripts, styles and tags. */
export function shownText(dom: string): string {
  return dom.replace(/<script[\s\S]*?<\/script>/g, '').replace(/<style[\s\S]*?<\/style>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * The report as headless Chromium rendered it, once its app drew its results
 * tab: one rendering in four or so is taken before the app has drawn anything
 * (virtual time runs out first), so the page is opened again until it has or
 * the deadline passes, and what was shown last is reported. The screenshot is
 * of the rendering whose text is reported.
 */
export async function renderedReport(url: string, timeoutMs: number): Promise<{ text: string; screenshot: Buffer }> {
  return pollUntil(`the report at ${url} to draw its results`, async () => {
    const page = await renderPage(url);
    const shown = shownText(page.dom);
    return /\bResults \d+\b/.test(shown) ? { done: true, value: { text: shown, screenshot: page.screenshot } } : { done: false, seen: JSON.stringify(shown.slice(0, 300)) };
  }, { timeoutMs, intervalMs: 100 });
}
