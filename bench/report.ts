/**
 * Shared result reporting for the benchmarks (not a benchmark itself: `npm run bench` skips it).
 *
 * A benchmark keeps printing its own lines, and also calls {@link record} for each figure it
 * measured against a baseline of the same run. `npm run bench` (scripts/bench.mjs) gives every child
 * a file in `BENCH_RESULTS`; each call appends one JSON line there, and the runner prints one table
 * of all of them and merges them into bench/results.json (scripts/bench-table.mjs turns that into the
 * README's table). Run directly (`npx tsx bench/http.ts`), a benchmark records nothing.
 */
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';

/** How a figure is judged: at least, or at most, this value. */
export interface Target {
  op: '>=' | '<=';
  value: number;
}

/** One measured figure. */
export interface BenchRecord {
  /** Stable id inside the benchmark, e.g. `express-agent-iam/bare`. */
  id: string;
  /** What it compares, for the table, e.g. `Express + agentAuth / bare Express (req/s)`. */
  label: string;
  /** The figure: a ratio (`unit` 'x', the default) or a quantity in `unit`. */
  value: number;
  /** `x` (ratio against the baseline of the same run), `µs`, `ns`, `B`, `MB`, `ms`, `count`, `calls/s`. */
  unit?: string;
  /** The goal, when there is one. */
  target?: Target;
  /** A short remark printed beside the figure. */
  note?: string;
}

const file = process.env.BENCH_RESULTS;
const bench = basename(process.argv[1] ?? 'bench', '.ts');

/** Record one figure (a no-op unless run by `npm run bench`). Returns the value, for printing. */
export function record(r: BenchRecord): number {
  if (!Number.isFinite(r.value)) throw new Error(`bench ${bench}: ${r.id} is not a number (${r.value})`);
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify({ bench, ...r })}\n`);
  return r.value;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
