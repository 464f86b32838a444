// The benchmark kit: every figure is a ratio against a baseline measured in the same run, on the
// same machine, so a slow or busy machine moves both sides. Timing assertions stay out of the
// test suite; a bench prints whether its target holds.
import { performance } from 'node:perf_hooks';

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** One line of the table. `ratio` is ours over the baseline, median over median. */
export interface Row {
  bench: string;
  case: string;
  unit: string;
  stats: Stats;
  baseline?: { case: string; stats: Stats };
  ratio?: number;
  target?: string;
  met?: boolean;
  note?: string;
}

export function stats(xs: number[]): Stats {
  if (xs.length === 0) throw new Error('bench: stats of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/** The q-th quantile (0..1) by nearest rank, for latency distributions. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** Milliseconds on CLOCK_MONOTONIC, which every process on the machine shares. */
export const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * Times each case `reps` times, round-robin (a, b, a, b, …) so drift in the machine's load
 * lands on every case alike. `before` runs untimed ahead of each timed call (e.g. cleanup).
 */
export async function interleave(
  reps: number,
  cases: Record<string, { run: () => Promise<unknown>; before?: () => Promise<unknown> }>,
): Promise<Record<string, Stats>> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < reps; i++) {
    for (const [name, c] of Object.entries(cases)) {
      await c.before?.();
      samples[name]!.push(await timeMs(c.run));
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, stats(v)]));
}

/** A row for `ours` against `base`, with the target `ratio <= limit` checked. */
export function ratioRow(
  bench: string,
  name: string,
  ours: Stats,
  baseName: string,
  base: Stats,
  limit?: number,
  unit = 'ms',
): Row {
  const ratio = ours.median / base.median;
  return {
    bench,
    case: name,
    unit,
    stats: ours,
    baseline: { case: baseName, stats: base },
    ratio,
    ...(limit === undefined ? {} : { target: `≤ ${limit}×`, met: ratio <= limit }),
  };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtStats = (s: Stats) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;

/** The table printed at the end: median (min–max) of each side, the ratio, the target. */
export function table(rows: Row[]): string {
  const head = ['bench', 'case', 'median (min–max)', 'baseline', 'baseline median (min–max)', 'ratio', 'target', 'met'];
  const body = rows.map((r) => [
    r.bench,
    r.case,
    `${fmtStats(r.stats)} ${r.unit}`,
    r.baseline?.case ?? '',
    r.baseline ? `${fmtStats(r.baseline.stats)} ${r.unit}` : '',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
