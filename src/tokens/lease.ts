/**
 * Internal: taking a lease (a refresh, a registration) on the shared store. A lease write that fails
 * (the store timed out, the connection dropped) may still land later: a frozen server runs what it
 * was sent when it wakes. Such a lease has no holder, and every replica would wait out its TTL; so a
 * failed take is followed by a background release, retried with backoff until it succeeds or the TTL
 * has passed. Owners are unique, so the release can only ever delete this caller's own lease.
 *
 * @module
 */
import type { Store } from '../stores/store.js';
import { nowMs } from '../lib/clock.js';

export async function takeLease(store: Store, key: string, owner: string, ttlMs: number): Promise<boolean> {
  try {
    return await store.setIfAbsent(key, owner, ttlMs);
  } catch (e) {
    releaseLater(store, key, owner, ttlMs);
    throw e;
  }
}

function releaseLater(store: Store, key: string, owner: string, ttlMs: number): void {
  const until = nowMs() + ttlMs;
  let wait = 100;
  const schedule = (): void => {
    if (nowMs() + wait > until) return;
    const t = setTimeout(attempt, wait);
    (t as { unref?: () => void }).unref?.();
    wait = Math.min(wait * 2, 2000);
  };
  // Not there yet (false) may mean "not landed yet": keep trying until the TTL would have ended it.
  const attempt = (): void => {
    store.deleteIfOwner(key, owner).then((done) => (done ? undefined : schedule()), schedule);
  };
  schedule();
}
