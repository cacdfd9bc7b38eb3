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

  it('never holds more than max entries, and an entry is never evicted while fewer than max - max/8 other keys were used after it', () => {
    // Why that bound: a hit moves its entry unless at most max/8 insertions or moves happened since it
    // last moved, and evicting it takes max keys moved or inserted after that point; at most max/8 of
    // them can come before the hit, so at least max - max/8 distinct keys were used after it.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 })), { maxLength: 600 }), (max, ops) => {
        const c = new LruCache<number, number>(max);
        const uses: number[] = []; // keys in the order they were used (set, or get that hit)
        const lastUse = new Map<number, number>(); // key -> index of its last use in uses
        const has = (k: number) => [...c.keys()].includes(k); // looks without counting as a use
        const protectedWindow = max - (max >> 3);
        for (const [isSet, k] of ops) {
          if (isSet) c.set(k, k);
          else if (c.get(k) === undefined) continue;
          lastUse.set(k, uses.length);
          uses.push(k);
          expect(c.size).toBeLessThanOrEqual(max);
          for (const [key, at] of lastUse) {
            const others = new Set(uses.slice(at + 1).filter((u) => u !== key)).size;
            if (others < protectedWindow) expect(has(key), `key ${key}`).toBe(true);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
