// The allow-list of skips (.ci/allowed-skips.json) names real scenarios, each
// with a reason, and nothing else: an entry for a scenario that was renamed
// would let nothing skip, and one without a reason says nothing to a reader.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
// @ts-expect-error: a plain ES module of CI's, without types
import { allowedSkips, skipsNotAllowed } from '../.ci/skips.mjs';

describe('the allow-list of skipped scenarios', () => {
  const allowed = allowedSkips() as Record<string, string>;

  it('names scenarios that exist, each with a reason', () => {
    assert.ok(Object.keys(allowed).length > 0);
    for (const [name, reason] of Object.entries(allowed)) {
      const [file, scenario] = name.split(': ', 2) as [string, string];
      const text = readFileSync(file, 'utf8');
      assert.ok(text.split('\n').some((l) => /^\s*Scenario( Outline)?: /.test(l) && l.replace(/^\s*Scenario( Outline)?: /, '').trim() === scenario), `${file} has no scenario "${scenario}"`);
      assert.ok(reason.length > 20, `the reason for ${name} says too little: ${reason}`);
    }
  });

  it('lets through only what it names', () => {
    const [name] = Object.keys(allowed);
    assert.deepEqual(skipsNotAllowed([{ name }, { name: 'features/x.feature: anything else' }]), [{ name: 'features/x.feature: anything else' }]);
  });
});
