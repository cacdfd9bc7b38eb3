import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testClock } from '../helpers/clock.js';
import { connect, expectCode, manager, REDIRECT, startIdp, type Setup, assertNoSecret } from './helpers.js';

let s: Setup;
beforeAll(async () => {
  s = await startIdp();
});
afterAll(async () => {
  await s?.idp.close();
});

describe('authorization code + PKCE', () => {
  it('runs the whole flow against a real oidc-provider and stores an account without exposing tokens', async () => {
    const events: Array<{ type: string }> = [];
    const tokens = manager(s, { audit: (e) => void events.push(e) });
    const { url, state } = await tokens.startAuthorization({ connection: 'corp', userId: 'alice' });
    const u = new URL(url);
    expect(u.origin).toBe(s.idp.issuer);
    expect(u.searchParams.get('code_challenge_method')).toBe('S256');
    expect(u.searchParams.get('state')).toBe(state);
    expect(u.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const callback = await s.idp.authorize(url, { userId: 'alice' });
    expect(new URL(callback).searchParams.get('iss')).toBe(s.idp.issuer);
    const account = await tokens.completeAuthorization(callback);
    expect(account).toMatchObject({ connection: 'corp', userId: 'alice', status: 'active', kind: 'oauth2' });
    expect(JSON.stringify(account)).not.toMatch(/token/i);
    const t = await tokens.getAccessToken({ connection: 'corp', userId: 'alice' });
    expect(t.accessToken.length).toBeGreaterThan(10);
    expect(t.tokenType).toBe('bearer');
    const fetched = await tokens.getAccount({ connection: 'corp', userId: 'alice' });
    expect(JSON.stringify(fetched)).not.toContain(t.accessToken);
    expect(await tokens.listAccounts('alice')).toHaveLength(1);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['consent.complete', 'token.issue']));
  });

  it('refuses a replayed callback without sending anything', async () => {
    const tokens = manager(s);
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'bob' });
    const callback = await s.idp.authorize(url, { userId: 'bob' });
    await tokens.completeAuthorization(callback);
    const before = s.idp.stats.token.authorization_code ?? 0;
    const err = await expectCode(tokens.completeAuthorization(callback), 'OAUTH_STATE_MISMATCH');
    assertNoSecret(err, [new URL(callback).searchParams.get('code') as string]);
    expect(s.idp.stats.token.authorization_code ?? 0).toBe(before);
  });

  it('with expectedUserId, refuses a callback presented by another user and spends the state (session binding)', async () => {
    const tokens = manager(s);
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'victim' });
    const callback = await s.idp.authorize(url, { userId: 'victim' });
    const before = s.idp.stats.token.authorization_code ?? 0;
    const err = await expectCode(tokens.completeAuthorization(callback, { expectedUserId: 'attacker' }), 'OAUTH_STATE_MISMATCH');
    expect(err.status).toBe(403);
    assertNoSecret(err, [new URL(callback).searchParams.get('code') as string]);
    expect(s.idp.stats.token.authorization_code ?? 0).toBe(before);
    await expectCode(tokens.completeAuthorization(callback, { expectedUserId: 'victim' }), 'OAUTH_STATE_MISMATCH');
    expect(await tokens.getAccount({ connection: 'corp', userId: 'victim' })).toBeUndefined();
    expect(await tokens.getAccount({ connection: 'corp', userId: 'attacker' })).toBeUndefined();
  });

  it('refuses an unknown state, a missing state and an expired state', async () => {
    const clock = testClock(); // the token manager's clock (state expiry); the IdP keeps real time
    const tokens = manager(s, { stateTtlSeconds: 1 });
    await expectCode(tokens.completeAuthorization(`${REDIRECT}?code=abc&state=nope`), 'OAUTH_STATE_MISMATCH');
    await expectCode(tokens.completeAuthorization(`${REDIRECT}?code=abc`), 'OAUTH_STATE_MISMATCH');
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'carol' });
    const callback = await s.idp.authorize(url, { userId: 'carol' });
    clock.advance(1100);
    const before = s.idp.stats.token.authorization_code ?? 0;
    await expectCode(tokens.completeAuthorization(callback), 'OAUTH_STATE_MISMATCH');
    expect(s.idp.stats.token.authorization_code ?? 0).toBe(before);
  });

  it('refuses a state started for another token manager store (state is bound to the store, user and connection)', async () => {
    const a = manager(s);
    const b = manager(s);
    const { url } = await a.startAuthorization({ connection: 'corp', userId: 'dave' });
    const callback = await s.idp.authorize(url, { userId: 'dave' });
    await expectCode(b.completeAuthorization(callback), 'OAUTH_STATE_MISMATCH');
    const account = await a.completeAuthorization(callback);
    expect(account.userId).toBe('dave');
  });

  it('an error callback gives OAUTH_ERROR with oauthError and no token request', async () => {
    const tokens = manager(s);
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'erin' });
    const callback = await s.idp.authorize(url, { userId: 'erin', deny: true });
    const before = s.idp.stats.token.authorization_code ?? 0;
    const err = await expectCode(tokens.completeAuthorization(callback), 'OAUTH_ERROR');
    expect(err.oauthError).toBe('access_denied');
    expect(s.idp.stats.token.authorization_code ?? 0).toBe(before);
    expect(await tokens.getAccount({ connection: 'corp', userId: 'erin' })).toBeUndefined();
  });

  it('a callback with tokens and no code is refused', async () => {
    const tokens = manager(s);
    const { state } = await tokens.startAuthorization({ connection: 'corp', userId: 'frank' });
    const err = await expectCode(
      tokens.completeAuthorization(`${REDIRECT}?state=${state}&access_token=leakyaccesstoken123&token_type=bearer&iss=${encodeURIComponent(s.idp.issuer)}`),
      'OAUTH_ERROR',
    );
    assertNoSecret(err, ['leakyaccesstoken123']);
    expect(await tokens.getAccount({ connection: 'corp', userId: 'frank' })).toBeUndefined();
  });

  it('checks iss (RFC 9207): a callback naming another issuer is refused and leaks no code', async () => {
    const tokens = manager(s);
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'gina' });
    const callback = new URL(await s.idp.authorize(url, { userId: 'gina' }));
    const code = callback.searchParams.get('code') as string;
    callback.searchParams.set('iss', 'https://evil.example.com');
    const before = s.idp.stats.token.authorization_code ?? 0;
    const err = await expectCode(tokens.completeAuthorization(callback), 'OAUTH_ERROR');
    assertNoSecret(err, [code]);
    expect(s.idp.stats.token.authorization_code ?? 0).toBe(before);
  });

  it('a callback at another path than the redirect URI is refused', async () => {
    const tokens = manager(s);
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'hank' });
    const callback = new URL(await s.idp.authorize(url, { userId: 'hank' }));
    callback.pathname = '/other';
    await expectCode(tokens.completeAuthorization(callback), 'OAUTH_STATE_MISMATCH');
  });

  it('accounts for an organisation are used when the user has none', async () => {
    const tokens = manager(s);
    await connect(tokens, s.idp, 'admin', 'corp', 'acme');
    expect(await tokens.getAccount({ connection: 'corp', userId: 'admin' })).toBeUndefined();
    expect((await tokens.getAccount({ connection: 'corp', orgId: 'acme' }))?.orgId).toBe('acme');
    const t = await tokens.getAccessToken({ connection: 'corp', userId: 'nobody', orgId: 'acme' });
    expect(t.accessToken).toBeTruthy();
    const err = await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'nobody' }), 'CONSENT_REQUIRED');
    expect(err.authorizationUrl).toContain(s.idp.issuer);
    expect(await tokens.listAccounts({ orgId: 'acme' })).toHaveLength(1);
  });
});
