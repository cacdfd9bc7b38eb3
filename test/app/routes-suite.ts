/**
 * The consent and approval route cases every adapter must pass (Express and Hono run the same
 * suite): real HTTP on 127.0.0.1, a real oidc-provider (agent-iam/testing) as the authorization
 * server and as the issuer of the callers' bearer tokens.
 *
 * Each app must offer (verifier in `open` mode, so the routes themselves meet anonymous callers):
 *   agentAuth(verifier)
 *   consentRoutes(tokens, { basePath: '/oauth', audit, store })
 *   consentRoutes(tokens, { basePath: '/r', successRedirect: '/done', store })   (same store)
 *   approvalRoutes(approvals, { adminScope: 'approvals:admin' })                  (base /approvals)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createApprovals,
  createKeyValueStore,
  createTokenManager,
  createVerifier,
  type Approvals,
  type AuditEvent,
  type KeyValueStore,
  type TokenManager,
  type Verifier,
} from '../../src/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

export interface RouteAppParts {
  verifier: Verifier;
  tokens: TokenManager;
  approvals: Approvals;
  audit: (e: AuditEvent) => void;
  store: KeyValueStore;
}

/** Returns a Node request listener serving the app. */
export type BuildApp = (parts: RouteAppParts) => (req: IncomingMessage, res: ServerResponse) => void;

export const ADMIN_SCOPE = 'approvals:admin';

export function routeSuite(name: string, build: BuildApp): void {
  describe(`${name}: consent and approval routes`, () => {
    let idp: TestIdentityProvider;
    let base = '';
    let parts: RouteAppParts;
    const events: AuditEvent[] = [];
    let server: ReturnType<typeof createServer>;

    beforeAll(async () => {
      let listener: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
      server = createServer((req, res) => (listener ? listener(req, res) : res.writeHead(503).end()));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      idp = await createTestIdentityProvider();
      const redirectUri = `${base}/oauth/callback`;
      const client = await idp.registerClient({ redirect_uris: [redirectUri] });
      const tokens = createTokenManager({
        connections: [{ id: 'corp', issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string, redirectUri, scopes: ['openid', 'read'] }],
      });
      const verifier = createVerifier({ mode: 'open', providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['agent-iam:test'] }] });
      parts = { verifier, tokens, approvals: createApprovals(), audit: (e) => void events.push(e), store: createKeyValueStore() };
      listener = build(parts);
    });

    afterAll(async () => {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await idp?.close();
    });

    const bearer = async (userId: string, scopes: string[] = []): Promise<Record<string, string>> => ({
      authorization: `Bearer ${await idp.tokenFor({ userId, scopes })}`,
    });
    const get = async (path: string, headers: Record<string, string> = {}): Promise<Response> => fetch(`${base}${path}`, { headers, redirect: 'manual' });
    /** Start a flow through the route and consent at the IdP: returns the callback's path + query. */
    const startAndConsent = async (userId: string, prefix = '/oauth'): Promise<string> => {
      const res = await get(`${prefix}/connect/corp`, await bearer(userId));
      expect(res.status).toBe(302);
      const callback = new URL(await idp.authorize(res.headers.get('location') as string, { userId }));
      return callback.search;
    };

    it('connect: 401 TOKEN_MISSING without a user, 404 for an unknown connection, else 302 to the IdP with PKCE', async () => {
      let res = await get('/oauth/connect/corp');
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await res.json()).toMatchObject({ error: 'TOKEN_MISSING' });

      res = await get('/oauth/connect/nope', await bearer('alice'));
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect(await res.json()).toMatchObject({ error: 'REQUEST_INVALID' });

      res = await get('/oauth/connect/corp', await bearer('alice'));
      expect(res.status).toBe(302);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const location = new URL(res.headers.get('location') as string);
      expect(location.origin).toBe(idp.issuer);
      expect(location.searchParams.get('code_challenge_method')).toBe('S256');
      expect(location.searchParams.get('redirect_uri')).toBe(`${base}/oauth/callback`);
      expect(location.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    });

    it('connect with Accept: application/json answers { authorizationUrl } for a single-page app', async () => {
      const res = await get('/oauth/connect/corp', { ...(await bearer('hank')), accept: 'application/json' });
      expect(res.status).toBe(200);
      const { authorizationUrl } = (await res.json()) as { authorizationUrl: string };
      const callback = new URL(await idp.authorize(authorizationUrl, { userId: 'hank' }));
      const done = await get(`/oauth/callback${callback.search}`, await bearer('hank'));
      expect(done.status).toBe(200);
    });

    it('callback by the same user connects the account and answers JSON without token material', async () => {
      const search = await startAndConsent('alice');
      const res = await get(`/oauth/callback${search}`, await bearer('alice'));
      const text = await res.text();
      expect(res.status, text).toBe(200);
      const body = JSON.parse(text) as { account: Record<string, unknown> };
      expect(body.account).toMatchObject({ connection: 'corp', userId: 'alice', status: 'active', kind: 'oauth2' });
      expect(Object.keys(body.account).sort()).toEqual(['connection', 'createdAt', 'expiresAt', 'kind', 'scopes', 'status', 'updatedAt', 'userId']);
      expect(text).not.toMatch(/token|eyJ/i);
      const { accessToken } = await parts.tokens.getAccessToken({ connection: 'corp', userId: 'alice' });
      expect(text).not.toContain(accessToken);
      // the same callback again: the state is single use
      const again = await get(`/oauth/callback${search}`, await bearer('alice'));
      expect(again.status).toBe(400);
      expect(await again.json()).toMatchObject({ error: 'OAUTH_STATE_MISMATCH' });
    });

    it('callback presented by ANOTHER authenticated user is refused, redeems nothing, and burns the flow', async () => {
      const search = await startAndConsent('carol');
      const codes = idp.stats.token.authorization_code ?? 0;
      const before = events.length;
      const res = await get(`/oauth/callback${search}`, await bearer('mallory'));
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'OAUTH_STATE_MISMATCH' });
      expect(idp.stats.token.authorization_code ?? 0).toBe(codes); // the code was never redeemed
      expect(events.slice(before)).toEqual([
        expect.objectContaining({ type: 'consent.complete', decision: 'deny', code: 'OAUTH_STATE_MISMATCH', userId: 'mallory', connection: 'corp' }),
      ]);
      expect(await parts.tokens.listAccounts('mallory')).toEqual([]);
      // Decision: the flow is discarded. Its callback URL (a live code) was seen by someone else.
      const real = await get(`/oauth/callback${search}`, await bearer('carol'));
      expect(real.status).toBe(400);
      expect(await real.json()).toMatchObject({ error: 'OAUTH_STATE_MISMATCH' });
      expect(await parts.tokens.listAccounts('carol')).toEqual([]);
      expect(idp.stats.token.authorization_code ?? 0).toBe(codes);
    });

    it('unauthenticated callback is refused (401) without burning the flow; the real user then completes it', async () => {
      const search = await startAndConsent('dave');
      const res = await get(`/oauth/callback${search}`);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'TOKEN_MISSING' });
      const ok = await get(`/oauth/callback${search}`, await bearer('dave'));
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { account: { userId: string } }).account.userId).toBe('dave');
    });

    it('callback without, with a forged, or with a doubled state is refused', async () => {
      const headers = await bearer('alice');
      for (const q of ['', '?code=x', '?code=x&state=forged', '?code=x&state=a&state=b', '?code=x&state=%00']) {
        const res = await get(`/oauth/callback${q}`, headers);
        expect(res.status, q).toBe(400);
        expect(await res.json()).toMatchObject({ error: 'OAUTH_STATE_MISMATCH' });
      }
    });

    it('an IdP refusal (access_denied) is rendered as OAUTH_ERROR', async () => {
      const res = await get('/oauth/connect/corp', await bearer('erin'));
      const callback = new URL(await idp.authorize(res.headers.get('location') as string, { userId: 'erin', deny: true }));
      const done = await get(`/oauth/callback${callback.search}`, await bearer('erin'));
      expect(done.status).toBe(502);
      expect(await done.json()).toMatchObject({ error: 'OAUTH_ERROR', oauthError: 'access_denied' });
    });

    it('successRedirect: 302 to the configured URL with the connection id', async () => {
      const search = await startAndConsent('frank', '/r');
      const res = await get(`/r/callback${search}`, await bearer('frank'));
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/done?connection=corp');
      expect((await parts.tokens.listAccounts('frank')).map((a) => a.status)).toEqual(['active']);
    });

    it("accounts lists only the caller's accounts, without tokens; DELETE revokes", async () => {
      const search = await startAndConsent('gina');
      expect((await get(`/oauth/callback${search}`, await bearer('gina'))).status).toBe(200);
      expect((await get('/oauth/accounts')).status).toBe(401);

      let res = await get('/oauth/accounts', await bearer('gina'));
      let text = await res.text();
      expect(res.status).toBe(200);
      expect(JSON.parse(text)).toEqual({ accounts: [expect.objectContaining({ connection: 'corp', userId: 'gina', status: 'active' })] });
      expect(text).not.toMatch(/token|eyJ/i);
      res = await get('/oauth/accounts', await bearer('nobody'));
      expect(await res.json()).toEqual({ accounts: [] });

      const del = (user?: string, conn = 'corp'): Promise<Response> =>
        (user ? bearer(user) : Promise.resolve({})).then((headers) => fetch(`${base}/oauth/accounts/${conn}`, { method: 'DELETE', headers }));
      expect((await del()).status).toBe(401);
      expect((await del('gina', 'nope')).status).toBe(404);
      expect((await del('nobody')).status).toBe(404);
      res = await del('gina');
      text = await res.text();
      expect(res.status).toBe(200);
      expect(JSON.parse(text)).toMatchObject({ account: { connection: 'corp', userId: 'gina', status: 'revoked' } });
      expect(text).not.toMatch(/token|eyJ/i);
      res = await get('/oauth/accounts', await bearer('gina'));
      expect(await res.json()).toEqual({ accounts: [expect.objectContaining({ status: 'revoked' })] });
    });

    it('other paths and methods pass through to the app', async () => {
      expect((await get('/oauth')).status).toBe(404);
      expect((await get('/oauth/connect')).status).toBe(404);
      expect((await get('/oauthx/accounts', await bearer('alice'))).status).toBe(404);
      expect((await fetch(`${base}/oauth/accounts`, { method: 'POST', headers: await bearer('alice') })).status).toBe(404);
    });

    describe('approval routes', () => {
      const pending = async (path: string): Promise<string> => {
        const check = await parts.approvals.check({ agentId: 'agent', userId: 'alice', tool: 'stripe', method: 'POST', path, query: '?secret=1', bodySha256: '0'.repeat(64) });
        expect(check.status).toBe('pending');
        return check.id;
      };
      const post = async (path: string, headers: Record<string, string>, body?: string): Promise<Response> =>
        fetch(`${base}${path}`, { method: 'POST', headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) });

      it('401 without a context, 403 INSUFFICIENT_SCOPE with WWW-Authenticate without the admin scope', async () => {
        const id = await pending('/v1/refunds');
        let res = await get('/approvals');
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ error: 'TOKEN_MISSING' });
        res = await get('/approvals', await bearer('alice', ['read']));
        expect(res.status).toBe(403);
        expect(res.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
        expect(res.headers.get('www-authenticate')).toContain(`scope="${ADMIN_SCOPE}"`);
        expect(await res.json()).toMatchObject({ error: 'INSUFFICIENT_SCOPE' });
        res = await post(`/approvals/${id}/approve`, await bearer('alice', ['read']), '{}');
        expect(res.status).toBe(403);
        expect((await parts.approvals.get(id))?.status).toBe('pending');
        res = await post(`/approvals/${id}/deny`, {});
        expect(res.status).toBe(401);
        expect((await parts.approvals.get(id))?.status).toBe('pending');
      });

      it('admin lists pending approvals (no query), approves with a TTL, and the approver is the caller', async () => {
        const id = await pending('/v1/refunds/1');
        const admin = await bearer('boss', [ADMIN_SCOPE]);
        let res = await get('/approvals', admin);
        const text = await res.text();
        expect(res.status).toBe(200);
        const list = JSON.parse(text) as { approvals: Array<{ id: string; status: string }> };
        expect(list.approvals.map((a) => a.id)).toContain(id);
        expect(list.approvals.every((a) => a.status === 'pending')).toBe(true);
        expect(text).not.toContain('secret');

        res = await get(`/approvals/${id}`, admin);
        expect(await res.json()).toMatchObject({ approval: { id, status: 'pending', summary: { tool: 'stripe', path: '/v1/refunds/1' } } });

        res = await post(`/approvals/${id}/approve`, admin, JSON.stringify({ ttlSeconds: 60 }));
        expect(res.status).toBe(200);
        const approved = ((await res.json()) as { approval: { status: string; approver: string; expiresAt: number } }).approval;
        expect(approved).toMatchObject({ status: 'approved', approver: 'boss' });
        expect(approved.expiresAt).toBeGreaterThan(Date.now() + 50_000);
        const again = await parts.approvals.check({ agentId: 'agent', userId: 'alice', tool: 'stripe', method: 'POST', path: '/v1/refunds/1', query: '?secret=1', bodySha256: '0'.repeat(64) });
        expect(again).toEqual({ status: 'approved', id });

        res = await get('/approvals?status=approved', admin);
        expect(((await res.json()) as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id)).toContain(id);
        res = await get('/approvals?status=bogus', admin);
        expect(res.status).toBe(400);
      });

      it('the requester cannot approve their own request, even holding the admin scope (nor by changing case); another admin can', async () => {
        const id = await pending('/v1/refunds/3'); // requested for alice
        const aliceAdmin = await bearer('alice', [ADMIN_SCOPE]);
        let res = await post(`/approvals/${id}/approve`, aliceAdmin, '{}');
        expect(res.status).toBe(403);
        const body = (await res.json()) as Record<string, unknown>;
        expect(body).toMatchObject({ error: 'POLICY_DENIED' });
        expect(JSON.stringify(body)).not.toContain('secret');
        res = await post(`/approvals/${id}/approve`, await bearer('ALICE', [ADMIN_SCOPE]), JSON.stringify({ ttlSeconds: 600 }));
        expect(res.status).toBe(403);
        expect((await parts.approvals.get(id))?.status).toBe('pending');
        expect(await parts.approvals.check({ agentId: 'agent', userId: 'alice', tool: 'stripe', method: 'POST', path: '/v1/refunds/3', query: '?secret=1', bodySha256: '0'.repeat(64) })).toMatchObject({ status: 'pending', id });

        res = await post(`/approvals/${id}/approve`, await bearer('boss', [ADMIN_SCOPE]), '{}');
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ approval: { id, status: 'approved', approver: 'boss' } });

        // withdrawing is always allowed: the requester may deny their own request
        const other = await pending('/v1/refunds/4');
        res = await post(`/approvals/${other}/deny`, aliceAdmin);
        expect(res.status).toBe(200);
        expect((await parts.approvals.get(other))?.status).toBe('denied');
      });

      it('an approver sees what is bound: method, host, path and hashes of query and body, never their values', async () => {
        const check = await parts.approvals.check({
          agentId: 'agent', userId: 'carol', tool: 'stripe', method: 'POST', path: '/v1/refunds/5', query: '?card=4242424242424242',
          bodySha256: 'ab'.repeat(32), host: 'api.stripe.com', description: 'Refund 20 EUR on ch_5',
        });
        const res = await get(`/approvals/${check.id}`, await bearer('boss', [ADMIN_SCOPE]));
        const text = await res.text();
        expect(res.status).toBe(200);
        const { createHash } = await import('node:crypto');
        expect(JSON.parse(text)).toMatchObject({
          approval: {
            summary: {
              agentId: 'agent', userId: 'carol', tool: 'stripe', method: 'POST', host: 'api.stripe.com', path: '/v1/refunds/5',
              querySha256: createHash('sha256').update('card=4242424242424242').digest('hex'), bodySha256: 'ab'.repeat(32), description: 'Refund 20 EUR on ch_5',
            },
          },
        });
        expect(text).not.toContain('4242424242424242');
      });

      it('admin denies (no body); bad bodies, unknown ids and decided approvals are refused', async () => {
        const admin = await bearer('boss', [ADMIN_SCOPE]);
        const id = await pending('/v1/refunds/2');
        let res = await post(`/approvals/${id}/approve`, admin, '{"ttlSeconds":-1}');
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ error: 'REQUEST_INVALID' });
        res = await post(`/approvals/${id}/approve`, admin, '{"approver":"someone-else"}');
        expect(res.status).toBe(400);
        res = await post(`/approvals/${id}/approve`, admin, 'not json');
        expect(res.status).toBe(400);
        res = await post(`/approvals/${id}/approve`, admin, JSON.stringify({ pad: 'x'.repeat(20_000) }));
        expect([400, 413]).toContain(res.status);
        expect((await parts.approvals.get(id))?.status).toBe('pending');

        res = await post(`/approvals/${id}/deny`, admin);
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ approval: { id, status: 'denied', approver: 'boss' } });
        res = await post(`/approvals/${id}/approve`, admin, '{}');
        expect(res.status).toBe(400);
        expect((await parts.approvals.get(id))?.status).toBe('denied');

        res = await post('/approvals/apr_doesnotexist0000000000/approve', admin, '{}');
        expect(res.status).toBe(404);
        res = await post('/approvals/..%2Fx/approve', admin, '{}');
        expect(res.status).toBe(404);
      });

      it('deny with { reason } keeps the reason on the record; a reason that is not a short string is refused', async () => {
        const admin = await bearer('boss', [ADMIN_SCOPE]);
        const id = await pending('/v1/refunds/deny-reason');
        let res = await post(`/approvals/${id}/deny`, admin, JSON.stringify({ reason: 42 }));
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ error: 'REQUEST_INVALID' });
        res = await post(`/approvals/${id}/deny`, admin, JSON.stringify({ reason: 'x'.repeat(5_000) }));
        expect(res.status).toBe(400);
        expect((await parts.approvals.get(id))?.status).toBe('pending');
        res = await post(`/approvals/${id}/deny`, admin, JSON.stringify({ reason: 'Refunds over 500 EUR need a ticket' }));
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ approval: { id, status: 'denied', approver: 'boss', reason: 'Refunds over 500 EUR need a ticket' } });
        expect(await parts.approvals.get(id)).toMatchObject({ status: 'denied', reason: 'Refunds over 500 EUR need a ticket' });
      });
    });
  });
}

/** Adapt a Node listener-producing app (Express app, @hono/node-server listener) to the suite. */
export type Listener = (req: IncomingMessage, res: ServerResponse) => void;
