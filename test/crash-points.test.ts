// Every crash point has exactly one place in vman's code where it is reached,
// and at least one example in features/crash.feature that kills vman there and
// checks what comes back, described in the registry's own words. A point added
// without an example fails here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { armCrashPoint, CRASH_POINT_NAMES, CRASH_POINTS } from '../src/crash-points.ts';
import { ConfigError, loadConfig } from '../src/config.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

/** The rows of every Examples table in the feature that has `point` and `moment` columns. */
function exampleRows(feature: string): Array<{ point: string; moment: string; line: number }> {
  const rows: Array<{ point: string; moment: string; line: number }> = [];
  let header: string[] | undefined;
  feature.split('\n').forEach((text, i) => {
    const line = text.trim();
    if (!line.startsWith('|')) {
      header = undefined;
      return;
    }
    const cells = line.slice(1, -1).split('|').map((c) => c.trim());
    if (!header) {
      header = cells;
      return;
    }
    const point = cells[header.indexOf('point')];
    const moment = cells[header.indexOf('moment')];
    if (point !== undefined && moment !== undefined) rows.push({ point, moment, line: i + 1 });
  });
  return rows;
}

describe('crash points', () => {
  const rows = exampleRows(readFileSync(path.join(ROOT, 'features', 'crash.feature'), 'utf8'));

  it('each has at least one example in features/crash.feature', () => {
    const covered = new Set(rows.map((r) => r.point));
    assert.deepEqual(CRASH_POINT_NAMES.filter((p) => !covered.has(p)), [], 'crash points without an example');
  });

  it('each example names a point that exists, in the words of the registry', () => {
    for (const r of rows) {
      assert.ok(Object.hasOwn(CRASH_POINTS, r.point), `line ${r.line}: no crash point ${r.point}`);
      assert.equal(r.moment, CRASH_POINTS[r.point as keyof typeof CRASH_POINTS], `line ${r.line}: the moment of ${r.point}`);
    }
  });

  it('each is reached at exactly one place in vman', () => {
    const sources = sourceFiles(path.join(ROOT, 'src'))
      .filter((f) => !f.endsWith('crash-points.ts'))
      .map((f) => readFileSync(f, 'utf8'));
    for (const name of CRASH_POINT_NAMES) {
      const sites = sources.reduce((n, text) => n + text.split(`'${name}'`).length - 1, 0);
      assert.equal(sites, 1, `call sites of ${name}`);
    }
  });

  it('are inert unless named, and an unknown name is refused rather than never reached', () => {
    assert.throws(() => armCrashPoint('disk.attach.after-typo'), /unknown crash point "disk.attach.after-typo"/);
    assert.throws(() => loadConfig({ VMAN_CRASH_AT: 'nowhere' }), ConfigError);
    assert.equal(loadConfig({}).crashAt, undefined);
    armCrashPoint(undefined);
  });
});
