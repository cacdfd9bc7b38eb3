// The authorization-code flow under attack (issue 14, "the parts the attack did not reach"): state
// fixation and replay, PKCE downgrade and code injection, and mix-up between two authorization
// servers, against real oidc-providers and hostile loopback authorization servers.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenManager, type ConnectionConfig } from '../../src/index.js';
import { assertNoSecret, expectCode, REDIRECT, startIdp, type Setup } from './helpers.js';

/** A hostile (or lax) authorization server: metadata of our choosing, and a token endpoint that records what it gets. */
interface FakeAs {
  origin: string;
  tokenRequests: URLSearchParams[];
  close(): Promise<void>;
}

async function fakeAs(metadata: (origin: string) => Record<string, unknown>): Promise<FakeAs> {
  const tokenRequests: URLSearchParams[] = [];
  let origin = '';
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', origin).pathname;
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'no-store');
      if (path === '/.well-known/oauth-authorization-server' || path === '/.well-known/openid-configuration') {
        res.end(JSON.stringify(metadata(origin)));
        return;
      }
      if (path === '/token' && req.method === 'POST') {
        tokenRequests.push(new URLSearchParams(Buffer.concat(chunks).toString()));
        // Accepts any code, with or without code_verifier: PKCE is not checked here.
        res.end(JSON.stringify({ access_token: `at-${tokenRequests.length}`, token_type: 'Bearer', expires_in: 600 }));
        return;
      }
      res.statusCode = 404;
      res.end('{"error":"not_found"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    origin,
    tokenRequests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const s256 = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url');

/** A callback URL with one parameter replaced (or removed, with `undefined`). */
function withParam(callback: string, name: string, value: string | undefined): string {
  const u = new URL(callback);
  if (value === undefined) u.searchParams.delete(name);
  else u.searchParams.set(name, value);
  return u.href;
}

async function authorizationEndpoint(issuer: string): Promise<string> {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`);
  return ((await res.json()) as { authorization_endpoint: string }).authorization_endpoint;
}

let a: Setup;
let b: Setup;
beforeAll(async () => {
  [a, b] = await Promise.all([startIdp(), startIdp()]);
});
afterAll(async () => {
  await Promise.all([a?.idp.close(), b?.idp.close()]);
});

const codeGrants = (s: Setup): number => s.idp.stats.token.authorization_code ?? 0;

describe('state fixation and replay', () => {
  it('two concurrent callbacks with one state: exactly one completes, and the code is redeemed once', async () => {
    const tokens = createTokenManager({ connections: [{ ...a.connection, id: 'a' }] });
    const { url } = await tokens.startAuthorization({ connection: 'a', userId: 'alice' });
    const callback = await a.idp.authorize(url, { userId: 'alice' });
    const before = codeGrants(a);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => tokens.completeAuthorization(callback)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('OAUTH_STATE_MISMATCH');
    expect(codeGrants(a) - before).toBe(1);
  });

  it('a state started by the attacker cannot carry the victim\'s code: PKCE binds the code to the flow that asked for it', async () => {
    // Code injection: the attacker obtains the victim's callback (code) and presents it with a
    // state from a flow of its own, in its own session. The token request then carries the
    // attacker flow's verifier, which does not match the victim code's challenge.
    const tokens = createTokenManager({ connections: [{ ...a.connection, id: 'a' }] });
    const victim = await tokens.startAuthorization({ connection: 'a', userId: 'victim' });
    const victimCallback = await a.idp.authorize(victim.url, { userId: 'victim' });
    const attacker = await tokens.startAuthorization({ connection: 'a', userId: 'mallory' });
    const injected = withParam(victimCallback, 'state', attacker.state);
    const before = codeGrants(a);
    const e = await expectCode(tokens.completeAuthorization(injected, { expectedUserId: 'mallory' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_grant');
    assertNoSecret(e, [new URL(victimCallback).searchParams.get('code') as string]);
    expect(codeGrants(a) - before).toBe(1); // sent, and refused by the server
    expect(await tokens.getAccount({ connection: 'a', userId: 'mallory' })).toBeUndefined();
    expect(await tokens.getAccount({ connection: 'a', userId: 'victim' })).toBeUndefined();
  });

  it('a failed completion spends the state: the genuine callback cannot be replayed after it', async () => {
    const tokens = createTokenManager({ connections: [{ ...a.connection, id: 'a' }] });
    const { url } = await tokens.startAuthorization({ connection: 'a', userId: 'uma' });
    const callback = await a.idp.authorize(url, { userId: 'uma' });
    await expectCode(tokens.completeAuthorization(withParam(callback, 'iss', 'https://evil.example')), 'OAUTH_ERROR');
    await expectCode(tokens.completeAuthorization(callback), 'OAUTH_STATE_MISMATCH');
    await expectCode(tokens.completeAuthorization(callback, { expectedUserId: 'uma' }), 'OAUTH_STATE_MISMATCH');
  });
});

describe('PKCE downgrade', () => {
  it('a server that ignores code_challenge still gets S256 and a verifier matching it on every token request', async () => {
    // Metadata without code_challenge_methods_supported (allowed for an issuer connection) and a
    // token endpoint that would accept a code without any verifier.
    const lax = await fakeAs((origin) => ({ issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token` }));
    try {
      const tokens = createTokenManager({
        retries: 0,
        connections: [
          {
            id: 'lax',
            issuer: lax.origin,
            clientId: 'c',
            clientSecret: 'lax-client-secret',
            redirectUri: REDIRECT,
            // A connection's extra parameters can never replace the PKCE, state or redirect parameters.
            authorizationParams: { code_challenge_method: 'plain', code_challenge: 'chosen', state: 'fixed-state', redirect_uri: 'https://evil.example/cb', response_type: 'token' },
            tokenParams: { code_verifier: 'chosen', redirect_uri: 'https://evil.example/cb', grant_type: 'password' },
          },
        ],
      });
      for (const userId of ['u1', 'u2']) {
        const { url, state } = await tokens.startAuthorization({ connection: 'lax', userId });
        const u = new URL(url);
        expect(u.searchParams.getAll('code_challenge_method')).toEqual(['S256']);
        expect(u.searchParams.getAll('response_type')).toEqual(['code']);
        expect(u.searchParams.getAll('redirect_uri')).toEqual([REDIRECT]);
        expect(u.searchParams.getAll('state')).toEqual([state]);
        expect(state).not.toBe('fixed-state');
        const challenge = u.searchParams.get('code_challenge') as string;
        expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
        await tokens.completeAuthorization(`${REDIRECT}?code=code-for-${userId}&state=${state}`);
        const sent = lax.tokenRequests.at(-1) as URLSearchParams;
        expect(sent.get('grant_type')).toBe('authorization_code');
        expect(sent.getAll('code_verifier')).toHaveLength(1);
        const verifier = sent.get('code_verifier') as string;
        expect(verifier).toMatch(/^[A-Za-z0-9._~-]{43,128}$/);
        expect(s256(verifier)).toBe(challenge);
        expect(sent.getAll('redirect_uri')).toEqual([REDIRECT]);
      }
      // each flow has its own verifier
      expect(lax.tokenRequests[0]?.get('code_verifier')).not.toBe(lax.tokenRequests[1]?.get('code_verifier'));
    } finally {
      await lax.close();
    }
  });
});

describe('mix-up between two authorization servers (shared redirect URI)', () => {
  const both = (): ConnectionConfig[] => [
    { ...a.connection, id: 'a' },
    { ...b.connection, id: 'b' },
  ];

  it('callbacks with swapped states are refused by RFC 9207 iss before any code reaches a token endpoint; fresh flows then work', async () => {
    const tokens = createTokenManager({ connections: both() });
    const fa = await tokens.startAuthorization({ connection: 'a', userId: 'alice' });
    const fb = await tokens.startAuthorization({ connection: 'b', userId: 'alice' });
    const cbA = await a.idp.authorize(fa.url, { userId: 'alice' });
    const cbB = await b.idp.authorize(fb.url, { userId: 'alice' });
    const [beforeA, beforeB] = [codeGrants(a), codeGrants(b)];
    // A's code delivered as if for B, and B's as if for A.
    const e1 = await expectCode(tokens.completeAuthorization(withParam(cbA, 'state', fb.state), { expectedUserId: 'alice' }), 'OAUTH_ERROR');
    const e2 = await expectCode(tokens.completeAuthorization(withParam(cbB, 'state', fa.state), { expectedUserId: 'alice' }), 'OAUTH_ERROR');
    for (const e of [e1, e2]) {
      expect(e.oauthError).toBe('invalid_response');
      assertNoSecret(e, [new URL(cbA).searchParams.get('code') as string, new URL(cbB).searchParams.get('code') as string]);
    }
    // Without iss (an attacker strips it): both servers advertise RFC 9207 support, so it is required.
    const fb2 = await tokens.startAuthorization({ connection: 'b', userId: 'alice' });
    await expectCode(tokens.completeAuthorization(withParam(withParam(cbA, 'state', fb2.state), 'iss', undefined)), 'OAUTH_ERROR');
    expect([codeGrants(a) - beforeA, codeGrants(b) - beforeB]).toEqual([0, 0]);
    expect(await tokens.listAccounts('alice')).toEqual([]);
    // The attack burnt both flows; new ones complete, each at its own server.
    for (const [id, s] of [['a', a], ['b', b]] as const) {
      const { url } = await tokens.startAuthorization({ connection: id, userId: 'alice' });
      const account = await tokens.completeAuthorization(await s.idp.authorize(url, { userId: 'alice' }), { expectedUserId: 'alice' });
      expect(account.connection).toBe(id);
    }
    expect([codeGrants(a) - beforeA, codeGrants(b) - beforeB]).toEqual([1, 1]);
  });

  it('an attacker\'s authorization server forwarding the user to the honest one: the honest code never reaches the attacker', async () => {
    // The classic mix-up: the user starts a flow with the attacker's server (a connection the
    // attacker controls, e.g. found from an MCP server's metadata). It sends the user on to the
    // honest server with the honest client_id, our redirect URI, the attacker flow's state and
    // code challenge. The honest server's callback then carries the attacker flow's state.
    const evil = await fakeAs((origin) => ({
      issuer: origin,
      authorization_endpoint: `${origin}/authorize`,
      token_endpoint: `${origin}/token`,
      code_challenge_methods_supported: ['S256'],
      // no authorization_response_iss_parameter_supported: the attacker does not ask for iss
    }));
    try {
      const tokens = createTokenManager({
        retries: 0,
        connections: [
          { ...a.connection, id: 'honest' },
          { id: 'evil', issuer: evil.origin, clientId: 'evil-client', tokenEndpointAuthMethod: 'none', redirectUri: REDIRECT, scopes: ['openid'] },
        ],
      });
      const started = new URL((await tokens.startAuthorization({ connection: 'evil', userId: 'alice' })).url);
      const forwarded = new URL(await authorizationEndpoint(a.idp.issuer));
      for (const [k, v] of Object.entries({
        client_id: a.clientId,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid',
        state: started.searchParams.get('state') as string,
        code_challenge: started.searchParams.get('code_challenge') as string,
        code_challenge_method: 'S256',
      })) {
        forwarded.searchParams.set(k, v);
      }
      const callback = await a.idp.authorize(forwarded, { userId: 'alice' });
      expect(new URL(callback).searchParams.get('iss')).toBe(a.idp.issuer);
      const before = codeGrants(a);
      const e = await expectCode(tokens.completeAuthorization(callback, { expectedUserId: 'alice' }), 'OAUTH_ERROR');
      assertNoSecret(e, [new URL(callback).searchParams.get('code') as string]);
      expect(evil.tokenRequests).toHaveLength(0); // neither the code nor the verifier went to the attacker
      expect(codeGrants(a)).toBe(before);
      expect(await tokens.listAccounts('alice')).toEqual([]);
    } finally {
      await evil.close();
    }
  });

  it('with a redirect URI per connection, a callback at A\'s redirect URI carrying B\'s state is refused before any request, iss or not', async () => {
    // For servers that send no iss (RFC 9207 is optional), distinct redirect URIs are what tells the
    // servers' callbacks apart (RFC 9700 §4.4.2).
    const evil = await fakeAs((origin) => ({ issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, code_challenge_methods_supported: ['S256'] }));
    try {
      const tokens = createTokenManager({
        retries: 0,
        connections: [
          { ...a.connection, id: 'honest', redirectUri: REDIRECT },
          { id: 'evil', issuer: evil.origin, clientId: 'evil-client', tokenEndpointAuthMethod: 'none', redirectUri: 'http://127.0.0.1:9/callback/evil' },
        ],
      });
      const { state } = await tokens.startAuthorization({ connection: 'evil', userId: 'alice' });
      const honest = await tokens.startAuthorization({ connection: 'honest', userId: 'alice' });
      const callback = await a.idp.authorize(honest.url, { userId: 'alice' });
      const before = codeGrants(a);
      for (const iss of [a.idp.issuer, undefined]) {
        const { state: s } = iss === undefined ? await tokens.startAuthorization({ connection: 'evil', userId: 'alice' }) : { state };
        const delivered = withParam(withParam(callback, 'state', s), 'iss', iss);
        const e = await expectCode(tokens.completeAuthorization(delivered), 'OAUTH_STATE_MISMATCH');
        assertNoSecret(e, [new URL(callback).searchParams.get('code') as string]);
      }
      expect(evil.tokenRequests).toHaveLength(0);
      expect(codeGrants(a)).toBe(before);
      // the honest flow itself is untouched by the attempts
      expect((await tokens.completeAuthorization(callback)).connection).toBe('honest');
    } finally {
      await evil.close();
    }
  });

  it('two connections at one server with different clients: a code for one client presented with the other\'s state is refused there', async () => {
    const second = await a.idp.registerClient({ redirect_uris: [REDIRECT] });
    const tokens = createTokenManager({
      connections: [
        { ...a.connection, id: 'read' },
        { ...a.connection, id: 'admin', clientId: second.client_id, clientSecret: second.client_secret as string, scopes: ['openid', 'admin'] },
      ],
    });
    const read = await tokens.startAuthorization({ connection: 'read', userId: 'bob' });
    const admin = await tokens.startAuthorization({ connection: 'admin', userId: 'bob' });
    const callback = await a.idp.authorize(read.url, { userId: 'bob' });
    const e = await expectCode(tokens.completeAuthorization(withParam(callback, 'state', admin.state)), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_grant');
    assertNoSecret(e, [new URL(callback).searchParams.get('code') as string]);
    expect(await tokens.listAccounts('bob')).toEqual([]);
  });
});
