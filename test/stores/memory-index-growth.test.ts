import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/stores/memory-store.js';

// Issue 13 (cost growth): n adds to one index (the approvals list holds every approval) must cost
// O(n) in all, not O(n²). Counted, not timed: the entries the store's sweeps walk over, read from
// Map.prototype[Symbol.iterator] (what `for … of` over the index calls).
const original = Map.prototype[Symbol.iterator];
afterEach(() => {
  Map.prototype[Symbol.iterator] = original;
});

describe('MemoryStore index growth', () => {
  it('adding n members to one index walks O(n) entries in all', async () => {
    const store = new MemoryStore();
    const n = 4000;
    let walked = 0;
    Map.prototype[Symbol.iterator] = function (this: Map<unknown, unknown>) {
      walked += this.size;
      return original.call(this);
    } as typeof original;
    for (let i = 0; i < n; i++) await store.indexAdd('agent-iam:v1:approval-list', `a${i}`, 60_000);
    Map.prototype[Symbol.iterator] = original;
    // a sweep on every add walks n²/2 = 8,000,000 entries; amortised sweeps about 2n
    expect(walked).toBeLessThan(4 * n);
    const members = await store.indexMembers('agent-iam:v1:approval-list');
    expect(members).toHaveLength(n);
    expect(members[0]).toBe('a0');
    expect(members[n - 1]).toBe(`a${n - 1}`);
  });
});
