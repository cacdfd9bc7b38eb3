import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoSecret, connect, expectCode, manager, startIdp, type Setup } from './helpers.js';

let s: Setup;
beforeAll(async () => {
  // 65 s tokens with a 60 s skew: every token is "near expiry" after ~5 s; tests use a larger skew to force refresh.
  s = await startIdp({ accessTokenTtl: 120 });
});
afterAll(async () => {
  await s?.idp.close();
});

const ALWAYS_REFRESH = 3600; // skew larger than the token lifetime: every getAccessToken refreshes

describe('refresh', () => {
  it('refreshes near expiry with rotation, storing the new refresh token', async () => {
    const events: Array<{ type: string; decision: string }> = [];
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0, audit: (e) => void events.push(e) });
    await connect(tokens, s.idp, 'alice');
    s.idp.resetStats();
    const t1 = await tokens.getAccessToken({ connection: 'corp', userId: 'alice' });
    const t2 = await tokens.getAccessToken({ connection: 'corp', userId: 'alice' });
    expect(t1.accessToken).not.toBe(t2.accessToken);
    expect(s.idp.stats.token.refresh_token).toBe(2); // the second used the rotated refresh token (reuse would revoke the grant)
    expect(events.filter((e) => e.type === 'token.refresh' && e.decision === 'allow')).toHaveLength(2);
  });

  it('500 concurrent getAccessToken calls on an expiring account make exactly one refresh', async () => {
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH });
    await connect(tokens, s.idp, 'bob');
    // A second manager on the same store would share; here one manager, 500 callers.
    s.idp.resetStats();
    const results = await Promise.all(Array.from({ length: 500 }, () => tokens.getAccessToken({ connection: 'corp', userId: 'bob' })));
    expect(s.idp.stats.token.refresh_token).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
  });

  it('5xx and slow token endpoints: TOKEN_ENDPOINT_UNAVAILABLE, account untouched and usable after recovery', async () => {
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0, timeoutMs: 800, retries: 2 });
    await connect(tokens, s.idp, 'carol');
    s.idp.resetStats();
    s.idp.setFault({ kind: '5xx', grantType: 'refresh_token' });
    await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'carol' }), 'TOKEN_ENDPOINT_UNAVAILABLE');
    expect(s.idp.stats.token.refresh_token).toBe(3); // 1 + 2 retries
    expect((await tokens.getAccount({ connection: 'corp', userId: 'carol' }))?.status).toBe('active');
    s.idp.setFault(null);
    const t = await tokens.getAccessToken({ connection: 'corp', userId: 'carol' });
    expect(t.accessToken).toBeTruthy();
  });

  it('a token endpoint hanging past the timeout: TOKEN_ENDPOINT_UNAVAILABLE in bounded time, usable after recovery', async () => {
    // Without rotation, so that the request the server finishes after we gave up does not consume the refresh token.
    const n = await startIdp({ refreshTokenRotation: false });
    try {
      const tokens = manager(n, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0, timeoutMs: 600, retries: 2 });
      await connect(tokens, n.idp, 'carol');
      n.idp.setFault({ kind: 'slow', delayMs: 1500, grantType: 'refresh_token' });
      const before = n.idp.stats.token.refresh_token ?? 0;
      await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'carol' }), 'TOKEN_ENDPOINT_UNAVAILABLE');
      // Bounded by one timeout, retries included: the first attempt used it all up, so none of the 2
      // retries was sent. (The elapsed time under load is measured in test/reliability.)
      expect((n.idp.stats.token.refresh_token ?? 0) - before).toBe(1);
      expect((await tokens.getAccount({ connection: 'corp', userId: 'carol' }))?.status).toBe('active');
      n.idp.setFault(null);
      const t = await tokens.getAccessToken({ connection: 'corp', userId: 'carol' });
      expect(t.accessToken).toBeTruthy();
    } finally {
      await n.idp.close();
    }
  });

  it('a transient 5xx followed by recovery succeeds within the retries', async () => {
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0, timeoutMs: 3000, retries: 2 });
    await connect(tokens, s.idp, 'dora');
    s.idp.setFault({ kind: '5xx', grantType: 'refresh_token', times: 1 });
    const t = await tokens.getAccessToken({ connection: 'corp', userId: 'dora' });
    expect(t.accessToken).toBeTruthy();
  });

  it('invalid_grant marks the account needs_consent and throws CONSENT_REQUIRED with a fresh authorization URL', async () => {
    const events: Array<{ type: string }> = [];
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0, audit: (e) => void events.push(e) });
    await connect(tokens, s.idp, 'erin');
    s.idp.setFault({ kind: 'invalid_grant', grantType: 'refresh_token', times: 1 });
    const err = await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'erin' }), 'CONSENT_REQUIRED');
    expect(err.authorizationUrl).toMatch(new RegExp(`^${s.idp.issuer}/`));
    expect((await tokens.getAccount({ connection: 'corp', userId: 'erin' }))?.status).toBe('needs_consent');
    expect(events.map((e) => e.type)).toContain('consent.required');
    // Reconnecting makes it usable again.
    await tokens.completeAuthorization(await s.idp.authorize(err.authorizationUrl as string, { userId: 'erin' }));
    expect((await tokens.getAccount({ connection: 'corp', userId: 'erin' }))?.status).toBe('active');
  });

  it('one user failing refresh does not fail another', async () => {
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0 });
    await connect(tokens, s.idp, 'u1');
    await connect(tokens, s.idp, 'u2');
    s.idp.setFault({ kind: 'invalid_grant', grantType: 'refresh_token', times: 1 });
    const [a, b] = await Promise.allSettled([
      tokens.getAccessToken({ connection: 'corp', userId: 'u1' }),
      new Promise((r) => setTimeout(r, 50)).then(() => tokens.getAccessToken({ connection: 'corp', userId: 'u2' })),
    ]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('fulfilled');
  });

  it('no secret in any error', async () => {
    const tokens = manager(s, { refreshSkewSeconds: ALWAYS_REFRESH, cacheSize: 0, timeoutMs: 500, retries: 0 });
    await connect(tokens, s.idp, 'zed');
    const good = await manager(s).getAccessToken({ connection: 'corp', userId: 'zed' }).catch(() => undefined);
    expect(good).toBeUndefined(); // other store: no account
    s.idp.setFault({ kind: 'invalid_client', grantType: 'refresh_token', times: 1 });
    const err = await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'zed' }), 'OAUTH_ERROR');
    expect(err.oauthError).toBe('invalid_client');
    assertNoSecret(err, [s.clientSecret]);
  });
  it('invalid_grant first re-reads the store: a token another process just stored is used, nothing is marked', async () => {
    const store = new Keyv();
    const other = manager(s, { store }); // "another process" sharing the store
    let injected = false;
    const tokens = manager(s, {
      store,
      refreshSkewSeconds: ALWAYS_REFRESH,
      cacheSize: 0,
      fetch: async (input, init) => {
        const body = init?.body instanceof URLSearchParams ? init.body : undefined;
        if (!injected && body?.get('grant_type') === 'refresh_token') {
          injected = true;
          // Meanwhile the other process stores a newer account (new generation), and the server
          // refuses our (now stale) refresh token.
          const { url } = await other.startAuthorization({ connection: 'corp', userId: 'gus' });
          await other.completeAuthorization(await s.idp.authorize(url, { userId: 'gus' }));
          s.idp.setFault({ kind: 'invalid_grant', grantType: 'refresh_token', times: 1 });
        }
        return fetch(input, init);
      },
    });
    await connect(tokens, s.idp, 'gus');
    const t = await tokens.getAccessToken({ connection: 'corp', userId: 'gus' });
    expect(injected).toBe(true);
    expect(t.accessToken).toBeTruthy();
    expect((await tokens.getAccount({ connection: 'corp', userId: 'gus' }))?.status).toBe('active');
  });
});
