import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { isoNow, nowMs, setClock } from '../../src/lib/clock.js';

afterEach(() => setClock(undefined));

describe('clock', () => {
  it('isoNow equals new Date(nowMs()).toISOString() for any sequence of instants, backwards too', () => {
    let t = 0;
    setClock({ now: () => t });
    const instant = fc.integer({ min: -62_167_219_200_000, max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) });
    const step = fc.oneof(instant, fc.integer({ min: -2_500, max: 2_500 }).map((d) => ({ d })));
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 50 }), (steps) => {
        for (const s of steps) {
          t = typeof s === 'number' ? s : Math.min(Math.max(t + s.d, -62_167_219_200_000), Date.UTC(9999, 11, 31, 23, 59, 59, 999));
          expect(nowMs()).toBe(t);
          expect(isoNow()).toBe(new Date(t).toISOString());
        }
      }),
      { numRuns: 300 },
    );
  });
});
