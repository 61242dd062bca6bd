// Steps about the site a run leaves: the Allure report built by the project's
// script, opened from disk the way someone who downloaded it would.
import { Given, Then, When, type DataTable } from '@cucumber/cucumber';
import { expect } from 'chai';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { VmanWorld } from '../world/vman-world.ts';
import { buildAllureReport, renderedReport, writeAllureResults, type FixtureResult } from '../support/report-site.ts';

/** allure generate and two Chromium runs: seconds each on a busy host. */
const REPORT_STEP = { timeout: 180_000 };

Given('Allure results of a run with these scenarios:', async function (this: VmanWorld, table: DataTable) {
  const rows = table.hashes() as Array<{ feature: string; scenario: string; status: string }>;
  const results: FixtureResult[] = rows.map((r) => {
    if (r.status !== 'passed' && r.status !== 'failed') throw new Error(`status "${r.status}" is neither passed nor failed`);
    return { name: r.scenario, feature: r.feature, status: r.status };
  });
  await writeAllureResults(path.join(this.storage, 'allure-results'), results);
});

When('the Allure report of those results is built', REPORT_STEP, async function (this: VmanWorld) {
  const log = await buildAllureReport(path.join(this.storage, 'allure-results'), path.join(this.storage, 'site', 'allure'), path.join(this.storage, 'history.jsonl'));
  this.attach(log, { mediaType: 'text/plain', fileName: 'scripts/report/allure.mjs' });
});

Then('the report is one page with its data inside, beside no data folder', async function (this: VmanWorld) {
  const dir = path.join(this.storage, 'site', 'allure', 'awesome');
  const entries = (await readdir(dir, { withFileTypes: true })).map((e) => `${e.name}${e.isDirectory() ? '/' : ''}`).sort();
  expect(entries.filter((e) => e.endsWith('/')), `folders beside the report's page (${entries.join(', ')})`).to.deep.equal([]);
  expect((await stat(path.join(dir, 'index.html'))).size, 'the page\'s size in bytes, with its data').to.be.greaterThan(100_000);
});

Then('opened from disk in a headless browser, the report shows {int} scenarios, {int} failed, grouped under {string} and {string}, and names the failed one, {string}', REPORT_STEP, async function (
  this: VmanWorld, total: number, failed: number, firstFeature: string, secondFeature: string, failedName: string,
) {
  const url = pathToFileURL(path.join(this.storage, 'site', 'allure', 'awesome', 'index.html')).href;
  const page = await renderedReport(url, 90_000);
  this.attach(page.screenshot, { mediaType: 'image/png', fileName: 'the Allure report opened from disk' });
  this.attach(page.text, { mediaType: 'text/plain', fileName: 'what the page shows' });
  expect(page.text, 'the results tab').to.match(new RegExp(`\\bResults ${total}\\b`));
  expect(page.text, 'the failed count').to.match(new RegExp(`\\bFailed ${failed}\\b`));
  for (const feature of [firstFeature, secondFeature]) expect(page.text, `the group of ${feature}`).to.include(` ${feature} `);
  expect(page.text, 'the failed scenario, shown open').to.include(failedName);
});
