// V8 records block coverage as offsets into the code a process ran. A module
// that two processes compiled differently (tsx loading it through a second tsx,
// as the unit test that runs cucumber's own loader does) has offsets that do
// not line up, and c8 merges coverage by URL as if they did, then maps it
// through whichever source map it read last. So, per script of src/, this
// keeps the coverage of the processes that compiled it as most did (the line
// lengths of the compiled code, from the source-map cache Node records) and
// drops the rest, saying how many.
//   node scripts/coverage-normalize.mjs <NODE_V8_COVERAGE folder>
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) throw new Error('usage: coverage-normalize.mjs <coverage folder>');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f));
const ours = (url) => url.startsWith('file://') && url.includes('/src/') && !url.includes('/node_modules/');
const signature = (cov, url) => JSON.stringify(cov['source-map-cache']?.[url]?.lineLengths ?? null);

// Pass 1: how each process compiled each of our scripts.
const seen = new Map(); // url -> Map(signature -> count)
for (const file of files) {
  const cov = JSON.parse(readFileSync(file, 'utf8'));
  for (const r of cov.result ?? []) {
    if (!ours(r.url)) continue;
    const counts = seen.get(r.url) ?? new Map();
    const sig = signature(cov, r.url);
    counts.set(sig, (counts.get(sig) ?? 0) + 1);
    seen.set(r.url, counts);
  }
}
const usual = new Map([...seen].map(([url, counts]) => [url, [...counts].sort((a, b) => b[1] - a[1])[0][0]]));

// Pass 2: drop the odd ones out.
let dropped = 0;
const scripts = new Set();
for (const file of files) {
  const cov = JSON.parse(readFileSync(file, 'utf8'));
  const odd = (cov.result ?? []).filter((r) => ours(r.url) && signature(cov, r.url) !== usual.get(r.url));
  if (odd.length === 0) continue;
  cov.result = cov.result.filter((r) => !odd.includes(r));
  for (const r of odd) {
    delete cov['source-map-cache']?.[r.url];
    scripts.add(r.url.replace(/^.*\/src\//, 'src/'));
  }
  dropped += odd.length;
  writeFileSync(file, JSON.stringify(cov));
}
console.log(`coverage: ${files.length} process files; ${dropped} script coverage(s) compiled unlike the rest left out${scripts.size ? ` (${[...scripts].sort().join(', ')})` : ''}`);
