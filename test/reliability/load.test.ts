/**
 * A small version of bench/load-toolfetch.ts that CI asserts: 1,000 toolFetch calls, 100 in flight,
 * across 100 users of a per-user oauth2 tool whose access tokens expire during the run.
 */
import { describe, expect, it } from 'vitest';
import { runToolFetchLoad } from './load-harness.js';

describe('toolFetch under load with expiring per-user tokens', () => {
  it('1,000 calls across 100 users: no wrong-user token, no failure, one refresh per account per expiry', async () => {
    const r = await runToolFetchLoad({
      users: 100,
      calls: 1000,
      concurrency: 100,
      accessTokenTtl: 4,
      refreshSkewSeconds: 3, // refreshed 1 s after issue; IdP expires_in is whole seconds: ≥ 2 s left at use
      minDurationMs: 2500, // token usable 1 s: every account expires at least once while traffic flows
    });
    console.log(`[load] ${JSON.stringify(r)}`);
    expect(r.wrongUser).toBe(0);
    expect(r.invalidToken).toBe(0);
    expect(r.errors).toEqual({});
    expect(r.upstreamRefused).toEqual({});
    expect(r.ok).toBe(1000);
    // every refresh the IdP answered served traffic: no account was refreshed twice for one expiry
    expect(r.refreshes).toBe(r.usedRefreshes);
    expect(r.refreshes).toBeGreaterThanOrEqual(100);
    expect(r.refreshes).toBeLessThanOrEqual(r.maxExpectedRefreshes);
    expect(r.sentExpired).toBe(0);
    // tokens really expired mid-run: accounts refreshed more than once while the calls went on
    expect(r.usersRefreshedTwice).toBeGreaterThan(50);
  }, 60_000);
});
