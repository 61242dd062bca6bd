// What a refusal must say: an RFC 9457 problem (application/problem+json with
// type, title, status and detail), whose detail names what was wrong. Each
// function returns the flaws it finds, in words; none means the answer is right.
import type { IncomingHttpHeaders } from 'node:http';

export interface AnswerLike {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** What is wrong with an answer as an RFC 9457 problem for a refusal. */
export function problemFlaws(answer: AnswerLike): string[] {
  const flaws: string[] = [];
  const type = answer.headers['content-type'] ?? '';
  if (!type.startsWith('application/problem+json')) flaws.push(`content type is ${JSON.stringify(type)}, not application/problem+json`);
  const b = answer.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return [...flaws, `the body is not a JSON object: ${JSON.stringify(b)?.slice(0, 200)}`];
  const p = b as Record<string, unknown>;
  for (const field of ['type', 'title', 'detail']) {
    if (typeof p[field] !== 'string' || (p[field] as string).trim() === '') flaws.push(`"${field}" is ${JSON.stringify(p[field])}, not a non-empty string`);
  }
  if (p.status !== answer.statusCode) flaws.push(`"status" is ${JSON.stringify(p.status)} but the HTTP status is ${answer.statusCode}`);
  return flaws;
}

export function detailOf(answer: AnswerLike): string {
  const detail = (answer.body as { detail?: unknown } | undefined)?.detail;
  return typeof detail === 'string' ? detail : '';
}

/** Whether `word` stands in `text` as a word of its own (not inside a longer name: "name" is not in "names"). */
export function hasWord(text: string, word: string): boolean {
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9_])${escaped}([^A-Za-z0-9_]|$)`).test(text);
}

/** The problem names the field (as a word of its detail). */
export function fieldFlaws(answer: AnswerLike, field: string): string[] {
  const flaws = problemFlaws(answer);
  const detail = detailOf(answer);
  if (!hasWord(detail, field)) flaws.push(`the detail does not name the field ${field}: ${JSON.stringify(detail)}`);
  return flaws;
}

/** The problem's detail holds these words. */
export function saysFlaws(answer: AnswerLike, words: string): string[] {
  const flaws = problemFlaws(answer);
  const detail = detailOf(answer);
  if (!detail.includes(words)) flaws.push(`the detail does not say ${JSON.stringify(words)}: ${JSON.stringify(detail)}`);
  return flaws;
}

/** The problem's detail quotes the value as JSON writes it ("vm-0", "../x", "a\u0000"). */
export function quotesFlaws(answer: AnswerLike, value: string): string[] {
  return saysFlaws(answer, JSON.stringify(value));
}

/** The methods an Allow header lists, in its order. */
export function allowed(answer: AnswerLike): string[] {
  const header = answer.headers.allow;
  return (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((m) => m.trim()).filter(Boolean);
}

/** The problem names each of the methods (as words of its detail). */
export function methodsFlaws(answer: AnswerLike, methods: string[]): string[] {
  const flaws = problemFlaws(answer);
  for (const m of methods) if (!hasWord(detailOf(answer), m)) flaws.push(`the detail does not name ${m}: ${JSON.stringify(detailOf(answer))}`);
  return flaws;
}

