// The living documentation of one whole run, made of several shards:
//   node scripts/report/living-doc.mjs --out reports/site/living-doc ci-1=reports/shards/ci-1/cucumber.ndjson ...
// (a bare file names its shard after its folder). Writes into --out:
//   index.html       the Cucumber HTML report of the merged messages (needs JS, like cucumber's own)
//   cucumber.ndjson  the merged messages, for whatever reads one run's messages
//   tags.html        every tag, its scenarios and their status (no JS)
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CucumberHtmlStream } from '@cucumber/html-formatter';
import { mergeMessages } from './messages-merge.mjs';
import { tagIndexPage } from './messages-tag-index.mjs';
import { isCommand } from './is-command.mjs';

export { mergeMessages } from './messages-merge.mjs';
export { streamProblems } from './messages-check.mjs';
export { scenarioRows } from './messages-tag-index.mjs';

// The formatter's page template inlines its own stylesheet and script from its dist/.
const formatterDist = path.dirname(path.dirname(createRequire(import.meta.url).resolve('@cucumber/html-formatter')));

/** Reads one shard's cucumber.ndjson; the error names the file and the line that is not a message. */
export function readShard(name, file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`shard ${name}: cannot read ${file}: ${err.code ?? err.message}`, { cause: err });
  }
  const messages = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let m;
    try {
      m = JSON.parse(line);
    } catch (err) {
      throw new Error(`shard ${name}: ${file}:${i + 1} is not JSON (${err.message})`, { cause: err });
    }
    if (!m || typeof m !== 'object' || Array.isArray(m) || Object.keys(m).length !== 1) {
      throw new Error(`shard ${name}: ${file}:${i + 1} is not a Cucumber message (one key per line expected)`);
    }
    messages.push(m);
  });
  if (messages.length === 0) throw new Error(`shard ${name}: ${file} holds no messages`);
  return { name, messages };
}

/** index.html (the Cucumber HTML formatter's page) and cucumber.ndjson of the merged messages. */
export async function writeLivingDoc(messages, outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'cucumber.ndjson'), messages.map((m) => JSON.stringify(m)).join('\n') + '\n');
  const html = new CucumberHtmlStream(path.join(formatterDist, 'main.css'), path.join(formatterDist, 'main.js'));
  await pipeline(Readable.from(messages), html, createWriteStream(path.join(outDir, 'index.html')));
}

/** tags.html: the tag index, beside index.html which it links to. */
export function writeTagIndex(messages, outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'tags.html'), tagIndexPage(messages));
}

/** `--out DIR` and shards as `name=file` or a bare file (named after its folder). */
export function parseArgs(argv) {
  let out;
  const shards = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--out') out = argv[++i];
    else if (arg.startsWith('--out=')) out = arg.slice('--out='.length);
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else {
      const named = /^([^=/]+)=(.+)$/.exec(arg);
      shards.push(named ? { name: named[1], file: named[2] } : { name: path.basename(path.dirname(path.resolve(arg))), file: arg });
    }
  }
  if (!out) throw new Error('--out DIR is required');
  if (shards.length === 0) throw new Error('no shard given: name=path/to/cucumber.ndjson ...');
  return { out, shards };
}

export async function main(argv) {
  const { out, shards } = parseArgs(argv);
  const merged = mergeMessages(shards.map((s) => readShard(s.name, s.file)));
  await writeLivingDoc(merged, out);
  writeTagIndex(merged, out);
  const cases = merged.filter((m) => m.testCaseFinished && !m.testCaseFinished.willBeRetried).length;
  console.log(`living documentation: ${shards.length} shard(s), ${cases} scenarios run -> ${path.join(out, 'index.html')}, tags.html`);
}


if (isCommand(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`living-doc: ${err.message}`);
    process.exit(1);
  });
}
