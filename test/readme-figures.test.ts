// The README's count of scenarios is the features' own: pickles compiled from
// features/*.feature by Cucumber's Gherkin compiler (an outline counts once per
// example), under the tags `npm test` runs. A scenario added or removed
// without the README following fails here, so the figure cannot drift.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { AstBuilder, compile, GherkinClassicTokenMatcher, Parser } from '@cucumber/gherkin';
import parseTagExpression from '@cucumber/tag-expressions';
// @ts-expect-error: cucumber.js is the suite's plain ES module configuration, without types
import config from '../cucumber.js';

interface Counted { scenarios: number; features: number }

/** The scenarios `npm test` runs (the default profile's tags), and the feature files they come from. */
function countScenarios(): Counted {
  const tags = parseTagExpression((config as { tags: string }).tags);
  const files = readdirSync('features').filter((f) => f.endsWith('.feature')).sort();
  let scenarios = 0;
  let features = 0;
  for (const file of files) {
    const uri = `features/${file}`;
    const doc = new Parser(new AstBuilder(randomUUID), new GherkinClassicTokenMatcher()).parse(readFileSync(uri, 'utf8'));
    const run = compile(doc, uri, randomUUID).filter((p) => tags.evaluate(p.tags.map((t) => t.name)));
    scenarios += run.length;
    if (run.length > 0) features += 1;
  }
  return { scenarios, features };
}

const RULE = /`npm test` runs \*\*(\d+) scenarios\*\* from (\d+) features/;

describe('the README\'s figures', () => {
  it('gives the number of scenarios and features npm test runs, as the features count them', () => {
    const readme = readFileSync('README.md', 'utf8');
    const m = RULE.exec(readme);
    assert.ok(m, 'the README says "`npm test` runs **N scenarios** from M features"');
    const counted = countScenarios();
    assert.deepEqual({ scenarios: Number(m[1]), features: Number(m[2]) }, counted,
      `the README says ${m[1]} scenarios from ${m[2]} features; the features hold ${counted.scenarios} from ${counted.features}`);
  });
});
