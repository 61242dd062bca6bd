#!/usr/bin/env node
// Entry point of the `vman` command.
// - Installed from the package (npm pack, npm install -g): there is no src/,
//   only the compiled dist/vman.mjs, and no TypeScript loader; run it.
// - In the checkout: run dist/vman.mjs (npm run build) when it is newer than
//   every source file; otherwise the TypeScript sources through tsx, so an
//   edit is never hidden by a stale build. VMAN_FROM_SOURCES=1 asks for the
//   sources (coverage).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const compiled = path.join(root, 'dist', 'vman.mjs');
const sources = path.join(root, 'src');

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function compiledIsCurrent() {
  try {
    return statSync(compiled).mtimeMs >= newestSource(sources);
  } catch {
    return false;
  }
}

// VMAN_FROM_SOURCES=1 (scripts/coverage.sh) runs the sources even when the build
// is current: V8's coverage of a bundle does not map back to src/ line by line.
const fromSources = process.env.VMAN_FROM_SOURCES === '1' && existsSync(sources);

let main;
// No src/ means an installed package: the build is all there is.
if (!fromSources && (!existsSync(sources) || compiledIsCurrent())) {
  process.setSourceMapsEnabled(true);
  ({ main } = await import('../dist/vman.mjs'));
} else {
  // Only the checkout reaches this branch, so only it needs tsx.
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli.ts'));
}
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`vman: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
