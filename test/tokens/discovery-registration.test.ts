import { createServer, type Server } from 'node:http';
import Keyv from 'keyv';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext } from '../../src/testing/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { createTokenManager, createToolFetch, isAgentIamError } from '../../src/index.js';
import { assertNoSecret, expectCode, REDIRECT } from './helpers.js';

let idp: TestIdentityProvider;
beforeAll(async () => {
  idp = await createTestIdentityProvider();
});
afterAll(async () => {
  await idp?.close();
});

/** A tiny loopback JSON server: routes by path. */
async function jsonServer(routes: (origin: string) => Record<string, { status?: number; body: unknown }>): Promise<{ origin: string; server: Server; hits: string[] }> {
  const hits: string[] = [];
  let origin = '';
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', origin).pathname;
    hits.push(`${req.method} ${path}`);
    const r = routes(origin)[path];
    res.statusCode = r?.status ?? (r ? 200 : 404);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(r?.body ?? { error: 'not_found' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { origin, server, hits };
}

function countingFetch(): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fetch: (input, init) => {
      calls.push(`${init?.method ?? 'GET'} ${new URL(String(input instanceof Request ? input.url : input)).pathname}`);
      return fetch(input, init);
    },
  };
}

describe('configuration', () => {
  it('refuses non-loopback http, missing endpoints and duplicate ids with CONFIG_INVALID naming the field', async () => {
    let e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', issuer: 'http://idp.example.com', clientId: 'c' }] }), 'CONFIG_INVALID');
    expect(e.field).toBe('connections.0.issuer');
    e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', clientId: 'c' }] }), 'CONFIG_INVALID');
    expect(e.field).toBe('connections.0.tokenEndpoint');
    e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', issuer: 'https://x.example' }, { id: 'a', issuer: 'https://y.example' }] }), 'CONFIG_INVALID');
    expect(e.field).toBe('connections.1.id');
    e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', issuer: 'https://x.example', clientSecret: 'topsecretvalue' }] }), 'CONFIG_INVALID');
    assertNoSecret(e, ['topsecretvalue']);
    e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', issuer: 'https://x.example', bogus: 1 } as never] }), 'CONFIG_INVALID');
    e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', issuer: 'https://x.example' }], encryptionKey: 'too-short' }), 'CONFIG_INVALID');
    expect(e.field).toBe('encryptionKey');
  });
});

describe('clientMetadataUrl', () => {
  it('follows the same rule as clientMetadataDocument(): loopback http accepted, other http, no path, fragments and non-canonical forms refused', async () => {
    const { clientMetadataDocument } = await import('../../src/mcp/index.js');
    const ok = 'http://127.0.0.1:8123/oauth/client.json';
    expect(() => clientMetadataDocument({ clientId: ok, clientName: 'Agent', redirectUris: ['http://127.0.0.1:8123/cb'] })).not.toThrow();
    expect(() => createTokenManager({ connections: [{ id: 'm', resource: 'https://mcp.example.com/mcp', clientMetadataUrl: ok, redirectUri: REDIRECT }] })).not.toThrow();
    for (const bad of ['http://agent.example.com/client.json', 'https://agent.example.com/', 'https://agent.example.com/c.json#x', 'https://agent.example.com/a/../c.json', 'HTTPS://agent.example.com/c.json']) {
      const e = await expectCode(() => createTokenManager({ connections: [{ id: 'm', resource: 'https://mcp.example.com/mcp', clientMetadataUrl: bad, redirectUri: REDIRECT }] }), 'CONFIG_INVALID');
      expect(e.field).toBe('connections.0.clientMetadataUrl');
      await expectCode(() => clientMetadataDocument({ clientId: bad, clientName: 'Agent', redirectUris: ['https://agent.example.com/cb'] }), 'CONFIG_INVALID');
    }
  });
});

describe('discovery', () => {
  it('refuses metadata whose issuer differs from the one asked for, and non-loopback http endpoints', async () => {
    const evil = await jsonServer((origin) => ({
      '/.well-known/oauth-authorization-server': { body: { issuer: 'https://other.example.com', token_endpoint: `${origin}/token` } },
    }));
    const http = await jsonServer((origin) => ({
      '/.well-known/oauth-authorization-server': { body: { issuer: origin, token_endpoint: 'http://tokens.example.com/token', authorization_endpoint: `${origin}/a` } },
    }));
    try {
      const a = createTokenManager({ connections: [{ id: 'a', issuer: evil.origin, clientId: 'c', clientSecret: 's', redirectUri: REDIRECT }] });
      await expectCode(a.startAuthorization({ connection: 'a', userId: 'u' }), 'OAUTH_ERROR');
      expect(evil.hits.some((h) => h.includes('/token'))).toBe(false);
      const b = createTokenManager({ connections: [{ id: 'b', issuer: http.origin, clientId: 'c', clientSecret: 's' }] });
      await expectCode(b.clientCredentials({ connection: 'b' }), 'OAUTH_ERROR');
      expect(http.hits.filter((h) => h.startsWith('POST'))).toHaveLength(0);
    } finally {
      evil.server.close();
      http.server.close();
    }
  });

  it('finds the authorization server from RFC 9728 protected-resource metadata, registers dynamically, and reuses the registration', async () => {
    let resource = '';
    const rs = await jsonServer((origin) => {
      resource = `${origin}/mcp`;
      return { '/.well-known/oauth-protected-resource/mcp': { body: { resource, authorization_servers: [idp.issuer] } } };
    });
    try {
      const store = new Keyv();
      const f = countingFetch();
      const conn = { id: 'mcp', resource: `${rs.origin}/mcp`, registration: 'dynamic' as const, redirectUri: REDIRECT, scopes: ['tools'] };
      const a = createTokenManager({ store, fetch: f.fetch, connections: [conn] });
      const { url } = await a.startAuthorization({ connection: 'mcp', userId: 'alice' });
      expect(new URL(url).searchParams.get('resource')).toBe(`${rs.origin}/mcp`);
      expect(rs.hits).toContain('GET /.well-known/oauth-protected-resource/mcp');
      await a.completeAuthorization(await idp.authorize(url, { userId: 'alice' }));
      const t = await a.getAccessToken({ connection: 'mcp', userId: 'alice' });
      expect(decodeJwt(t.accessToken).aud).toBe(`${rs.origin}/mcp`);
      expect(f.calls.filter((c) => c === 'POST /reg')).toHaveLength(1);
      // A second manager (another process) on the same store reuses the stored registration.
      const b = createTokenManager({ store, fetch: f.fetch, connections: [conn] });
      await b.startAuthorization({ connection: 'mcp', userId: 'bob' });
      expect(f.calls.filter((c) => c === 'POST /reg')).toHaveLength(1);
    } finally {
      rs.server.close();
    }
  });

  it('falls back to the resource host well-known metadata when there is no protected-resource metadata', async () => {
    const client = await idp.registerClient({ redirect_uris: [REDIRECT] });
    const tokens = createTokenManager({ connections: [{ id: 'r', resource: `${idp.issuer}/api`, sendResource: false, clientId: client.client_id, clientSecret: client.client_secret, redirectUri: REDIRECT }] });
    const { url } = await tokens.startAuthorization({ connection: 'r', userId: 'carol' });
    expect(new URL(url).origin).toBe(idp.issuer);
    expect(new URL(url).searchParams.has('resource')).toBe(false);
  });

  it('2025-03-26 back-compat: metadata at the origin root may name an issuer with a path on that origin, never another origin', async () => {
    const legacy = await jsonServer((origin) => ({
      '/.well-known/oauth-authorization-server': {
        body: { issuer: `${origin}/oauth`, authorization_endpoint: `${origin}/oauth/authorize`, token_endpoint: `${origin}/oauth/token`, code_challenge_methods_supported: ['S256'] },
      },
    }));
    const elsewhere = await jsonServer(() => ({
      '/.well-known/oauth-authorization-server': { body: { issuer: 'https://idp.example.com', authorization_endpoint: 'https://idp.example.com/authorize', token_endpoint: 'https://idp.example.com/token' } },
    }));
    try {
      const ok = createTokenManager({ connections: [{ id: 'l', resource: `${legacy.origin}/mcp`, clientId: 'c', redirectUri: REDIRECT, tokenEndpointAuthMethod: 'none' }] });
      const { url } = await ok.startAuthorization({ connection: 'l', userId: 'dana' });
      expect(`${new URL(url).origin}${new URL(url).pathname}`).toBe(`${legacy.origin}/oauth/authorize`);
      expect(legacy.hits).toContain('GET /.well-known/oauth-protected-resource/mcp');
      const bad = createTokenManager({ connections: [{ id: 'e', resource: `${elsewhere.origin}/mcp`, clientId: 'c', redirectUri: REDIRECT, tokenEndpointAuthMethod: 'none' }] });
      const e = await expectCode(bad.startAuthorization({ connection: 'e', userId: 'dana' }), 'OAUTH_ERROR');
      expect(e.oauthError).toBe('invalid_response');
    } finally {
      legacy.server.close();
      elsewhere.server.close();
    }
  });

  it('2025-03-26 back-compat: with no metadata at all, the default endpoints at the origin, PKCE S256; an unreadable document is an error, not a fallback', async () => {
    const bare = await jsonServer(() => ({}));
    const broken = await jsonServer(() => ({ '/.well-known/oauth-authorization-server': { status: 500, body: {} }, '/.well-known/openid-configuration': { body: 'x' } }));
    try {
      const t = createTokenManager({ retries: 0, connections: [{ id: 'b', resource: `${bare.origin}/mcp`, clientId: 'c', redirectUri: REDIRECT, tokenEndpointAuthMethod: 'none' }] });
      const u = new URL((await t.startAuthorization({ connection: 'b', userId: 'erin' })).url);
      expect(`${u.origin}${u.pathname}`).toBe(`${bare.origin}/authorize`);
      expect(u.searchParams.get('code_challenge_method')).toBe('S256');
      expect(u.searchParams.get('resource')).toBe(`${bare.origin}/mcp`);
      const b = createTokenManager({ retries: 0, connections: [{ id: 'x', resource: `${broken.origin}/mcp`, clientId: 'c', redirectUri: REDIRECT, tokenEndpointAuthMethod: 'none' }] });
      const e = await b.startAuthorization({ connection: 'x', userId: 'erin' }).then(() => undefined, (err: unknown) => err as { code?: string });
      expect(['TOKEN_ENDPOINT_UNAVAILABLE', 'OAUTH_ERROR']).toContain(e?.code);
      expect(broken.hits.some((h) => h.includes('/authorize'))).toBe(false);
    } finally {
      bare.server.close();
      broken.server.close();
    }
  });
});

describe('offline_access (SEP-2207)', () => {
  it('a resource connection asks for offline_access when the authorization server lists it, and never when it does not', async () => {
    const make = (listsOffline: boolean) =>
      jsonServer((origin) => ({
        '/.well-known/oauth-protected-resource/mcp': { body: { resource: `${origin}/mcp`, authorization_servers: [origin], scopes_supported: ['mcp:tools', 'offline_access'] } },
        '/.well-known/oauth-authorization-server': {
          body: { issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, code_challenge_methods_supported: ['S256'], scopes_supported: listsOffline ? ['mcp:tools', 'offline_access'] : ['mcp:tools'] },
        },
      }));
    const [yes, no] = [await make(true), await make(false)];
    try {
      for (const [srv, expected] of [[yes, ['mcp:tools', 'offline_access']], [no, ['mcp:tools']]] as const) {
        const t = createTokenManager({ connections: [{ id: 'm', resource: `${srv.origin}/mcp`, clientId: 'c', tokenEndpointAuthMethod: 'none', redirectUri: REDIRECT }] });
        const u = new URL((await t.startAuthorization({ connection: 'm', userId: 'u' })).url);
        expect(u.searchParams.get('scope')?.split(' ').sort()).toEqual([...expected]);
      }
    } finally {
      yes.server.close();
      no.server.close();
    }
  });
});

describe('credentials stay with their authorization server', () => {
  it('when the resource\'s metadata names another authorization server, the refresh token is never sent there; the account needs consent at the new one', async () => {
    const other = await createTestIdentityProvider();
    let current = idp.issuer;
    const rs = await jsonServer((origin) => ({ '/.well-known/oauth-protected-resource/mcp': { body: { resource: `${origin}/mcp`, authorization_servers: [current] } } }));
    try {
      const store = new Keyv();
      const conn = { id: 'mcp', resource: `${rs.origin}/mcp`, registration: 'dynamic' as const, redirectUri: REDIRECT, scopes: ['tools'] };
      const first = createTokenManager({ store, connections: [conn] });
      const { url } = await first.startAuthorization({ connection: 'mcp', userId: 'gina' });
      const account = await first.completeAuthorization(await idp.authorize(url, { userId: 'gina' }));
      expect(account.status).toBe('active');
      current = other.issuer; // the resource now names another authorization server
      other.resetStats();
      const later = createTokenManager({ store, refreshSkewSeconds: 86_400, connections: [conn] });
      const e = await expectCode(later.getAccessToken({ connection: 'mcp', userId: 'gina' }), 'CONSENT_REQUIRED');
      expect(new URL(e.authorizationUrl as string).origin).toBe(other.issuer);
      expect(other.stats.token.refresh_token ?? 0).toBe(0);
      expect((await later.getAccount({ connection: 'mcp', userId: 'gina' }))?.status).toBe('needs_consent');
    } finally {
      rs.server.close();
      await other.close();
    }
  });

  it('PKCE: a server that does not list S256 is refused before the user is sent anywhere; a resource\'s server must list it', async () => {
    const plainOnly = await jsonServer((origin) => ({
      '/.well-known/oauth-protected-resource/mcp': { body: { resource: `${origin}/mcp`, authorization_servers: [origin] } },
      '/.well-known/oauth-authorization-server': { body: { issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, code_challenge_methods_supported: ['plain'] } },
    }));
    const unlisted = await jsonServer((origin) => ({
      '/.well-known/oauth-protected-resource/mcp': { body: { resource: `${origin}/mcp`, authorization_servers: [origin] } },
      '/.well-known/oauth-authorization-server': { body: { issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token` } },
    }));
    try {
      for (const srv of [plainOnly, unlisted]) {
        const t = createTokenManager({ connections: [{ id: 'm', resource: `${srv.origin}/mcp`, clientId: 'c', tokenEndpointAuthMethod: 'none', redirectUri: REDIRECT }] });
        const e = await expectCode(t.startAuthorization({ connection: 'm', userId: 'u' }), 'OAUTH_ERROR');
        expect(e.message).toContain('S256');
      }
      // An issuer connection to a server that omits the field (many OpenID providers do) still works.
      const byIssuer = createTokenManager({ connections: [{ id: 'i', issuer: unlisted.origin, clientId: 'c', tokenEndpointAuthMethod: 'none', redirectUri: REDIRECT }] });
      expect((await byIssuer.startAuthorization({ connection: 'i', userId: 'u' })).url).toContain('code_challenge_method=S256');
    } finally {
      plainOnly.server.close();
      unlisted.server.close();
    }
  });
});

describe('the resource challenge over the 2025-03-26 fallback', () => {
  it('a resource_metadata named by the resource\'s 401 replaces a fallback found before it (no metadata at the well-known paths)', async () => {
    let origin = '';
    const hits: string[] = [];
    const rs = createServer((req, res) => {
      const path = new URL(req.url ?? '/', origin).pathname;
      hits.push(`${req.method} ${path}`);
      res.setHeader('content-type', 'application/json');
      if (path === '/custom/prm.json') return res.end(JSON.stringify({ resource: `${origin}/mcp`, authorization_servers: [idp.issuer] }));
      if (path === '/mcp') {
        res.statusCode = 401;
        res.setHeader('www-authenticate', `Bearer resource_metadata="${origin}/custom/prm.json"`);
        return res.end('{}');
      }
      res.statusCode = 404;
      res.end('{"error":"not_found"}');
    });
    await new Promise<void>((r) => rs.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(rs.address() as { port: number }).port}`;
    try {
      const tokens = createTokenManager({ retries: 0, connections: [{ id: 'mcp', resource: `${origin}/mcp`, registration: 'dynamic', redirectUri: REDIRECT, probeResource: true }] });
      const toolFetch = createToolFetch({
        agent: { id: 'a' },
        tools: [{ name: 'mcp', baseUrl: `${origin}/mcp`, auth: { type: 'oauth2', connection: 'mcp' }, forwardUser: false }],
        policies: [{ agent: 'a', tool: 'mcp' }],
        tokens,
      });
      const context = createTestContext({ userId: 'u1' });
      const e = await toolFetch(`${origin}/mcp`, { method: 'POST', body: '{}', context }).then(() => undefined, (err: unknown) => err);
      expect(isAgentIamError(e) && e.code).toBe('CONSENT_REQUIRED');
      const url = new URL((e as { authorizationUrl: string }).authorizationUrl);
      expect(url.origin).toBe(idp.issuer);
      expect(hits).toContain('GET /custom/prm.json');
    } finally {
      rs.close();
    }
  });
});

describe('registration', () => {
  it('registers again, once, when the server forgets the client (invalid_client)', async () => {
    const f = countingFetch();
    const tokens = createTokenManager({ fetch: f.fetch, connections: [{ id: 'svc', issuer: idp.issuer, registration: 'dynamic' }] });
    await tokens.clientCredentials({ connection: 'svc' });
    idp.setFault({ kind: 'invalid_client', grantType: 'client_credentials', times: 1 });
    const t = await tokens.clientCredentials({ connection: 'svc', resource: 'https://api.example.com' });
    expect(decodeJwt(t.accessToken).aud).toBe('https://api.example.com');
    expect(f.calls.filter((c) => c === 'POST /reg')).toHaveLength(2);
    idp.setFault({ kind: 'invalid_client', grantType: 'client_credentials', times: 5 });
    const e = await expectCode(tokens.clientCredentials({ connection: 'svc', resource: 'https://other.example.com' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_client');
    expect(f.calls.filter((c) => c === 'POST /reg')).toHaveLength(3); // one more registration, not a loop
    idp.setFault(null);
  });

  it('refuses a registration answer whose client secret already expired', async () => {
    const as = await jsonServer((origin) => ({
      '/reg': { status: 201, body: { client_id: 'c1', client_secret: 'expired-secret-value', client_secret_expires_at: Math.floor(Date.now() / 1000) - 10 } },
      '/token': { body: { access_token: 'x', token_type: 'bearer' } },
      '/unused': { body: { origin } },
    }));
    try {
      const tokens = createTokenManager({ connections: [{ id: 'x', tokenEndpoint: `${as.origin}/token`, registrationEndpoint: `${as.origin}/reg`, registration: 'dynamic' }] });
      const e = await expectCode(tokens.clientCredentials({ connection: 'x' }), 'OAUTH_ERROR');
      assertNoSecret(e, ['expired-secret-value']);
      expect(as.hits).not.toContain('POST /token');
    } finally {
      as.server.close();
    }
  });

  it('uses a Client ID Metadata Document URL when the server advertises support, and says which is missing otherwise', async () => {
    const cimd = 'https://agent.example.com/oauth/client.json';
    const as = await jsonServer((origin) => ({
      '/.well-known/oauth-authorization-server': { body: { issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, client_id_metadata_document_supported: true } },
    }));
    try {
      const tokens = createTokenManager({ connections: [{ id: 'm', issuer: as.origin, clientMetadataUrl: cimd, redirectUri: REDIRECT }] });
      const { url } = await tokens.startAuthorization({ connection: 'm', userId: 'u' });
      expect(new URL(url).searchParams.get('client_id')).toBe(cimd);
      // the IdP advertises neither CIMD: with clientMetadataUrl and no dynamic registration → typed error naming the gap
      const none = createTokenManager({ connections: [{ id: 'n', issuer: idp.issuer, clientMetadataUrl: cimd, redirectUri: REDIRECT }] });
      const e = await expectCode(none.startAuthorization({ connection: 'n', userId: 'u' }), 'CONFIG_INVALID');
      expect(e.message).toContain('client_id_metadata_document_supported');
    } finally {
      as.server.close();
    }
  });
});
