// Merges the Cucumber message streams of several shards of one run into one
// stream that the HTML formatter (and anything reading cucumber.ndjson) sees
// as a single run. Why it is more than a concatenation: every shard parses
// every feature file and emits its source, gherkinDocument and ALL its pickles
// (only the test cases follow --tags), each parse with fresh random ids; and
// each shard has its own meta, testRunStarted/Finished and definitions.
import { assertConsistent } from './messages-check.mjs';

const DOCUMENT = new Set(['source', 'gherkinDocument', 'pickle', 'parseError']);
const DEFINITION = ['parameterType', 'stepDefinition', 'hook', 'undefinedParameterType'];

/** JSON with sorted keys: two shards' copies of one definition compare equal whatever the key order. */
const canonical = (value) => JSON.stringify(value, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v)
  ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));

/** What makes two shards' definitions the same one (their ids differ). */
const DEFINITION_KEY = {
  parameterType: ({ id: _id, ...rest }) => canonical(rest),
  stepDefinition: ({ pattern, sourceReference }) => canonical({ pattern, sourceReference }),
  hook: ({ id: _id, ...rest }) => canonical(rest),
  undefinedParameterType: (d) => canonical(d),
};

const millis = (ts) => ts.seconds * 1000 + ts.nanos / 1e6;
const typeOf = (envelope) => Object.keys(envelope)[0];

/**
 * @typedef {Record<string, any>} Envelope one Cucumber message, e.g. { pickle: {...} }
 * @typedef {{ name: string, messages: Envelope[] }} Shard
 * @param {Shard[]} shards one parsed cucumber.ndjson per shard, in the order to prefer their copies
 * @returns {Envelope[]} one stream: meta, documents, definitions, testRunStarted, events, testRunFinished
 */
export function mergeMessages(shards) {
  checkShards(shards);
  const split = shards.map(splitShard);
  checkCollisions(split);

  const documents = mergeDocuments(split);
  const definitions = mergeDefinitions(split);
  const started = split.filter((s) => s.testRunStarted).sort((a, b) => millis(a.testRunStarted.timestamp) - millis(b.testRunStarted.timestamp))[0]?.testRunStarted;
  const runId = started?.id;
  for (const s of split) if (s.testRunStarted?.id && runId) s.ids.set(s.testRunStarted.id, runId);

  const events = mergeEvents(split.map((s) => s.events.map((e) => remapEvent(structuredClone(e), s))));
  const merged = [
    { meta: split[0].meta },
    ...documents,
    ...definitions,
    ...(started ? [{ testRunStarted: started }] : []),
    ...events,
    { testRunFinished: finished(split, runId, events) },
  ];
  assertConsistent(merged);
  return merged;
}

function checkShards(shards) {
  if (!Array.isArray(shards) || shards.length === 0) throw new Error('mergeMessages: no shards given');
  const names = new Set();
  for (const shard of shards) {
    if (!shard?.name || !Array.isArray(shard.messages)) throw new Error('mergeMessages: each shard is { name, messages: [...] }');
    if (names.has(shard.name)) throw new Error(`mergeMessages: shard name "${shard.name}" given twice`);
    names.add(shard.name);
  }
}

/** One shard's messages sorted by role; `ids` maps this shard's ids to the merged stream's (identity when absent). */
function splitShard({ name, messages }) {
  const s = { name, meta: undefined, testRunStarted: undefined, testRunFinished: undefined, documents: [], definitions: [], events: [], ids: new Map() };
  for (const envelope of messages) {
    const type = typeOf(envelope);
    if (type === 'meta') s.meta ??= envelope.meta;
    else if (type === 'testRunStarted' || type === 'testRunFinished') {
      if (s[type]) throw new Error(`shard ${name}: two ${type} messages: not the output of one cucumber run`);
      s[type] = envelope[type];
    } else if (DOCUMENT.has(type)) s.documents.push(envelope);
    else if (DEFINITION.includes(type)) s.definitions.push(envelope);
    else s.events.push(envelope);
  }
  if (!s.meta) throw new Error(`shard ${name}: no meta message: not a Cucumber messages stream`);
  return s;
}

/** The ids a shard's run made: random UUIDs in cucumber-js, so the same one in two shards means a mix-up. */
function runIds(s) {
  const ids = [];
  for (const e of s.documents) if (e.pickle) ids.push(e.pickle.id, ...e.pickle.steps.map((st) => st.id));
  for (const e of s.events) {
    if (e.testCase) ids.push(e.testCase.id, ...e.testCase.testSteps.map((st) => st.id));
    for (const type of ['testCaseStarted', 'testRunHookStarted', 'suggestion']) if (e[type]) ids.push(e[type].id);
  }
  if (s.testRunStarted?.id) ids.push(s.testRunStarted.id);
  return ids;
}

function checkCollisions(split) {
  const owner = new Map();
  for (const s of split) {
    for (const id of runIds(s)) {
      const other = owner.get(id);
      if (other !== undefined && other !== s.name) {
        throw new Error(`id collision: "${id}" is in shards ${other} and ${s.name} (the same run given twice, or ids that are not unique per run)`);
      }
      owner.set(id, s.name);
    }
  }
}

/**
 * One source + gherkinDocument per uri (the first shard's); the other shards' AST ids mapped onto it.
 * Pickles: every copy some shard ran (a test case refers to it) stays; of a pickle no shard ran, one copy.
 */
function mergeDocuments(split) {
  const byUri = new Map(); // uri -> { source, sourceFrom, doc, pickles: Map(AST ids -> [{ pickle, shard, ran }]) }
  const entry = (uri) => byUri.get(uri) ?? byUri.set(uri, { source: undefined, sourceFrom: undefined, doc: undefined, pickles: new Map() }).get(uri);
  const parseErrors = new Map();
  // Documents first, all shards: a pickle's AST ids can only be mapped once its shard's document is.
  for (const s of split) {
    for (const envelope of s.documents) {
      if (envelope.source) {
        const e = entry(envelope.source.uri);
        if (!e.source) { e.source = envelope.source; e.sourceFrom = s.name; } else if (e.source.data !== envelope.source.data) {
          throw new Error(`${envelope.source.uri}: shards ${e.sourceFrom} and ${s.name} parsed different texts; they are not the same run`);
        }
      } else if (envelope.gherkinDocument) {
        const e = entry(envelope.gherkinDocument.uri);
        if (!e.doc) e.doc = envelope.gherkinDocument; else mapTree(envelope.gherkinDocument, e.doc, s.ids, envelope.gherkinDocument.uri);
      } else if (envelope.parseError) {
        parseErrors.set(canonical(envelope.parseError), envelope);
      }
    }
  }
  for (const s of split) {
    const ran = new Set(s.events.filter((e) => e.testCase).map((e) => e.testCase.pickleId));
    for (const envelope of s.documents.filter((e) => e.pickle)) {
      const pickle = structuredClone(envelope.pickle);
      remapPickleAst(pickle, s.ids);
      const copies = entry(pickle.uri).pickles;
      const key = pickle.astNodeIds.join(',');
      if (!copies.has(key)) copies.set(key, []);
      copies.get(key).push({ pickle, shard: s, ran: ran.has(pickle.id) });
    }
  }
  const out = [];
  for (const e of byUri.values()) {
    if (e.source) out.push({ source: e.source });
    if (e.doc) out.push({ gherkinDocument: e.doc });
    for (const copies of e.pickles.values()) {
      const kept = copies.some((c) => c.ran) ? copies.filter((c) => c.ran) : [copies[0]];
      for (const c of kept) out.push({ pickle: c.pickle });
      // A dropped copy's ids point at a kept one (a suggestion could name its steps).
      for (const c of copies.filter((x) => !kept.includes(x))) {
        c.shard.ids.set(c.pickle.id, kept[0].pickle.id);
        c.pickle.steps.forEach((st, i) => c.shard.ids.set(st.id, kept[0].pickle.steps[i]?.id ?? st.id));
      }
    }
  }
  return [...out, ...parseErrors.values()];
}

/** Walks two parses of the same text in parallel: same shape, so ids pair up by position. */
function mapTree(dropped, kept, ids, where) {
  if (Array.isArray(dropped) || Array.isArray(kept)) {
    if (!Array.isArray(dropped) || !Array.isArray(kept) || dropped.length !== kept.length) throw new Error(`${where}: gherkin documents differ in shape`);
    dropped.forEach((d, i) => mapTree(d, kept[i], ids, `${where}[${i}]`));
  } else if (dropped && typeof dropped === 'object') {
    if (!kept || typeof kept !== 'object') throw new Error(`${where}: gherkin documents differ in shape`);
    const keys = new Set([...Object.keys(dropped), ...Object.keys(kept)]);
    for (const k of keys) {
      if (k === 'id' && typeof dropped.id === 'string' && typeof kept.id === 'string') ids.set(dropped.id, kept.id);
      else mapTree(dropped[k], kept[k], ids, `${where}.${k}`);
    }
  } else if (dropped !== kept) {
    throw new Error(`${where}: gherkin documents differ (${JSON.stringify(dropped)} vs ${JSON.stringify(kept)})`);
  }
}

const mapId = (ids, id) => (id === undefined ? id : ids.get(id) ?? id);

function remapPickleAst(pickle, ids) {
  pickle.astNodeIds = pickle.astNodeIds.map((id) => mapId(ids, id));
  for (const step of pickle.steps) step.astNodeIds = step.astNodeIds.map((id) => mapId(ids, id));
  for (const tag of pickle.tags) tag.astNodeId = mapId(ids, tag.astNodeId);
}

/** One of each definition: test cases of every shard point at the kept copy, so none is listed twice. */
function mergeDefinitions(split) {
  const kept = new Map(); // type + key -> kept envelope
  for (const s of split) {
    for (const envelope of s.definitions) {
      const type = typeOf(envelope);
      const key = `${type} ${DEFINITION_KEY[type](envelope[type])}`;
      const first = kept.get(key);
      if (!first) kept.set(key, envelope);
      else if (envelope[type].id) s.ids.set(envelope[type].id, first[type].id);
    }
  }
  return DEFINITION.flatMap((type) => [...kept.values()].filter((e) => typeOf(e) === type));
}

/**
 * Points a shard's event at the merged ids. Worker ids become "<shard>/<worker>" so they stay apart;
 * a serial run has no worker id, its one worker becomes "<shard>/main".
 */
function remapEvent(envelope, s) {
  const ids = s.ids;
  const m = envelope[typeOf(envelope)];
  if ('testRunStartedId' in m) m.testRunStartedId = mapId(ids, m.testRunStartedId);
  if (envelope.testCase) {
    m.pickleId = mapId(ids, m.pickleId);
    for (const step of m.testSteps) {
      if (step.hookId) step.hookId = mapId(ids, step.hookId);
      if (step.pickleStepId) step.pickleStepId = mapId(ids, step.pickleStepId);
      if (step.stepDefinitionIds) step.stepDefinitionIds = step.stepDefinitionIds.map((id) => mapId(ids, id));
    }
  } else if (envelope.testCaseStarted || envelope.testRunHookStarted) {
    m.workerId = `${s.name}/${m.workerId ?? 'main'}`;
    if (m.hookId) m.hookId = mapId(ids, m.hookId);
  } else if (envelope.suggestion) {
    m.pickleStepId = mapId(ids, m.pickleStepId);
  }
  return envelope;
}

/**
 * Interleaves the shards' events by time, keeping each shard's own order (a message without a
 * timestamp, such as testCase, goes with the one before it): a timeline of the whole run.
 */
function mergeEvents(lists) {
  const at = lists.map(() => 0);
  const last = lists.map(() => -Infinity);
  const time = (i) => {
    const m = lists[i][at[i]];
    const ts = m[typeOf(m)].timestamp;
    return ts ? Math.max(millis(ts), last[i]) : last[i];
  };
  const out = [];
  for (;;) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) if (at[i] < lists[i].length && (best < 0 || time(i) < time(best))) best = i;
    if (best < 0) return out;
    last[best] = time(best);
    out.push(lists[best][at[best]++]);
  }
}

/** Successful only if every shard finished and succeeded; the first failure's message and exception kept. */
function finished(split, runId, events) {
  const done = split.filter((s) => s.testRunFinished);
  const latest = done.map((s) => s.testRunFinished.timestamp)
    .concat(events.map((e) => e[typeOf(e)].timestamp).filter(Boolean))
    .sort((a, b) => millis(b) - millis(a))[0] ?? { seconds: 0, nanos: 0 };
  const result = { timestamp: latest, success: split.every((s) => s.testRunFinished?.success === true) };
  if (runId) result.testRunStartedId = runId;
  const message = split.map((s) => (s.testRunFinished ? s.testRunFinished.message && `${s.name}: ${s.testRunFinished.message}`
    : `${s.name}: the shard did not finish (no testRunFinished message)`)).find(Boolean);
  if (message) result.message = message;
  const exception = split.map((s) => s.testRunFinished?.exception).find(Boolean);
  if (exception) result.exception = exception;
  return result;
}
