// Every kind of finding the observer knows is provoked by some scenario: a
// step definition asks for it by name (findingAbout(report, '<kind>', ...), or
// a filter on the kind), and a feature uses that step. A kind added to
// src/observer/findings.ts with no scenario fails here, not silently.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const read = (dir: string, ext: string): Array<{ file: string; text: string }> =>
  readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith(ext)).map((f) => ({ file: `${dir}/${f}`, text: readFileSync(path.join(ROOT, dir, f), 'utf8') }));

describe('observer findings', () => {
  const kinds = [...readFileSync(path.join(ROOT, 'src/observer/findings.ts'), 'utf8')
    .split('export type FindingKind =')[1]!.split(';')[0]!.matchAll(/'([a-z-]+)'/g)].map((m) => m[1]!);
  const steps = read('step-definitions', '.ts');
  const features = read('features', '.feature').map((f) => f.text).join('\n');

  it('the list of kinds is read from the source', () => {
    assert.ok(kinds.length >= 13, `only ${kinds.length} kinds read: ${kinds.join(', ')}`);
  });

  for (const kind of kinds) {
    it(`${kind} is asked for by a step that a feature uses`, () => {
      // The step definitions whose body names the kind, and the text of each.
      const defs = steps.flatMap(({ file, text }) => text.split(/\n(?=(?:Given|When|Then)\()/)
        .filter((chunk) => chunk.includes(`'${kind}'`))
        .map((chunk) => ({ file, pattern: /^(?:Given|When|Then)\((['"])(.*?)\1/.exec(chunk)?.[2] })))
        .filter((d): d is { file: string; pattern: string } => d.pattern !== undefined);
      assert.ok(defs.length > 0, `no step definition asks for a ${kind} finding`);
      const used = defs.some((d) => {
        const words = d.pattern.split(/\{[^}]*\}/).map((w) => w.replace(/\\'/g, "'").trim()).filter((w) => w.length > 0);
        return features.split('\n').some((line) => words.every((w) => line.includes(w)));
      });
      assert.ok(used, `no feature uses a step that asks for ${kind}: ${defs.map((d) => `${d.file}: ${d.pattern}`).join('; ')}`);
    });
  }
});
