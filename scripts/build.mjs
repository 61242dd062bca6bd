// Compiles vman (src/, TypeScript) and its dependencies into one JavaScript
// file, dist/vman.mjs, so `vman` starts without a TypeScript loader and without
// resolving hundreds of small modules: 0.6 s to serving instead of 1.9 s, which
// the suite pays at every `vman serve` it starts. `npm pack` runs it (prepack):
// the installed package runs this file, with no TypeScript loader.
// Left outside the bundle, loaded from node_modules at run time: what reads
// files next to its own module, which a bundle would move away from them.
// CommonJS dependencies get a `require` of their own.
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const EXTERNAL = [
  'better-sqlite3', // a native addon: build/Release/better_sqlite3.node
  '@fastify/swagger-ui', // serves its static/ folder and reads its logo files by __dirname
  '@fastify/swagger', // reads its own package.json by __dirname
];

const outfile = path.join(root, 'dist', 'vman.mjs');
const result = await build({
  entryPoints: [path.join(root, 'src', 'cli.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: EXTERNAL,
  banner: { js: "import { createRequire as vmanCreateRequire } from 'node:module'; const require = vmanCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
  write: false,
});
// Each file replaced in one rename: a `vman` starting meanwhile (the suite's
// workers, while a scenario runs `npm pack`) never loads half a bundle.
mkdirSync(path.dirname(outfile), { recursive: true });
for (const file of result.outputFiles) {
  const tmp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(tmp, file.contents);
  renameSync(tmp, file.path);
}
