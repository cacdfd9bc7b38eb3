import Keyv from 'keyv';
import { describe, expect, it, vi } from 'vitest';
import { connectionPresets, createTokenManager } from '../../src/index.js';
import { expectCode } from './helpers.js';

const creds = { clientId: 'client-id', clientSecret: 'client-secret-value', redirectUri: 'https://app.example.com/cb' };

describe('connection presets', () => {
  it('build authorization URLs with each provider’s real endpoint and quirks (no network needed)', async () => {
    const tokens = createTokenManager({
      connections: [
        { id: 'github', ...connectionPresets.github(), ...creds, scopes: ['repo', 'read:org'] },
        { id: 'gitlab', ...connectionPresets.gitlab(), ...creds },
        { id: 'google', ...connectionPresets.google(), ...creds, scopes: ['openid', 'email'] },
        { id: 'microsoft', ...connectionPresets.microsoft({ tenant: 'contoso.onmicrosoft.com' }), ...creds, resource: 'https://graph.microsoft.com', scopes: ['offline_access', 'User.Read'] },
        { id: 'slack', ...connectionPresets.slack(), ...creds, scopes: ['channels:read', 'chat:write'] },
        { id: 'atlassian', ...connectionPresets.atlassian(), ...creds },
        { id: 'notion', ...connectionPresets.notion(), ...creds },
        { id: 'linear', ...connectionPresets.linear(), ...creds, scopes: ['read', 'write'] },
        { id: 'salesforce', ...connectionPresets.salesforce({ domain: 'test' }), ...creds },
        { id: 'dropbox', ...connectionPresets.dropbox(), ...creds },
      ],
    });
    const url = async (connection: string) => new URL((await tokens.startAuthorization({ connection, userId: 'u' })).url);
    expect((await url('github')).href).toMatch(/^https:\/\/github\.com\/login\/oauth\/authorize\?/);
    expect((await url('github')).searchParams.get('scope')).toBe('repo read:org');
    expect((await url('gitlab')).origin).toBe('https://gitlab.com');
    const g = await url('google');
    expect(g.searchParams.get('access_type')).toBe('offline');
    expect(g.searchParams.get('code_challenge_method')).toBe('S256');
    const m = await url('microsoft');
    expect(m.pathname).toBe('/contoso.onmicrosoft.com/oauth2/v2.0/authorize');
    expect(m.searchParams.has('resource')).toBe(false); // Entra rejects RFC 8707 resource
    expect((await url('slack')).searchParams.get('scope')).toBe('channels:read,chat:write');
    expect((await url('atlassian')).searchParams.get('audience')).toBe('api.atlassian.com');
    expect((await url('notion')).searchParams.get('owner')).toBe('user');
    expect((await url('linear')).searchParams.get('scope')).toBe('read,write');
    expect((await url('salesforce')).origin).toBe('https://test.salesforce.com');
    expect((await url('dropbox')).searchParams.get('token_access_type')).toBe('offline');
  });

  it('extra authorization parameters cannot override PKCE, state or redirect_uri', async () => {
    const tokens = createTokenManager({
      connections: [{ id: 'x', ...connectionPresets.github(), ...creds, authorizationParams: { state: 'fixed', code_challenge_method: 'plain', redirect_uri: 'https://evil.example.com', prompt: 'consent' } }],
    });
    const { url, state } = await tokens.startAuthorization({ connection: 'x', userId: 'u' });
    const u = new URL(url);
    expect(u.searchParams.get('state')).toBe(state);
    expect(state).not.toBe('fixed');
    expect(u.searchParams.get('code_challenge_method')).toBe('S256');
    expect(u.searchParams.get('redirect_uri')).toBe(creds.redirectUri);
    expect(u.searchParams.get('prompt')).toBe('consent');
  });
});

describe('options and inputs', () => {
  it('a hanging store gives STORE_UNAVAILABLE within storeTimeoutMs', async () => {
    let asked = 0; // calls that reached the store (and hang there)
    const hang = (): Promise<never> => (asked++, new Promise(() => {}));
    const hanging = new Keyv({ store: { get: hang, set: hang, delete: hang, clear: async () => {}, on() { return this; } } as never });
    const tokens = createTokenManager({ store: hanging, storeTimeoutMs: 100, connections: [{ id: 'github', ...connectionPresets.github(), ...creds }] });
    // The timeout is a timer: with fake timers (this test only; no request leaves) each call ends
    // exactly when storeTimeoutMs runs out, not before.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      for (const call of [() => tokens.getAccessToken({ connection: 'github', userId: 'u' }), () => tokens.startAuthorization({ connection: 'github', userId: 'u' })] as Array<() => Promise<unknown>>) {
        let settled = false;
        const before = asked;
        const outcome = expectCode(call(), 'STORE_UNAVAILABLE').finally(() => void (settled = true));
        // Until the call reaches the store (after real async work such as the PKCE hash), no timer runs.
        while (asked === before) await new Promise((r) => setImmediate(r));
        await vi.advanceTimersByTimeAsync(99);
        expect(settled).toBe(false);
        await vi.advanceTimersByTimeAsync(1);
        expect(settled).toBe(true);
        await outcome;
      }
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses unknown connections, bad user ids, API keys with control characters, and exchange without a subject', async () => {
    const tokens = createTokenManager({ connections: [{ id: 'github', ...connectionPresets.github(), ...creds }, { id: 'kaggle', kind: 'apiKey' }] });
    await expectCode(tokens.getAccessToken({ connection: 'nope', userId: 'u' }), 'REQUEST_INVALID');
    await expectCode(tokens.getAccessToken({ connection: 'github', userId: 'bad\nid' }), 'REQUEST_INVALID');
    await expectCode(tokens.setApiKey({ connection: 'kaggle', userId: 'u', key: 'abc\r\ndef' }), 'REQUEST_INVALID');
    await expectCode(tokens.startAuthorization({ connection: 'kaggle', userId: 'u' }), 'REQUEST_INVALID');
    await expectCode(tokens.exchange({ connection: 'github', scopes: ['repo'] }), 'TOKEN_MISSING');
    const missing = await expectCode(tokens.getAccessToken({ connection: 'kaggle', userId: 'u' }), 'CONSENT_REQUIRED');
    expect(missing.authorizationUrl).toBeUndefined();
    await tokens.setApiKey({ connection: 'kaggle', userId: 'u', key: 'kgl_key_123456' });
    expect(await tokens.getAccessToken({ connection: 'kaggle', userId: 'u' })).toMatchObject({ accessToken: 'kgl_key_123456', tokenType: 'api_key' });
    expect(JSON.stringify(await tokens.getAccount({ connection: 'kaggle', userId: 'u' }))).not.toContain('kgl_key');
  });

  it('keeps ids that only differ in separators apart', async () => {
    const tokens = createTokenManager({ connections: [{ id: 'a:b', kind: 'apiKey' }, { id: 'a', kind: 'apiKey' }] });
    await tokens.setApiKey({ connection: 'a:b', userId: 'c', key: 'key-one' });
    await tokens.setApiKey({ connection: 'a', userId: 'b:c', key: 'key-two' });
    expect((await tokens.getAccessToken({ connection: 'a:b', userId: 'c' })).accessToken).toBe('key-one');
    expect((await tokens.getAccessToken({ connection: 'a', userId: 'b:c' })).accessToken).toBe('key-two');
    // users from two identity providers, qualified by issuer
    await tokens.setApiKey({ connection: 'a', userId: 'https://idp-one.example|42', key: 'k1' });
    await expectCode(tokens.getAccessToken({ connection: 'a', userId: 'https://idp-two.example|42' }), 'CONSENT_REQUIRED');
  });
});

describe('provider quirks on the wire', () => {
  it('maps GitHub-style HTTP 200 error bodies (bad_refresh_token) to invalid_grant → CONSENT_REQUIRED, without leaking', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const p = new URLSearchParams(body);
        res.setHeader('content-type', 'application/json');
        if (p.get('grant_type') === 'authorization_code') {
          res.end(JSON.stringify({ access_token: 'gho_firsttoken000', token_type: 'bearer', refresh_token: 'ghr_refresh0000000', expires_in: 1, scope: 'repo' }));
        } else {
          res.end(JSON.stringify({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired: ghr_refresh0000000' }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const tokens = createTokenManager({
        refreshSkewSeconds: 3600,
        connections: [{ id: 'gh', authorizationEndpoint: `${origin}/login/oauth/authorize`, tokenEndpoint: `${origin}/login/oauth/access_token`, ...creds, redirectUri: `${origin}/cb` }],
      });
      const { state } = await tokens.startAuthorization({ connection: 'gh', userId: 'u' });
      const account = await tokens.completeAuthorization(`${origin}/cb?code=abc&state=${state}`);
      expect(account.scopes).toEqual(['repo']);
      const e = await expectCode(tokens.getAccessToken({ connection: 'gh', userId: 'u' }), 'CONSENT_REQUIRED');
      expect(JSON.stringify(e) + String(e) + e.message).not.toMatch(/gho_|ghr_/);
      expect((await tokens.getAccount({ connection: 'gh', userId: 'u' }))?.status).toBe('needs_consent');
    } finally {
      server.close();
    }
  });
});
