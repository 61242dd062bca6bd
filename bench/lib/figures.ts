// What a benchmark reports: figures, each a vman measurement against a
// baseline measured in the same run, with every sample kept for the report.
import type { HostInfo } from '../../src/host/probe.ts';
import { median, percentile, round } from './stats.ts';

export type Stat = 'median' | 'p50' | 'p99';

export interface Series {
  /** What was measured, e.g. "POST /vms/:id/start → response". */
  label: string;
  /** The figure's statistic of the samples (see Figure.stat). */
  value: number;
  samples: number[];
}

export interface Figure {
  /** Stable id, e.g. "boot.guest-ready". */
  id: string;
  /** Short text for the table. */
  label: string;
  stat: Stat;
  unit: 'ms';
  vman: Series;
  baseline: Series;
  /** vman.value / baseline.value. */
  ratio: number;
  /** Highest acceptable ratio; absent for figures that only inform. */
  target?: number;
  /** Text for the target column when it is not a plain "≤ x". */
  targetText?: string;
  verdict: 'ok' | 'over' | 'info';
  notes?: string[];
  extra?: Record<string, unknown>;
}

export interface FigureInput {
  id: string;
  label: string;
  stat?: Stat;
  vman: { label: string; samples: number[] };
  baseline: { label: string; samples: number[] };
  target?: number;
  targetText?: string;
  notes?: string[];
  extra?: Record<string, unknown>;
}

export function statOf(stat: Stat, samples: readonly number[]): number {
  return stat === 'median' ? median(samples) : percentile(samples, stat === 'p50' ? 50 : 99);
}

export function figure(f: FigureInput): Figure {
  const stat = f.stat ?? 'median';
  const v = statOf(stat, f.vman.samples);
  const b = statOf(stat, f.baseline.samples);
  const ratio = v / b;
  const out: Figure = {
    id: f.id,
    label: f.label,
    stat,
    unit: 'ms',
    vman: { label: f.vman.label, value: round(v), samples: f.vman.samples.map((x) => round(x)) },
    baseline: { label: f.baseline.label, value: round(b), samples: f.baseline.samples.map((x) => round(x)) },
    ratio: round(ratio),
    verdict: f.target === undefined ? 'info' : ratio <= f.target ? 'ok' : 'over',
  };
  if (f.target !== undefined) out.target = f.target;
  if (f.targetText !== undefined) out.targetText = f.targetText;
  if (f.notes?.length) out.notes = f.notes;
  if (f.extra) out.extra = f.extra;
  return out;
}

export interface BenchContext {
  /** Measured runs per QEMU figure (after one warm-up). */
  runs: number;
  /** Runs of each whole-suite timing. */
  suiteRuns: number;
  /** This run's temporary folder (/tmp/vman-bench-*); removed at the end. */
  root: string;
  /** The repository (for the suite run). */
  repo: string;
  log(msg: string): void;
  /** The host probe, made once per run. */
  host(): Promise<HostInfo>;
}

export interface BenchModule {
  name: string;
  description: string;
  needsQemu: boolean;
  run(ctx: BenchContext): Promise<Figure[]>;
}
