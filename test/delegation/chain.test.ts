/**
 * Delegation end to end, over loopback HTTP, with a real oidc-provider as the token-exchange service:
 *
 *   client ──(alice's token, aud A)──▶ agent A (Express + agentAuth)
 *     ──toolFetch, tokenExchange──▶ agent B (Hono + agentAuth, aud B)
 *       ──toolFetch, apiKey──▶ search index (records what it receives)
 *
 * Agent A's identity at the identity provider is its own client (client credentials at the token
 * endpoint): the provider names the authenticated client in the new token's `act` claim.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import { Hono } from 'hono';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { agentAuth as expressAgentAuth } from '../../src/adapters/express.js';
import { agentAuth as honoAgentAuth } from '../../src/adapters/hono.js';
import { createTokenManager, createToolFetch, createVerifier, memoryAudit, renderError, type AuditEvent, type ToolFetch } from '../../src/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const A_AUD = 'https://agent-a.example.test';
const B_AUD = 'https://agent-b.example.test';
const INDEX_KEY = 'idx_live_5f2c9a7e41b0';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ALICE = 'alice@example.com';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
}
/** What agent B's handler saw of its caller. */
interface SeenByB {
  userId: string | undefined;
  endUserHeader: string | undefined;
  actorChain: string[];
  scopes: string[];
  rawToken: string;
}

let idp: TestIdentityProvider;
let indexServer: Server;
let agentA: Server;
let agentB: ReturnType<typeof serve>;
let aUrl: string;
let bUrl: string;
let rogueFetch: ToolFetch;
let rogueVerifier: ReturnType<typeof createVerifier>;
const audit = memoryAudit();
const received: Received[] = [];
const seenByB: SeenByB[] = [];
let bRequests = 0;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const clientA = await idp.registerClient({ client_id: 'agent-a' });
  const rogue = await idp.registerClient({ client_id: 'rogue-agent' });

  // ---- the tool at the end of the chain: wants its API key, records everything it receives ----------
  indexServer = createServer((req, res) => {
    received.push({ path: req.url ?? '', headers: req.headers });
    if (req.headers['x-api-key'] !== INDEX_KEY) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ results: ['doc-1', 'doc-2'], forUser: req.headers['x-end-user-id'] }));
  });
  const indexUrl = await listen(indexServer);

  // ---- agent B (Hono): accepts only tokens for B; may use the index only on behalf of agent A -------
  const bFetch = createToolFetch({
    agent: { id: 'agent-b' },
    tools: [
      {
        name: 'search-index',
        baseUrl: `${indexUrl}/index`,
        auth: { type: 'apiKey', key: INDEX_KEY, header: 'X-API-Key' },
        capabilities: [{ method: 'GET', path: '/index/search' }],
      },
    ],
    // Allow only when every agent in the delegation chain is one we trust.
    policies: [{ agent: 'agent-b', tool: 'search-index', actors: ['agent-a', 'orchestrator'] }],
    audit,
  });
  // Listen first: B also accepts tokens whose audience is its own URL (RFC 8707 resource).
  let b: Hono | undefined;
  agentB = serve({ fetch: (request, env) => (b as Hono).fetch(request, env), port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => agentB.once('listening', resolve));
  bUrl = `http://127.0.0.1:${(agentB.address() as AddressInfo).port}`;
  const bVerifier = createVerifier({
    providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [B_AUD, bUrl], maxDelegationDepth: 2 }],
    audit,
  });
  b = new Hono();
  b.use('*', async (_c, next) => {
    bRequests++;
    await next();
  });
  b.use('*', honoAgentAuth(bVerifier, { requiredScopes: ['search:read'] }));
  const search = async (c: import('hono').Context): Promise<Response> => {
    const ctx = c.get('agentContext');
    seenByB.push({
      userId: ctx.userId,
      endUserHeader: c.req.header('x-end-user-id'),
      actorChain: ctx.actorChain.map((a) => a.subject),
      scopes: [...ctx.scopes],
      rawToken: (c.req.header('authorization') ?? '').replace(/^Bearer /, ''),
    });
    try {
      const upstream = await bFetch(`${indexUrl}/index/search?q=${encodeURIComponent(c.req.query('q') ?? '')}`);
      return c.json(await upstream.json(), upstream.status as 200);
    } catch (error) {
      const r = renderError(error);
      return c.json(r.body, r.status as 403);
    }
  };
  b.get('/search', search);
  b.get('/admin/reindex', search);
  b.get('/by-resource/search', search);
  b.get('/notes/search', search);

  // ---- agent A (Express): calls B with a token exchanged for B's audience --------------------------
  const tokensA = createTokenManager({
    connections: [{ id: 'idp', issuer: idp.issuer, clientId: clientA.client_id, clientSecret: clientA.client_secret as string }],
    audit,
  });
  const aFetch = createToolFetch({
    agent: { id: 'agent-a' },
    tools: [
      { name: 'agent-b', baseUrl: `${bUrl}/search`, auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read'] } },
      {
        name: 'agent-b-admin',
        baseUrl: `${bUrl}/admin`,
        auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read', 'search:admin'] },
      },
      // RFC 8707: name B by its URL instead of an audience string.
      { name: 'agent-b-resource', baseUrl: `${bUrl}/by-resource`, auth: { type: 'tokenExchange', connection: 'idp', resource: bUrl, scopes: ['search:read'] } },
      // A delegation that narrows to a scope B does not accept.
      { name: 'agent-b-notes', baseUrl: `${bUrl}/notes`, auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['notes:write'] } },
    ],
    policies: [{ agent: 'agent-a', tool: '*' }],
    tokens: tokensA,
    audit,
  });
  const a = express();
  a.use(expressAgentAuth(createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [A_AUD] }], audit })));
  const ask = (target: string): express.RequestHandler => async (req, res) => {
    try {
      const upstream = await aFetch(`${bUrl}${target}?q=${encodeURIComponent(String(req.query.q ?? ''))}`);
      res.status(upstream.status).json(await upstream.json());
    } catch (error) {
      const r = renderError(error);
      res.status(r.status).set(r.headers).json(r.body);
    }
  };
  a.get('/ask', ask('/search'));
  a.get('/ask-admin', ask('/admin/reindex'));
  a.get('/ask-by-resource', ask('/by-resource/search'));
  a.get('/ask-notes', ask('/notes/search'));
  agentA = createServer(a);
  aUrl = await listen(agentA);

  // ---- an agent B does not trust, with a valid client of its own at the same identity provider -------
  const rogueTokens = createTokenManager({
    connections: [{ id: 'idp', issuer: idp.issuer, clientId: rogue.client_id, clientSecret: rogue.client_secret as string }],
  });
  rogueFetch = createToolFetch({
    agent: { id: 'rogue-agent' },
    tools: [{ name: 'agent-b', baseUrl: bUrl, auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read'] } }],
    policies: [{ agent: 'rogue-agent', tool: 'agent-b' }],
    tokens: rogueTokens,
  });
  rogueVerifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [A_AUD] }] });
}, 60_000);

afterAll(async () => {
  await Promise.all([close(agentA), close(agentB as unknown as Server), close(indexServer), idp?.close()]);
});

beforeEach(() => {
  audit.clear();
  received.length = 0;
  seenByB.length = 0;
  bRequests = 0;
  idp.resetStats();
});

function userToken(options: { scopes?: string[]; act?: Record<string, unknown>; claims?: Record<string, unknown> } = {}): Promise<string> {
  return idp.tokenFor({
    userId: ALICE,
    scopes: options.scopes ?? ['search:read', 'notes:write'],
    audience: A_AUD,
    ...(options.act ? { act: options.act } : {}),
    ...(options.claims ? { claims: options.claims } : {}),
  });
}

async function ask(token: string, path = '/ask', extra: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${aUrl}${path}?q=iam`, { headers: { authorization: `Bearer ${token}`, ...extra } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const events = (type: AuditEvent['type'], agentId?: string): AuditEvent[] =>
  audit.events.filter((e) => e.type === type && (agentId === undefined || e.agentId === agentId));

/** One line of the trail: which user, through which agents, called which tool. */
const trail = (e: AuditEvent): string => [e.userId, ...[...(e.actorChain ?? [])].reverse(), e.agentId, e.tool].join(' → ');

describe('delegation: client → agent A → (token exchange) → agent B → tool', () => {
  it('B gets its own token: same user as sub, A named in act, aud = B, only the requested scopes', async () => {
    const token = await userToken();
    const { status, body } = await ask(token, '/ask', { 'x-end-user-id': 'mallory@example.com' });
    expect(status).toBe(200);
    expect(body).toEqual({ results: ['doc-1', 'doc-2'], forUser: ALICE });
    expect(idp.stats.token[EXCHANGE]).toBe(1);

    expect(seenByB).toHaveLength(1);
    const seen = seenByB[0]!;
    expect(seen.rawToken).not.toBe(token); // A's inbound token never leaves A
    const claims = decodeJwt(seen.rawToken);
    expect(claims.sub).toBe(ALICE);
    expect(claims.act).toEqual({ sub: 'agent-a' });
    expect(claims.aud).toBe(B_AUD);
    expect(claims.scope).toBe('search:read'); // notes:write stayed behind
    expect(seen).toMatchObject({ userId: ALICE, endUserHeader: ALICE, actorChain: ['agent-a'], scopes: ['search:read'] });

    // The tool gets B's API key and the user, never a bearer token of any hop.
    expect(received).toHaveLength(1);
    expect(received[0]!.path).toBe('/index/search?q=iam');
    expect(received[0]!.headers['x-api-key']).toBe(INDEX_KEY);
    expect(received[0]!.headers['x-end-user-id']).toBe(ALICE);
    expect(received[0]!.headers.authorization).toBeUndefined();
  });

  it('an earlier act is nested under A, and B sees the whole chain (most recent actor first)', async () => {
    const { status } = await ask(await userToken({ act: { sub: 'orchestrator' } }));
    expect(status).toBe(200);
    expect(decodeJwt(seenByB[0]!.rawToken).act).toEqual({ sub: 'agent-a', act: { sub: 'orchestrator' } });
    expect(seenByB[0]!.actorChain).toEqual(['agent-a', 'orchestrator']);
    expect(received).toHaveLength(1);
  });

  it('asking for more scopes than the incoming token holds is SCOPE_ESCALATION, and nothing is sent', async () => {
    const { status, body } = await ask(await userToken(), '/ask-admin');
    expect(status).toBe(403);
    expect(body.error).toBe('SCOPE_ESCALATION');
    expect(idp.stats.token[EXCHANGE]).toBeUndefined(); // refused before the identity provider is asked
    expect(bRequests).toBe(0);
    expect(received).toHaveLength(0);
    // A refusal, not a failure: recorded as a denial by the token manager and by toolFetch.
    expect(events('token.exchange')).toEqual([expect.objectContaining({ decision: 'deny', code: 'SCOPE_ESCALATION', userId: ALICE, connection: 'idp' })]);
    expect(events('tool.request', 'agent-a')).toEqual([
      expect.objectContaining({ decision: 'deny', tool: 'agent-b-admin', userId: ALICE, code: 'SCOPE_ESCALATION' }),
    ]);
  });

  it('RFC 8707: a tool that names B by resource gets a token whose aud is B’s URL', async () => {
    const { status } = await ask(await userToken(), '/ask-by-resource');
    expect(status).toBe(200);
    const claims = decodeJwt(seenByB[0]!.rawToken);
    expect(claims).toMatchObject({ sub: ALICE, aud: bUrl, scope: 'search:read', act: { sub: 'agent-a' } });
    expect(received).toHaveLength(1);
  });

  it('a narrowed token is only as good as what it kept: B refuses one without its required scope', async () => {
    const { status, body } = await ask(await userToken(), '/ask-notes');
    expect(status).toBe(403);
    expect(body.error).toBe('INSUFFICIENT_SCOPE');
    expect(idp.stats.token[EXCHANGE]).toBe(1);
    expect(seenByB).toHaveLength(0);
    expect(received).toHaveLength(0);
  });

  it('a user token whose may_act names another agent cannot be exchanged by A (RFC 8693 §4.4)', async () => {
    const { status, body } = await ask(await userToken({ claims: { may_act: { sub: 'agent-z' } } }));
    expect(status).toBe(502);
    expect(body).toMatchObject({ error: 'OAUTH_ERROR', oauthError: 'invalid_grant' });
    expect(bRequests).toBe(0);
    expect(events('token.exchange')).toEqual([expect.objectContaining({ decision: 'error', code: 'OAUTH_ERROR', userId: ALICE })]);
    // ...while one that names agent-a goes through.
    expect((await ask(await userToken({ claims: { may_act: { sub: 'agent-a' } } }))).status).toBe(200);
  });

  it('a user without the scope cannot have it delegated either', async () => {
    const { status, body } = await ask(await userToken({ scopes: ['notes:write'] }));
    expect(status).toBe(403);
    expect(body.error).toBe('SCOPE_ESCALATION');
    expect(bRequests).toBe(0);
  });

  it('a chain deeper than B’s maxDelegationDepth is rejected by B, and the tool is never called', async () => {
    // A accepts depth 2 (default maxDelegationDepth 4); after A's exchange the chain is 3 deep.
    const { status, body } = await ask(await userToken({ act: { sub: 'orchestrator', act: { sub: 'planner' } } }));
    expect(status).toBe(401);
    expect(body.error).toBe('TOKEN_MALFORMED');
    expect(bRequests).toBe(1);
    expect(seenByB).toHaveLength(0);
    expect(received).toHaveLength(0);
    const verifications = events('inbound.verify');
    expect(verifications.map((e) => e.decision)).toEqual(['allow', 'deny']); // A accepted, B refused
    expect(verifications[0]!.actorChain).toEqual(['orchestrator', 'planner']);
    expect(verifications[1]!.code).toBe('TOKEN_MALFORMED');
  });

  it('a chain deeper than A’s default depth (4) is rejected at A before any exchange', async () => {
    const act = { sub: 'a1', act: { sub: 'a2', act: { sub: 'a3', act: { sub: 'a4', act: { sub: 'a5' } } } } };
    const { status, body } = await ask(await userToken({ act }));
    expect(status).toBe(401);
    expect(body.error).toBe('TOKEN_MALFORMED');
    expect(idp.stats.token[EXCHANGE]).toBeUndefined();
    expect(bRequests).toBe(0);
  });

  it('B’s policy restricts which agents may appear in the chain (actors)', async () => {
    const token = await userToken();
    // An agent B does not list: its token for B is valid, but B may not use the tool for it.
    const ctx = await rogueVerifier.verify({ headers: { authorization: `Bearer ${token}` } });
    const res = await rogueFetch(`${bUrl}/search?q=iam`, { context: ctx });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('POLICY_DENIED');
    expect(seenByB[0]!.actorChain).toEqual(['rogue-agent']);
    expect(received).toHaveLength(0);
    expect(events('tool.request', 'agent-b')).toEqual([
      expect.objectContaining({ decision: 'deny', code: 'POLICY_DENIED', userId: ALICE, actorChain: ['rogue-agent'], tool: 'search-index' }),
    ]);

    // A trusted agent behind an untrusted one is not enough: every actor must be listed.
    const via = await ask(await userToken({ act: { sub: 'rogue-agent' } }));
    expect(via.status).toBe(403);
    expect(via.body.error).toBe('POLICY_DENIED');
    expect(seenByB[1]!.actorChain).toEqual(['agent-a', 'rogue-agent']);

    // And a user calling B directly (no chain at all) does not match a rule that names actors.
    const direct = await fetch(`${bUrl}/search?q=iam`, {
      headers: { authorization: `Bearer ${await idp.tokenFor({ userId: ALICE, scopes: ['search:read'], audience: B_AUD })}` },
    });
    expect(direct.status).toBe(403);
    expect(received).toHaveLength(0);
  });

  it('every hop’s audit events carry the chain: the log says which user, through which agents, called which tool', async () => {
    const token = await userToken({ act: { sub: 'orchestrator' } });
    expect((await ask(token)).status).toBe(200);
    const log = audit.events;

    // inbound at A, token exchange at A, A → B, inbound at B, B → tool
    expect(log.map((e) => e.type).sort()).toEqual(['inbound.verify', 'inbound.verify', 'token.exchange', 'tool.request', 'tool.request']);
    const [inA, inB] = events('inbound.verify');
    expect(inA).toMatchObject({ decision: 'allow', userId: ALICE, actorChain: ['orchestrator'] });
    expect(inB).toMatchObject({ decision: 'allow', userId: ALICE, actorChain: ['agent-a', 'orchestrator'] });
    expect(events('token.exchange')[0]).toMatchObject({ decision: 'allow', userId: ALICE, actorChain: ['orchestrator'], connection: 'idp', requestId: inA!.requestId });

    const [aToB] = events('tool.request', 'agent-a');
    const [bToTool] = events('tool.request', 'agent-b');
    expect(aToB).toMatchObject({ decision: 'allow', tool: 'agent-b', userId: ALICE, actorChain: ['orchestrator'], status: 200, requestId: inA!.requestId });
    expect(bToTool).toMatchObject({ decision: 'allow', tool: 'search-index', userId: ALICE, actorChain: ['agent-a', 'orchestrator'], status: 200, requestId: inB!.requestId });
    expect(trail(aToB!)).toBe(`${ALICE} → orchestrator → agent-a → agent-b`);
    expect(trail(bToTool!)).toBe(`${ALICE} → orchestrator → agent-a → agent-b → search-index`);

    // No token, key or query value of any hop is in the log.
    const text = JSON.stringify(log);
    expect(text).not.toContain(token);
    expect(text).not.toContain(seenByB[0]!.rawToken);
    expect(text).not.toContain(INDEX_KEY);
    expect(text).not.toContain('q=iam');
  });
});
