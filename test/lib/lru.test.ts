import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LruCache } from '../../src/lib/lru.js';

describe('LruCache', () => {
  it('below 8 entries it is exact LRU', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('c', 3); // evicts b
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    expect(c.size).toBe(2);
  });

  it('never holds more than max entries, and an entry used within the last max - max/8 insertions is never evicted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 })), { maxLength: 600 }), (max, ops) => {
        const c = new LruCache<number, number>(max);
        const lastUse = new Map<number, number>(); // key -> insertion count at its last use
        const has = (k: number) => [...c.keys()].includes(k); // looks without counting as a use
        let inserts = 0;
        for (const [isSet, k] of ops) {
          if (isSet) {
            if (!has(k)) inserts++;
            c.set(k, k);
            lastUse.set(k, inserts);
          } else if (c.get(k) !== undefined) lastUse.set(k, inserts);
          expect(c.size).toBeLessThanOrEqual(max);
          const protectedWindow = max - (max >> 3);
          for (const [key, at] of lastUse) {
            if (inserts - at < protectedWindow) expect(has(key)).toBe(true);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
