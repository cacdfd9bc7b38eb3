import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { decodeJwt } from 'jose';
import { createTestContext, type AgentContext } from '../../src/context.js';
import { testClock } from '../helpers/clock.js';
import { assertNoSecret, expectCode, manager, REDIRECT, startIdp, type Setup } from './helpers.js';

const API = 'https://api.example.com';
const SHORT = 'https://short.example.com';
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
let s: Setup;
beforeAll(async () => {
  s = await startIdp(
    { resources: { [API]: { scopes: ['read', 'write', 'admin'] } } },
    { grant_types: ['authorization_code', 'refresh_token', 'client_credentials', TE], response_types: ['code'], redirect_uris: [REDIRECT] },
  );
});
afterAll(async () => {
  await s?.idp.close();
});

function contextFor(token: string, scopes: string[]): AgentContext {
  return createTestContext({ userId: 'alice', issuer: s.idp.issuer, scopes, token, requestId: 'r1' });
}

describe('client credentials', () => {
  it('caches per scope set and resource, single flight, never reusing a token across scope sets', async () => {
    const events: Array<{ type: string }> = [];
    const tokens = manager(s, { audit: (e) => void events.push(e) }, { resource: API });
    s.idp.resetStats();
    const many = await Promise.all(Array.from({ length: 50 }, () => tokens.clientCredentials({ connection: 'corp', scopes: ['read'] })));
    expect(s.idp.stats.token.client_credentials).toBe(1);
    expect(new Set(many.map((t) => t.accessToken)).size).toBe(1);
    const claims = decodeJwt(many[0]!.accessToken);
    expect(claims.aud).toBe(API);
    expect(claims.scope).toBe('read');
    // Same set in another order: cached.
    await tokens.clientCredentials({ connection: 'corp', scopes: ['read'] });
    expect(s.idp.stats.token.client_credentials).toBe(1);
    const rw = await tokens.clientCredentials({ connection: 'corp', scopes: ['write', 'read'] });
    const wr = await tokens.clientCredentials({ connection: 'corp', scopes: ['read', 'write'] });
    expect(rw.accessToken).toBe(wr.accessToken);
    expect(rw.accessToken).not.toBe(many[0]!.accessToken);
    expect(s.idp.stats.token.client_credentials).toBe(2);
    expect(decodeJwt(rw.accessToken).scope).toBe('read write');
    expect(events.filter((e) => e.type === 'token.issue')).toHaveLength(2);
  });

  it('refetches shortly before expiry (skew capped at half the lifetime)', async () => {
    const short = await startIdp({ accessTokenTtl: 2, resources: { [SHORT]: { scopes: ['admin'] } } }, { grant_types: ['client_credentials'], response_types: [] });
    onTestFinished(() => short.idp.close());
    const tokens = manager(short, { refreshSkewSeconds: 3600 }, { resource: SHORT });
    const s = short;
    const clock = testClock(); // the token manager's clock; the IdP keeps real time
    const a = await tokens.clientCredentials({ connection: 'corp', scopes: ['admin'] });
    await tokens.clientCredentials({ connection: 'corp', scopes: ['admin'] });
    expect(s.idp.stats.token.client_credentials).toBe(1);
    clock.advance(999); // a 2 s token, refetched 1 s (half its lifetime) before expiry: not yet
    await tokens.clientCredentials({ connection: 'corp', scopes: ['admin'] });
    expect(s.idp.stats.token.client_credentials).toBe(1);
    clock.advance(101);
    const b = await tokens.clientCredentials({ connection: 'corp', scopes: ['admin'] });
    expect(s.idp.stats.token.client_credentials).toBe(2);
    expect(b.accessToken).not.toBe(a.accessToken);
  });
});

describe('token exchange (RFC 8693)', () => {
  it('exchanges a subject token for a narrower one, from a verified context', async () => {
    const tokens = manager(s);
    const subject = await s.idp.tokenFor({ userId: 'alice', scopes: ['read', 'write'], audience: 'agent' });
    const events: Array<{ type: string }> = [];
    const t = await manager(s, { audit: (e) => void events.push(e) }).exchange({ connection: 'corp', context: contextFor(subject, ['read', 'write']), audience: API, scopes: ['read'] });
    const claims = decodeJwt(t.accessToken);
    expect(claims.sub).toBe('alice');
    expect(claims.scope).toBe('read');
    expect(claims.aud).toBe(API);
    expect((claims.act as { sub?: string })?.sub).toBeTruthy();
    expect(t.scopes).toEqual(['read']);
    expect(events.map((e) => e.type)).toContain('token.exchange');
    void tokens;
  });

  it('SCOPE_ESCALATION before any request when asking for scopes the subject does not hold', async () => {
    const tokens = manager(s);
    const subject = await s.idp.tokenFor({ userId: 'alice', scopes: ['read'], audience: 'agent' });
    s.idp.resetStats();
    const err = await expectCode(tokens.exchange({ connection: 'corp', subjectToken: subject, audience: API, scopes: ['read', 'admin'] }), 'SCOPE_ESCALATION');
    expect(err.scopes).toEqual(['admin']);
    await expectCode(tokens.exchange({ connection: 'corp', context: contextFor(subject, ['read']), audience: API, scopes: ['write'] }), 'SCOPE_ESCALATION');
    await expectCode(tokens.exchange({ connection: 'corp', subjectToken: 'opaque-token-value', audience: API, scopes: ['read'] }), 'SCOPE_ESCALATION');
    expect(s.idp.stats.token[TE] ?? 0).toBe(0);
    assertNoSecret(err, [subject]);
  });
});

describe('refusing bad token-exchange answers', () => {
  it('refuses an answer without issued_token_type and one with scopes beyond those asked', async () => {
    const { createServer } = await import('node:http');
    let answer: Record<string, unknown> = {};
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const { createTokenManager } = await import('../../src/index.js');
      const tokens = createTokenManager({ connections: [{ id: 'x', tokenEndpoint: `http://127.0.0.1:${port}/token`, clientId: 'c', clientSecret: 'secret-value' }] });
      const subject = await s.idp.tokenFor({ userId: 'alice', scopes: ['read', 'write'] });
      answer = { access_token: 'issued-token-value', token_type: 'Bearer', expires_in: 60 };
      const e1 = await expectCode(tokens.exchange({ connection: 'x', subjectToken: subject, scopes: ['read'] }), 'OAUTH_ERROR');
      assertNoSecret(e1, ['issued-token-value', subject]);
      answer = { access_token: 'issued-token-value', token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'read write' };
      const e2 = await expectCode(tokens.exchange({ connection: 'x', subjectToken: subject, scopes: ['read'] }), 'SCOPE_ESCALATION');
      assertNoSecret(e2, ['issued-token-value', subject]);
      answer = { access_token: 'issued-token-value', token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'read' };
      expect((await tokens.exchange({ connection: 'x', subjectToken: subject, scopes: ['read'] })).accessToken).toBe('issued-token-value');
      // an unsupported token_type: oauth4webapi's error would serialise the tokens; ours must not.
      answer = { access_token: 'issued-token-value', refresh_token: 'refresh-token-value', token_type: 'mac', issued_token_type: 'x' };
      const e3 = await expectCode(tokens.exchange({ connection: 'x', subjectToken: subject, scopes: ['read'] }), 'OAUTH_ERROR');
      assertNoSecret(e3, ['issued-token-value', 'refresh-token-value', subject]);
    } finally {
      server.close();
    }
  });
});

describe('token exchange: the issued token is for the audience asked', () => {
  it('a JWT whose aud names none of the audience or resource asked for is refused; an opaque token, an aud-less JWT or an aud that includes it passes', async () => {
    const { createServer } = await import('node:http');
    let issued = '';
    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: issued, token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', expires_in: 60 }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    // An unsigned JWT is enough: the SDK only reads the answer's claims to refuse it.
    const jwt = (payload: Record<string, unknown>): string => `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60, ...payload })).toString('base64url')}.sig`;
    try {
      const { createTokenManager } = await import('../../src/index.js');
      const tokens = createTokenManager({ exchangeCache: false, connections: [{ id: 'x', tokenEndpoint: `http://127.0.0.1:${port}/token`, clientId: 'c', clientSecret: 'secret-value' }] });
      const subject = await s.idp.tokenFor({ userId: 'alice', scopes: ['read'] });
      const ask = (o: { audience?: string; resource?: string } = { audience: API }) => tokens.exchange({ connection: 'x', subjectToken: subject, scopes: ['read'], ...o });
      for (const aud of ['https://other.example.com', ['https://other.example.com', 'https://third.example.com'], [], 42]) {
        issued = jwt({ aud });
        const e = await expectCode(ask(), 'OAUTH_ERROR');
        expect(e.oauthError).toBe('invalid_response');
        assertNoSecret(e, [issued, subject]);
      }
      issued = jwt({ aud: 'https://other.example.com' });
      await expectCode(ask({ resource: API }), 'OAUTH_ERROR');
      for (const aud of [API, `${API}/`, [API, 'https://tenant.example.com/userinfo'], undefined]) {
        issued = jwt({ aud });
        expect((await ask()).accessToken).toBe(issued);
        expect((await ask({ resource: API })).accessToken).toBe(issued);
      }
      issued = 'opaque-issued-token';
      expect((await ask()).accessToken).toBe('opaque-issued-token');
      // nothing asked: nothing to compare with
      issued = jwt({ aud: 'https://other.example.com' });
      expect((await ask({})).accessToken).toBe(issued);
      expect(calls).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });
});
