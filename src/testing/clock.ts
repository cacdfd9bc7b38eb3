/**
 * A controllable clock for tests: every expiry, TTL, cool-down and audit timestamp of agent-iam
 * reads it while installed. Stores that keep time themselves (Redis, PostgreSQL) keep theirs.
 *
 * @module
 */
import { setClock, type Clock } from '../lib/clock.js';

/** A clock that moves only when told to. */
export interface TestClock extends Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Move the clock forward by `ms` (negative values are refused). */
  advance(ms: number): void;
  /** Set the clock to `ms` since the epoch. */
  set(ms: number): void;
  /** Give agent-iam its system clock back. */
  restore(): void;
}

/**
 * Install a clock that starts at `start` (default: the current time) and moves only with
 * `advance` or `set`. Call `restore()` when the test ends.
 *
 * @example
 * ```ts
 * const clock = installTestClock();
 * try {
 *   clock.advance(31_000); // a 30 s cache entry has now expired
 * } finally {
 *   clock.restore();
 * }
 * ```
 */
export function installTestClock(start: number = Date.now()): TestClock {
  let t = start;
  const clock: TestClock = {
    now: () => t,
    advance(ms) {
      if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError('advance(ms) needs a finite ms >= 0');
      t += ms;
    },
    set(ms) {
      if (!Number.isFinite(ms)) throw new RangeError('set(ms) needs a finite ms');
      t = ms;
    },
    restore: () => setClock(undefined),
  };
  setClock(clock);
  return clock;
}
