/**
 * A resource that rejects a user's token (401 invalid_token) or asks for more scopes (403
 * insufficient_scope): toolFetch never sends a rejected token again (one refresh and retry, then
 * CONSENT_REQUIRED), and a step-up becomes CONSENT_REQUIRED for the granted plus challenged scopes.
 * Real token manager, real oidc-provider, a real loopback resource.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { createTokenManager, createToolFetch, type TokenManager, type ToolFetch } from '../../src/index.js';
import { userContext } from './helpers.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
let idp: TestIdentityProvider;
let tokens: TokenManager;
let server: Server;
let origin: string;
let toolFetch: ToolFetch;
const rejected = new Set<string>();
const seen: string[] = [];
let needScope: string | undefined;

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
  tokens = createTokenManager({
    connections: [{ id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'read'] }],
  });
  server = createServer((req, res) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    seen.push(token);
    req.resume();
    if (rejected.has(token) || rejected.has('*')) {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    if (needScope !== undefined) {
      res.writeHead(403, { 'www-authenticate': `Bearer error="insufficient_scope", scope="${needScope}"` }).end('{"error":"insufficient_scope"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  toolFetch = createToolFetch({
    agent: { id: 'agent-1' },
    tools: [{ name: 'corp-api', baseUrl: origin, auth: { type: 'oauth2', connection: 'corp' } }],
    policies: [{ agent: 'agent-1', tool: 'corp-api' }],
    tokens,
  });
}, 60_000);
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await idp.close();
});

async function connect(userId: string): Promise<void> {
  const { url } = await tokens.startAuthorization({ connection: 'corp', userId });
  await tokens.completeAuthorization(await idp.authorize(url, { userId }));
}

describe('a resource that rejects the user token', () => {
  it('401 invalid_token: one refresh and retry with the new token; the rejected one is never sent again', async () => {
    await connect('erin');
    const first = (await tokens.getAccessToken({ connection: 'corp', userId: 'erin' })).accessToken;
    rejected.add(first);
    seen.length = 0;
    const res = await toolFetch(`${origin}/me`, { method: 'POST', body: '{"a":1}', context: userContext('erin') });
    expect(res.status).toBe(200);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe(first);
    expect(seen[1]).not.toBe(first);
    const again = await toolFetch(`${origin}/me`, { context: userContext('erin') });
    expect(again.status).toBe(200);
    expect(seen.slice(2).every((t) => t !== first)).toBe(true);
    expect((await tokens.getAccount({ connection: 'corp', userId: 'erin' }))?.status).toBe('active');
  });

  it('rejected again after the refresh: CONSENT_REQUIRED with a URL, and the account needs consent', async () => {
    await connect('frank');
    rejected.add('*');
    try {
      const err = await toolFetch(`${origin}/me`, { context: userContext('frank') }).catch((e) => e);
      expect(err.code).toBe('CONSENT_REQUIRED');
      expect(String(err.authorizationUrl)).toContain(idp.issuer);
      expect((await tokens.getAccount({ connection: 'corp', userId: 'frank' }))?.status).toBe('needs_consent');
    } finally {
      rejected.delete('*');
    }
  });

  it('a streamed body is not sent twice: the 401 is returned, and the next call uses a refreshed token', async () => {
    await connect('gina');
    const first = (await tokens.getAccessToken({ connection: 'corp', userId: 'gina' })).accessToken;
    rejected.add(first);
    seen.length = 0;
    const body = new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('x')), c.close()) });
    const res = await toolFetch(`${origin}/me`, { method: 'POST', body, duplex: 'half', context: userContext('gina') } as RequestInit);
    expect(res.status).toBe(401);
    expect(seen).toEqual([first]);
    expect((await toolFetch(`${origin}/me`, { context: userContext('gina') })).status).toBe(200);
    expect(seen[1]).not.toBe(first);
  });
});

describe('step-up on 403 insufficient_scope', () => {
  it('CONSENT_REQUIRED for the granted and the challenged scopes; after consent the call passes', async () => {
    await connect('hana');
    needScope = 'email';
    try {
      const err = await toolFetch(`${origin}/items`, { method: 'POST', body: '{}', context: userContext('hana') }).catch((e) => e);
      expect(err.code).toBe('CONSENT_REQUIRED');
      expect(err.scopes).toEqual(expect.arrayContaining(['openid', 'email']));
      const scope = new URL(err.authorizationUrl).searchParams.get('scope')!.split(' ');
      expect(scope).toEqual(expect.arrayContaining(['openid', 'read', 'email'])); // configured scopes kept
      await tokens.completeAuthorization(await idp.authorize(err.authorizationUrl, { userId: 'hana' }));
      expect((await tokens.getAccessToken({ connection: 'corp', userId: 'hana' })).scopes).toContain('email');
      // the scope is granted now: a 403 that still names it goes to the caller as is (no loop)
      const res = await toolFetch(`${origin}/items`, { method: 'POST', body: '{}', context: userContext('hana') });
      expect(res.status).toBe(403);
      needScope = undefined;
      expect((await toolFetch(`${origin}/items`, { method: 'POST', body: '{}', context: userContext('hana') })).status).toBe(200);
    } finally {
      needScope = undefined;
    }
  });

  it('a scope the server never grants: consent is asked at most twice for it, then the 403 goes to the caller', async () => {
    expect.assertions(4); // two CONSENT_REQUIRED in the loop, then the count and the status
    await connect('ivan');
    needScope = 'never-granted';
    try {
      let consents = 0;
      let last: Response | undefined;
      for (let i = 0; i < 5; i++) {
        try {
          last = await toolFetch(`${origin}/items`, { context: userContext('ivan') });
          break;
        } catch (e) {
          expect((e as { code: string }).code).toBe('CONSENT_REQUIRED');
          consents++;
          await tokens.completeAuthorization(await idp.authorize((e as { authorizationUrl: string }).authorizationUrl, { userId: 'ivan' }));
        }
      }
      expect(consents).toBe(2);
      expect(last?.status).toBe(403);
    } finally {
      needScope = undefined;
    }
  });
});
