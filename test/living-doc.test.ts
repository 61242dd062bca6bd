// The living documentation's merge of shards (scripts/report/living-doc.mjs):
// small synthetic message streams shaped like cucumber-js 12's, two shards of
// one run, each with its own random ids, as CI produces them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

type Envelope = Record<string, any>;
interface Shard { name: string; messages: Envelope[] }
interface Row { name: string; uri: string; line?: number; tags: string[]; status: string; attempts: number; worker: string }
interface LivingDoc {
  mergeMessages(shards: Shard[]): Envelope[];
  streamProblems(messages: Envelope[]): string[];
  scenarioRows(messages: Envelope[]): Row[];
  writeLivingDoc(messages: Envelope[], outDir: string): Promise<void>;
  writeTagIndex(messages: Envelope[], outDir: string): void;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const script = path.join(root, 'scripts', 'report', 'living-doc.mjs');
const modUrl = pathToFileURL(script).href;
const ld = (await import(modUrl)) as LivingDoc;

const URI = 'features/x.feature';
const TEXT = '@feat\nFeature: X\n  @one\n  Scenario: one\n    Given a step\n\n  Scenario: two\n    Given a step\n';
const loc = (line: number, column = 1) => ({ line, column });
const ts = (seconds: number) => ({ seconds, nanos: 0 });

interface ShardOptions {
  ran: Array<'one' | 'two'>;
  start: number; // seconds
  status?: string; // of every step run
  success?: boolean;
  workerId?: string;
  retried?: boolean; // 'one' fails once and is retried
  text?: string;
}

/** A shard's cucumber.ndjson: every feature's source, document and pickles; test cases only for `ran`. */
function shard(name: string, o: ShardOptions): Shard {
  const p = `${name}-`; // ids unique per shard, as cucumber's UUIDs are
  const scenario = (n: string, line: number, tags: Envelope[]) => ({
    scenario: {
      id: `${p}ast-${n}`, location: loc(line, 3), tags, keyword: 'Scenario', name: n, description: '', examples: [],
      steps: [{ id: `${p}ast-${n}-step`, location: loc(line + 1, 5), keyword: 'Given ', keywordType: 'Context', text: 'a step' }],
    },
  });
  const messages: Envelope[] = [
    { meta: { protocolVersion: '32.2.0', implementation: { name: 'cucumber-js', version: '12.9.0' }, runtime: { name: 'node.js' }, os: { name: 'linux' }, cpu: { name: 'x64' } } },
    { source: { uri: URI, data: o.text ?? TEXT, mediaType: 'text/x.cucumber.gherkin+plain' } },
    {
      gherkinDocument: {
        uri: URI, comments: [],
        feature: {
          location: loc(2), tags: [{ location: loc(1), name: '@feat', id: `${p}ast-tag-feat` }], language: 'en', keyword: 'Feature', name: 'X', description: '',
          children: [scenario('one', 4, [{ location: loc(3, 3), name: '@one', id: `${p}ast-tag-one` }]), scenario('two', 7, [])],
        },
      },
    },
  ];
  for (const [n, line] of [['one', 4], ['two', 7]] as const) {
    const tags = [{ name: '@feat', astNodeId: `${p}ast-tag-feat` }, ...(n === 'one' ? [{ name: '@one', astNodeId: `${p}ast-tag-one` }] : [])];
    messages.push({
      pickle: {
        id: `${p}pickle-${n}`, uri: URI, location: loc(line, 3), name: n, language: 'en', tags, astNodeIds: [`${p}ast-${n}`],
        steps: [{ id: `${p}pstep-${n}`, text: 'a step', type: 'Context', astNodeIds: [`${p}ast-${n}-step`] }],
      },
    });
  }
  messages.push(
    { stepDefinition: { id: `${p}sd`, pattern: { source: 'a step', type: 'CUCUMBER_EXPRESSION' }, sourceReference: { uri: 'steps.ts', location: { line: 1 } } } },
    { hook: { id: `${p}hook`, type: 'BEFORE_TEST_CASE', sourceReference: { uri: 'hooks.ts', location: { line: 1 } } } },
    { hook: { id: `${p}all`, type: 'BEFORE_TEST_RUN', sourceReference: { uri: 'hooks.ts', location: { line: 9 } } } },
    { testRunStarted: { id: `${p}run`, timestamp: ts(o.start) } },
    { testRunHookStarted: { id: `${p}rh`, testRunStartedId: `${p}run`, hookId: `${p}all`, timestamp: ts(o.start) } },
    { testRunHookFinished: { testRunHookStartedId: `${p}rh`, result: { status: 'PASSED', duration: ts(0) }, timestamp: ts(o.start) } },
  );
  let t = o.start;
  for (const n of o.ran) {
    messages.push({
      testCase: {
        id: `${p}tc-${n}`, pickleId: `${p}pickle-${n}`, testRunStartedId: `${p}run`,
        testSteps: [
          { id: `${p}ts-${n}-hook`, hookId: `${p}hook` },
          { id: `${p}ts-${n}-step`, pickleStepId: `${p}pstep-${n}`, stepDefinitionIds: [`${p}sd`], stepMatchArgumentsLists: [{ stepMatchArguments: [] }] },
        ],
      },
    });
    const attempts = o.retried && n === 'one' ? 2 : 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const started = `${p}tcs-${n}-${attempt}`;
      const status = attempt < attempts - 1 ? 'FAILED' : o.status ?? 'PASSED';
      messages.push({ testCaseStarted: { id: started, testCaseId: `${p}tc-${n}`, attempt, timestamp: ts(++t), ...(o.workerId ? { workerId: o.workerId } : {}) } });
      for (const step of ['hook', 'step']) {
        messages.push(
          { testStepStarted: { testCaseStartedId: started, testStepId: `${p}ts-${n}-${step}`, timestamp: ts(t) } },
          { testStepFinished: { testCaseStartedId: started, testStepId: `${p}ts-${n}-${step}`, testStepResult: { status: step === 'hook' ? 'PASSED' : status, duration: ts(0) }, timestamp: ts(t) } },
        );
      }
      messages.push(
        { attachment: { testCaseStartedId: started, testStepId: `${p}ts-${n}-step`, body: 'console', contentEncoding: 'IDENTITY', mediaType: 'text/plain' } },
        { testCaseFinished: { testCaseStartedId: started, willBeRetried: attempt < attempts - 1, timestamp: ts(t) } },
      );
    }
  }
  const success = o.success ?? true;
  messages.push({
    testRunFinished: {
      testRunStartedId: `${p}run`, timestamp: ts(t + 1), success,
      ...(success ? {} : { message: 'a scenario failed', exception: { type: 'Error', message: `${name} broke` } }),
    },
  });
  return { name, messages };
}

const only = (messages: Envelope[], type: string): Envelope[] => messages.filter((m) => m[type] !== undefined).map((m) => m[type] as Envelope);
const astIdsOf = (doc: Envelope): string[] => JSON.stringify(doc).match(/"id":"[^"]+"/g)!.map((s) => s.slice(6, -1));

describe('mergeMessages', () => {
  const a = shard('a', { ran: ['one'], start: 100, workerId: '0' });
  const b = shard('b', { ran: ['two'], start: 50, status: 'FAILED', success: false });
  const merged = ld.mergeMessages([a, b]);

  it('keeps one source and one gherkinDocument per feature file, and one meta first', () => {
    assert.ok(merged[0]!.meta);
    assert.equal(only(merged, 'meta').length, 1);
    assert.equal(only(merged, 'source').length, 1);
    assert.equal(only(merged, 'gherkinDocument').length, 1);
  });

  it('keeps the pickle each shard ran, and points its AST ids at the kept document', () => {
    const pickles = only(merged, 'pickle');
    assert.deepEqual(pickles.map((p) => p.id).sort(), ['a-pickle-one', 'b-pickle-two']);
    const ast = new Set(astIdsOf(only(merged, 'gherkinDocument')[0]!));
    for (const p of pickles) {
      for (const id of [...p.astNodeIds, ...p.steps.flatMap((s: Envelope) => s.astNodeIds), ...p.tags.map((t: Envelope) => t.astNodeId)]) {
        assert.ok(ast.has(id as string), `${p.id} refers to ${id}, not in the kept document`);
      }
    }
    const two = pickles.find((p) => p.name === 'two')!;
    assert.deepEqual(two.astNodeIds, ['a-ast-two']);
    assert.deepEqual(two.tags, [{ name: '@feat', astNodeId: 'a-ast-tag-feat' }]);
  });

  it('has one testRunStarted (the earliest) and one testRunFinished (the latest), unsuccessful when a shard failed', () => {
    const [started] = only(merged, 'testRunStarted');
    assert.equal(only(merged, 'testRunStarted').length, 1);
    assert.deepEqual(started, { id: 'b-run', timestamp: ts(50) });
    const finished = only(merged, 'testRunFinished');
    assert.equal(finished.length, 1);
    assert.equal(merged.at(-1)!.testRunFinished, finished[0]);
    assert.equal(finished[0]!.success, false);
    assert.deepEqual(finished[0]!.timestamp, ts(102));
    assert.deepEqual(finished[0]!.exception, { type: 'Error', message: 'b broke' });
    assert.equal(finished[0]!.message, 'b: a scenario failed');
    for (const m of [...only(merged, 'testCase'), ...only(merged, 'testRunHookStarted'), ...finished]) assert.equal(m.testRunStartedId, 'b-run');
  });

  it('is successful when every shard is', () => {
    const ok = ld.mergeMessages([shard('a', { ran: ['one'], start: 1 }), shard('b', { ran: ['two'], start: 2 })]);
    assert.equal(only(ok, 'testRunFinished')[0]!.success, true);
    assert.equal(only(ok, 'testRunFinished')[0]!.exception, undefined);
  });

  it('is unsuccessful when a shard did not finish', () => {
    const cut = shard('b', { ran: ['two'], start: 2 });
    cut.messages = cut.messages.filter((m) => !m.testRunFinished);
    const finished = only(ld.mergeMessages([shard('a', { ran: ['one'], start: 1 }), cut]), 'testRunFinished')[0]!;
    assert.equal(finished.success, false);
    assert.match(finished.message as string, /^b: the shard did not finish/);
  });

  it('prefixes worker ids with the shard name (a serial shard\'s one worker is <shard>/main)', () => {
    assert.deepEqual(only(merged, 'testCaseStarted').map((m) => m.workerId).sort(), ['a/0', 'b/main']);
    assert.deepEqual(only(merged, 'testRunHookStarted').map((m) => m.workerId).sort(), ['a/main', 'b/main']);
  });

  it('lists each step definition and hook once, every test step pointing at the kept one', () => {
    assert.deepEqual(only(merged, 'stepDefinition').map((d) => d.id), ['a-sd']);
    assert.deepEqual(only(merged, 'hook').map((d) => d.id), ['a-hook', 'a-all']);
    const steps = only(merged, 'testCase').flatMap((c) => c.testSteps as Envelope[]);
    assert.deepEqual(steps.map((s) => s.hookId ?? s.stepDefinitionIds[0]).sort(), ['a-hook', 'a-hook', 'a-sd', 'a-sd']);
    assert.deepEqual(only(merged, 'testRunHookStarted').map((h) => h.hookId), ['a-all', 'a-all']);
  });

  it('interleaves the shards\' events by time, each shard in its own order', () => {
    const started = only(merged, 'testCaseStarted').map((m) => m.id);
    assert.deepEqual(started, ['b-tcs-two-0', 'a-tcs-one-0']);
    const events = merged.filter((m) => m.testCase || m.testCaseStarted || m.testCaseFinished).map((m) => Object.values(m)[0].id ?? Object.values(m)[0].testCaseStartedId);
    assert.deepEqual(events, ['b-tc-two', 'b-tcs-two-0', 'b-tcs-two-0', 'a-tc-one', 'a-tcs-one-0', 'a-tcs-one-0']);
  });

  it('resolves every id the merged stream refers to', () => {
    assert.deepEqual(ld.streamProblems(merged), []);
  });

  it('keeps a pickle twice when two shards both ran it', () => {
    const both = ld.mergeMessages([shard('a', { ran: ['one', 'two'], start: 1 }), shard('b', { ran: ['one'], start: 2 })]);
    assert.deepEqual(only(both, 'pickle').map((p) => p.id).sort(), ['a-pickle-one', 'a-pickle-two', 'b-pickle-one']);
    assert.equal(only(both, 'testCase').length, 3);
    assert.deepEqual(ld.streamProblems(both), []);
  });

  it('keeps one copy of a pickle no shard ran', () => {
    const none = ld.mergeMessages([shard('a', { ran: [], start: 1 }), shard('b', { ran: [], start: 2 })]);
    assert.deepEqual(only(none, 'pickle').map((p) => p.id), ['a-pickle-one', 'a-pickle-two']);
  });

  it('does not change the shards it was given', () => {
    const s = shard('b', { ran: ['two'], start: 2 });
    const before = JSON.stringify(s);
    ld.mergeMessages([shard('a', { ran: ['one'], start: 1 }), s]);
    assert.equal(JSON.stringify(s), before);
  });

  it('fails on an id two shards share', () => {
    const twin = { ...shard('a', { ran: ['two'], start: 1 }), name: 'twin' };
    assert.throws(() => ld.mergeMessages([shard('a', { ran: ['one'], start: 1 }), twin]), /id collision: "a-pickle-one" is in shards a and twin/);
  });

  it('fails when two shards parsed different texts for one feature file', () => {
    const other = shard('b', { ran: ['two'], start: 1, text: `${TEXT}# edited\n` });
    assert.throws(() => ld.mergeMessages([shard('a', { ran: ['one'], start: 1 }), other]), /features\/x.feature: shards a and b parsed different texts/);
  });

  it('fails on a shard that is not a message stream, and on a shard name given twice', () => {
    assert.throws(() => ld.mergeMessages([{ name: 'a', messages: [{ pickle: {} }] }]), /shard a: no meta message/);
    assert.throws(() => ld.mergeMessages([shard('a', { ran: [], start: 1 }), shard('a', { ran: [], start: 1 })]), /shard name "a" given twice/);
  });
});

describe('streamProblems', () => {
  it('names a reference nobody declares and an id declared twice', () => {
    const s = shard('a', { ran: ['one'], start: 1 }).messages;
    const broken = s.filter((m) => !m.stepDefinition).concat([{ hook: { id: 'a-sd', sourceReference: {} } }]);
    const problems = ld.streamProblems([...broken, { hook: { id: 'a-hook', sourceReference: {} } }]);
    assert.ok(problems.some((p) => /testStep a-ts-one-step refers to stepDefinition a-sd, which is a hook/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /id a-hook declared twice/.test(p)), problems.join('\n'));
    const dangling = ld.streamProblems(s.filter((m) => !m.pickle));
    assert.ok(dangling.some((p) => /testCase a-tc-one refers to pickle a-pickle-one, which is not in the stream/.test(p)));
  });
});

describe('tag index', () => {
  const merged = ld.mergeMessages([
    shard('a', { ran: ['one'], start: 1, workerId: '1', retried: true }),
    shard('b', { ran: [], start: 2 }),
  ]);

  it('gives each scenario the worst status of its last attempt, and its inherited tags', () => {
    const rows = ld.scenarioRows(merged);
    assert.deepEqual(rows.map((r) => [r.name, r.status, r.attempts, r.worker, r.tags]), [
      ['one', 'PASSED', 2, 'a/1', ['@feat', '@one']],
      ['two', 'NOT RUN', 0, '', ['@feat']],
    ]);
    assert.equal(rows[0]!.line, 4);
  });

  it('writes tags.html: an index of tags with counts, a section per tag, links back to index.html', (t: TestContext) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'living-doc-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    ld.writeTagIndex(merged, dir);
    const html = fs.readFileSync(path.join(dir, 'tags.html'), 'utf8');
    assert.match(html, /<a href="#tag-feat">@feat<\/a><\/td><td class="n">2<\/td><td class="n">1<\/td>/);
    assert.match(html, /<section id="tag-one">/);
    assert.match(html, /href="index.html\?query=%40one"/);
    assert.match(html, /features\/x\.feature:7/);
    assert.doesNotMatch(html, /<script/);
  });
});

describe('writeLivingDoc and the command', () => {
  it('writes index.html with the merged messages, and cucumber.ndjson', async (t: TestContext) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'living-doc-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const merged = ld.mergeMessages([shard('a', { ran: ['one'], start: 1 }), shard('b', { ran: ['two'], start: 2 })]);
    await ld.writeLivingDoc(merged, dir);
    const html = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
    assert.match(html, /window\.CUCUMBER_MESSAGES = \[/);
    assert.ok(html.includes('"b-pickle-two"'));
    const lines = fs.readFileSync(path.join(dir, 'cucumber.ndjson'), 'utf8').trim().split('\n');
    assert.deepEqual(lines.map((l) => JSON.parse(l) as Envelope), merged);
  });

  it('exits 1 naming a missing or unparsable file, and merges name=file and bare files', (t: TestContext) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'living-doc-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const run = (...args: string[]) => spawnSync(process.execPath, [script, '--out', path.join(dir, 'out'), ...args], { encoding: 'utf8' });
    const missing = run(`a=${path.join(dir, 'nope.ndjson')}`);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /shard a: cannot read .*nope\.ndjson: ENOENT/);
    fs.writeFileSync(path.join(dir, 'bad.ndjson'), '{"meta":{}}\n{oops\n');
    const bad = run(`a=${path.join(dir, 'bad.ndjson')}`);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /bad\.ndjson:2 is not JSON/);
    for (const s of [shard('a', { ran: ['one'], start: 1 }), shard('b', { ran: ['two'], start: 2 })]) {
      fs.mkdirSync(path.join(dir, s.name));
      fs.writeFileSync(path.join(dir, s.name, 'cucumber.ndjson'), s.messages.map((m) => JSON.stringify(m)).join('\n') + '\n');
    }
    const ok = run(`a=${path.join(dir, 'a', 'cucumber.ndjson')}`, path.join(dir, 'b', 'cucumber.ndjson'));
    assert.equal(ok.status, 0, ok.stderr);
    const out = fs.readFileSync(path.join(dir, 'out', 'cucumber.ndjson'), 'utf8');
    assert.match(out, /"workerId":"b\/main"/);
    assert.ok(fs.existsSync(path.join(dir, 'out', 'index.html')) && fs.existsSync(path.join(dir, 'out', 'tags.html')));
  });
});
