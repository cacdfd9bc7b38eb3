// A lease write that failed for its caller but landed at the store (a frozen server runs it when it
// wakes, or the answer was lost) is released in the background, so no replica waits out its TTL.
// The background release retries on timers (after 100 ms, then doubling): these tests fake
// setTimeout (nothing here does I/O) and step through the attempts, so nothing sleeps.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createKeyValueStore, type Store } from '../../src/stores/store.js';
import { takeLease } from '../../src/tokens/lease.js';

/**
 * A store whose setIfAbsent fails for its caller; the write itself lands when the test calls
 * `land()`. `releases` counts the background release attempts (deleteIfOwner calls).
 */
function landsThenFails(base: Store): { store: Store; land: () => Promise<void>; readonly releases: number } {
  let releases = 0;
  let land: () => Promise<void> = () => Promise.reject(new Error('no write waiting'));
  const s = Object.create(base) as Store;
  s.setIfAbsent = async (key: string, value: unknown, ttl?: number) => {
    land = async () => void (await base.setIfAbsent(key, value, ttl)); // reaches the store after the caller gave up
    throw Object.assign(new Error('store timeout'), { code: 'STORE_UNAVAILABLE' });
  };
  s.deleteIfOwner = (key: string, owner: string) => {
    releases++;
    return base.deleteIfOwner(key, owner);
  };
  return {
    store: s,
    land: () => land(),
    get releases() {
      return releases;
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('takeLease', () => {
  it('a lease whose write failed but landed later is deleted again, long before its TTL', async () => {
    const base = createKeyValueStore(); // the in-memory store: no timers of its own (an emulated Keyv store settles leases on one)
    const late = landsThenFails(base);
    await expect(takeLease(late.store, 'lease:x', 'owner-1', 30_000)).rejects.toThrow('store timeout');
    expect(late.releases).toBe(0);
    await vi.advanceTimersByTimeAsync(100);
    expect(late.releases).toBe(1); // a release before the write landed: nothing to delete yet
    await late.land();
    expect(await base.get('lease:x')).toBe('owner-1'); // it landed
    await vi.advanceTimersByTimeAsync(199);
    expect(late.releases).toBe(1);
    expect(await base.get('lease:x')).toBe('owner-1');
    await vi.advanceTimersByTimeAsync(1); // the next attempt, 300 ms in (the TTL is 30 s)
    expect(late.releases).toBe(2);
    expect(await base.get('lease:x')).toBeUndefined();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(late.releases).toBe(2); // done: no more attempts
  });

  it('never deletes another owner\'s lease', async () => {
    const base = createKeyValueStore(); // the in-memory store: no timers of its own (an emulated Keyv store settles leases on one)
    let releases = 0;
    const failing = Object.create(base) as Store;
    failing.setIfAbsent = async () => Promise.reject(new Error('store timeout'));
    failing.deleteIfOwner = (key: string, owner: string) => {
      releases++;
      return base.deleteIfOwner(key, owner);
    };
    await base.setIfAbsent('lease:y', 'owner-2', 30_000);
    await expect(takeLease(failing, 'lease:y', 'owner-1', 30_000)).rejects.toThrow();
    await vi.advanceTimersByTimeAsync(100 + 200 + 400);
    expect(releases).toBe(3); // three release attempts made
    expect(await base.get('lease:y')).toBe('owner-2');
    expect(await takeLease(base, 'lease:y', 'owner-3', 30_000)).toBe(false);
  });
});
