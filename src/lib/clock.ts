/**
 * The one time source of `src`: every expiry, TTL, cool-down and audit timestamp reads {@link nowMs}.
 * Tests move time with `setClock` (from `agent-iam/testing`) instead of sleeping. Durations measured
 * for audit events use `performance.now()`, which is monotonic and not part of this seam.
 *
 * @module
 */

/** A source of wall-clock time in milliseconds since the epoch. */
export interface Clock {
  now(): number;
}

const systemClock: Clock = { now: () => Date.now() };
/** One slot per process, shared by the ESM and CJS builds (like the context storage). */
const SLOT = Symbol.for('agent-iam.clock.v1');
const slot: { clock: Clock } = ((globalThis as Record<symbol, unknown>)[SLOT] as { clock: Clock } | undefined) ??
  ((globalThis as Record<symbol, unknown>)[SLOT] = { clock: systemClock }) as { clock: Clock };

/** Milliseconds since the epoch, from the current clock. */
export function nowMs(): number {
  return slot.clock.now();
}
/** The last formatted instant and second, for {@link isoNow}. */
let lastMs = Number.NaN;
let lastIso = '';
let secondStart = Number.NEGATIVE_INFINITY;
let secondPrefix = '';
/**
 * The current time as an ISO 8601 string (audit events), equal to `new Date(nowMs()).toISOString()`
 * but without a `Date` per call (`toISOString` costs ~0.5 µs, more than the rest of an audit event):
 * the `YYYY-MM-DDTHH:MM:SS.` prefix is formatted once per second and the milliseconds appended
 * (same output for every year 0000–9999, and when a test clock moves backwards).
 */
export function isoNow(): string {
  const ms = slot.clock.now();
  if (ms === lastMs) return lastIso;
  lastMs = ms;
  let offset = ms - secondStart;
  if (offset < 0 || offset >= 1000) {
    offset = ((ms % 1000) + 1000) % 1000;
    secondStart = ms - offset;
    const full = new Date(secondStart).toISOString();
    secondPrefix = full.slice(0, full.length - 4); // drop "000Z"
  }
  lastIso = secondPrefix + (offset < 10 ? '00' : offset < 100 ? '0' : '') + offset + 'Z';
  return lastIso;
}

/** Replace the clock (tests); `undefined` restores the system clock. */
export function setClock(clock: Clock | undefined): void {
  slot.clock = clock ?? systemClock;
}
