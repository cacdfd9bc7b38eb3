// A lease write that failed for its caller but landed at the store (a frozen server runs it when it
// wakes, or the answer was lost) is released in the background, so no replica waits out its TTL.
import Keyv from 'keyv';
import { describe, expect, it } from 'vitest';
import { createKeyValueStore, type Store } from '../../src/stores/store.js';
import { takeLease } from '../../src/tokens/lease.js';

function landsThenFails(base: Store, delayMs: number): Store {
  const s = Object.create(base) as Store;
  s.setIfAbsent = async (key: string, value: unknown, ttl?: number) => {
    // The write reaches the store later than the caller gives up on it.
    setTimeout(() => void base.setIfAbsent(key, value, ttl), delayMs);
    throw Object.assign(new Error('store timeout'), { code: 'STORE_UNAVAILABLE' });
  };
  return s;
}

describe('takeLease', () => {
  it('a lease whose write failed but landed later is deleted again, long before its TTL', async () => {
    const base = createKeyValueStore(new Keyv());
    await expect(takeLease(landsThenFails(base, 150), 'lease:x', 'owner-1', 30_000)).rejects.toThrow('store timeout');
    await new Promise((r) => setTimeout(r, 250));
    expect(await base.get('lease:x')).toBe('owner-1'); // it landed
    for (let i = 0; i < 40 && (await base.get('lease:x')) !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await base.get('lease:x')).toBeUndefined();
  });

  it('never deletes another owner\'s lease', async () => {
    const base = createKeyValueStore(new Keyv());
    const failing = Object.create(base) as Store;
    failing.setIfAbsent = async () => Promise.reject(new Error('store timeout'));
    await base.setIfAbsent('lease:y', 'owner-2', 30_000);
    await expect(takeLease(failing, 'lease:y', 'owner-1', 30_000)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 800));
    expect(await base.get('lease:y')).toBe('owner-2');
    expect(await takeLease(base, 'lease:y', 'owner-3', 30_000)).toBe(false);
  });
});
