/** Shared timing helpers for the benchmarks (not a benchmark itself: `npm run bench` skips it). */

/** Run `fn` in batches for about `ms` milliseconds (after a 150 ms warm-up); returns mean ns per call. */
export async function measure(fn: () => unknown, ms = 1000, batch = 200): Promise<number> {
  const warmEnd = performance.now() + 150;
  while (performance.now() < warmEnd) for (let i = 0; i < batch; i++) await fn();
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < batch; i++) await fn();
    calls += batch;
    now = performance.now();
  }
  return ((now - start) * 1e6) / calls;
}

/** Nanoseconds as `123 ns` or `1.23 µs`. */
export const fmt = (ns: number): string => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
