// The suite's own reader of vman's GET /metrics (Prometheus text format),
// sharing no code with vman's: samples by name and labels, read from the raw
// text of the answer.
import type { VmanWorld } from '../world/vman-world.ts';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  /** The text as vman served it, for the report. */
  text: string;
  samples: Sample[];
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|\})/y;

export function readSamples(text: string): Sample[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).map((line) => {
    const m = LINE.exec(line.trim());
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    if (body !== '') {
      LABEL.lastIndex = 1;
      while (LABEL.lastIndex < body.length) {
        const l = LABEL.exec(body);
        if (!l) throw new Error(`labels not readable in ${JSON.stringify(line)}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
      }
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`not a number in ${JSON.stringify(line)}`);
    return { name: m[1]!, labels, value };
  });
}

/** GET /metrics on the scenario's vman (with its token), read; the text is attached to the report. */
export async function scrapeMetrics(world: VmanWorld, why: string): Promise<Scrape> {
  const res = await world.api().http.get('metrics', { throwHttpErrors: false, responseType: 'text' });
  if (res.statusCode !== 200) throw new Error(`GET /metrics answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
  const type = String(res.headers['content-type']);
  if (!type.startsWith('text/plain; version=0.0.4')) throw new Error(`GET /metrics answered with content-type ${type}, not Prometheus text format 0.0.4`);
  world.attach(res.body, { mediaType: 'text/plain', fileName: `GET /metrics (${why})` });
  return { text: res.body, samples: readSamples(res.body) };
}

/** Samples of a metric whose labels include these; none is an empty list. */
export function samplesOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): Sample[] {
  return scrape.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample of a metric with these labels; fails naming what there was instead. */
export function valueOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const found = samplesOf(scrape, name, labels);
  if (found.length !== 1) {
    const all = samplesOf(scrape, name).map((s) => `${JSON.stringify(s.labels)} ${s.value}`);
    throw new Error(`/metrics has ${found.length} samples of ${name} with ${JSON.stringify(labels)}; of ${name} it has: ${all.join('; ') || 'none'}`);
  }
  return found[0]!.value;
}
