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

/** The current time as an ISO 8601 string (audit events). */
export function isoNow(): string {
  return new Date(slot.clock.now()).toISOString();
}

/** Replace the clock (tests); `undefined` restores the system clock. */
export function setClock(clock: Clock | undefined): void {
  slot.clock = clock ?? systemClock;
}
