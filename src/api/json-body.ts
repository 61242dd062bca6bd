// vman's own reading of JSON bodies, in place of Fastify's: JSON.parse alone
// silently keeps the last of two equal keys ({"name":"a","name":"b"} is a VM
// named b), and a "__proto__", "constructor" or "prototype" key is the usual
// way to poison objects in a JavaScript server. Both are refused with a 400
// that names the key; text that is not JSON is refused saying so.
import type { FastifyInstance } from 'fastify';
import { invalid } from '../errors.ts';

/** Keys no body may hold, at any depth. */
export const FORBIDDEN_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/**
 * Parses a body: undefined for an empty one (as if none was sent), else the
 * value; throws a VmanError (kind invalid) for text that is not JSON, for a key
 * given twice in one object and for a forbidden key.
 */
export function parseJsonBody(text: string): unknown {
  if (text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalid('invalid-json', `the body is not valid JSON: ${(err as Error).message}`, err);
  }
  const flaw = keyFlaw(text);
  if (flaw?.kind === 'forbidden') {
    throw invalid('forbidden-key', `the body has the key ${JSON.stringify(flaw.key)}${where(flaw.path)}, which vman refuses: ${FORBIDDEN_KEYS.map((k) => JSON.stringify(k)).join(', ')} could change every object in vman`);
  }
  if (flaw?.kind === 'duplicate') {
    throw invalid('duplicate-key', `the body has the key ${JSON.stringify(flaw.key)} twice${where(flaw.path)}: JSON readers disagree on which one counts`);
  }
  return value;
}

const where = (path: string[]): string => (path.length > 0 ? ` (in ${path.map((p) => JSON.stringify(p)).join(' → ')})` : '');

interface KeyFlaw {
  kind: 'duplicate' | 'forbidden';
  key: string;
  /** The keys of the objects it is nested in, outermost first. */
  path: string[];
}

interface Frame {
  kind: 'object' | 'array';
  keys: Set<string>;
  /** The key this object or list is the value of (undefined for list items and the top). */
  under: string | undefined;
  /** In an object: whether the next string is a key. */
  expectKey: boolean;
}

/**
 * The first key given twice in one object, or the first forbidden key, in text
 * that JSON.parse has accepted. Keys are compared after unescaping ("\u006eame" is "name").
 */
export function keyFlaw(text: string): KeyFlaw | undefined {
  const stack: Frame[] = [];
  let lastKey: string | undefined;
  const pathOf = (): string[] => stack.map((f) => f.under).filter((k): k is string => k !== undefined);
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (c === '{' || c === '[') {
      stack.push({ kind: c === '{' ? 'object' : 'array', keys: new Set(), under: top?.kind === 'object' ? lastKey : undefined, expectKey: c === '{' });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      if (top?.kind === 'object') top.expectKey = true;
    } else if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (top?.kind === 'object' && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (FORBIDDEN_KEYS.includes(key)) return { kind: 'forbidden', key, path: pathOf() };
        if (top.keys.has(key)) return { kind: 'duplicate', key, path: pathOf() };
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = end;
    }
  }
  return undefined;
}

/** Makes `parseJsonBody` the reader of application/json bodies (and of nothing else: other types stay 415). */
export function installJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
