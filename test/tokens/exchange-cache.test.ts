/**
 * The token-exchange cache, end to end over loopback with the real test identity provider:
 *
 *   test ──(user context verified at A)──▶ toolFetch (agent A, tokenExchange tool)
 *     ──▶ agent B (a loopback server that verifies the bearer with the IdP's JWKS and records it)
 *
 * The IdP's own request counters are the ground truth for how many exchanges happened.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { attachRawToken, type AgentContext } from '../../src/context.js';
import { createTokenManager, createToolFetch, createVerifier, memoryAudit, type TokenManager, type TokenManagerOptions, type ToolDefinition } from '../../src/index.js';
import { createTestIdentityProvider, type RegisteredClient, type TestIdentityProvider } from '../../src/testing/index.js';
import { sha256Hex } from '../../src/lib/encoding.js';
import { sha256HexSync } from '../../src/lib/sha256.js';
import { testClock } from '../helpers/clock.js';
import { expectCode } from './helpers.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const A_AUD = 'https://agent-a.example.test';
const B_AUD = 'https://agent-b.example.test';
const C_AUD = 'https://agent-c.example.test';
const SHORT_AUD = 'https://short-lived.example.test';
const SCOPES = ['search:read', 'search:write', 'notes:read'];

interface Seen {
  sub: unknown;
  endUser: string | undefined;
  token: string;
  act: unknown;
}

let idp: TestIdentityProvider;
let gateway: RegisteredClient;
let agentClient: RegisteredClient;
let bServer: Server;
let bUrl: string;
const seen: Seen[] = [];
const verifierA = () => createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [A_AUD] }] });
let verifyA: ReturnType<typeof verifierA>;

beforeAll(async () => {
  idp = await createTestIdentityProvider({ resources: { [SHORT_AUD]: { accessTokenTtl: 2 } } });
  // The client agent A authenticates with at the token endpoint, and the client whose own
  // (client-credentials) token is sent as actor_token: distinct, so `act` shows which one was used.
  gateway = await idp.registerClient({ client_id: 'exchange-gateway' });
  agentClient = await idp.registerClient({ client_id: 'agent-a' });
  const verifierB = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [B_AUD, C_AUD, SHORT_AUD] }] });
  bServer = createServer((req, res) => {
    void (async () => {
      try {
        const ctx = await verifierB.verify({ headers: req.headers as Record<string, string> });
        const token = String(req.headers.authorization).replace(/^Bearer /, '');
        const claims = decodeJwt(token);
        seen.push({ sub: claims.sub, endUser: req.headers['x-end-user-id'] as string | undefined, token, act: claims.act });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ user: ctx.userId }));
      } catch {
        res.writeHead(401).end('{}');
      }
    })();
  });
  await new Promise<void>((resolve) => bServer.listen(0, '127.0.0.1', resolve));
  bUrl = `http://127.0.0.1:${(bServer.address() as AddressInfo).port}`;
  verifyA = verifierA();
}, 60_000);

afterAll(async () => {
  bServer?.closeAllConnections();
  await Promise.all([new Promise((r) => bServer?.close(r)), idp?.close()]);
});

beforeEach(() => {
  seen.length = 0;
  idp.resetStats();
});

function manager(extra: Partial<TokenManagerOptions> = {}): TokenManager {
  return createTokenManager({
    connections: [
      { id: 'idp', issuer: idp.issuer, clientId: gateway.client_id, clientSecret: gateway.client_secret as string },
      { id: 'self', issuer: idp.issuer, clientId: agentClient.client_id, clientSecret: agentClient.client_secret as string },
    ],
    ...extra,
  });
}

function toolFetchFor(tokens: TokenManager, auth: Partial<Extract<ToolDefinition['auth'], { type: 'tokenExchange' }>> = {}) {
  return createToolFetch({
    agent: { id: 'agent-a' },
    tools: [{ name: 'agent-b', baseUrl: bUrl, auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read'], ...auth } }],
    policies: [{ agent: 'agent-a', tool: 'agent-b' }],
    tokens,
  });
}

/** A user's context as agent A's verifier produces it from a fresh token. */
async function userContext(userId: string, options: { expiresIn?: number; scopes?: string[] } = {}): Promise<{ ctx: AgentContext; token: string }> {
  const token = await idp.tokenFor({ userId, scopes: options.scopes ?? SCOPES, audience: A_AUD, ...(options.expiresIn !== undefined ? { expiresIn: options.expiresIn } : {}) });
  return { ctx: await verifyA.verify({ headers: { authorization: `Bearer ${token}` } }), token };
}

const exchanges = (): number => idp.stats.token[EXCHANGE] ?? 0;

/**
 * Move the time of the whole process (the IdP's too, which must see a token expire) to `ms`: only
 * `Date` is faked, timers stay real. Until the test ends.
 */
function jumpTo(ms: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  onTestFinished(() => void vi.useRealTimers());
  vi.setSystemTime(ms);
}

describe('token exchange cache through toolFetch', () => {
  it('100 sequential then 100 concurrent calls by one user: one exchange at the IdP', async () => {
    const audit = memoryAudit();
    const tokens = manager({ audit });
    const toolFetch = toolFetchFor(tokens);
    const { ctx, token } = await userContext('alice');
    for (let i = 0; i < 100; i++) {
      const res = await toolFetch(`${bUrl}/search?i=${i}`, { context: ctx });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(exchanges()).toBe(1);
    const statuses = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await toolFetch(`${bUrl}/search?c=${i}`, { context: ctx });
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(exchanges()).toBe(1);
    expect(seen).toHaveLength(200);
    expect(new Set(seen.map((s) => s.token)).size).toBe(1);
    expect(seen[0]!.token).not.toBe(token);
    expect(seen.every((s) => s.sub === 'alice' && s.endUser === 'alice')).toBe(true);
    // One token.exchange event: it records the exchange at the IdP; cache hits are not exchanges.
    expect(audit.events.filter((e) => e.type === 'token.exchange')).toHaveLength(1);
    expect(JSON.stringify(audit.events)).not.toContain(token);
  });

  it('concurrent first calls share one exchange (single flight)', async () => {
    const tokens = manager();
    const { ctx } = await userContext('alice');
    const results = await Promise.all(Array.from({ length: 100 }, () => tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read'] })));
    expect(exchanges()).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
  });

  it('two users never share a cached token, even interleaved and concurrent', async () => {
    const tokens = manager();
    const toolFetch = toolFetchFor(tokens);
    const alice = await userContext('alice');
    const bob = await userContext('bob');
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const who = i % 2 === 0 ? alice : bob;
        const res = await toolFetch(`${bUrl}/search?i=${i}`, { context: who.ctx });
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ user: who.ctx.userId });
      }),
    );
    expect(exchanges()).toBe(2);
    expect(seen).toHaveLength(60);
    for (const s of seen) expect(s.sub).toBe(s.endUser);
    const byUser = new Map<unknown, Set<string>>();
    for (const s of seen) byUser.set(s.sub, (byUser.get(s.sub) ?? new Set()).add(s.token));
    expect(byUser.get('alice')?.size).toBe(1);
    expect(byUser.get('bob')?.size).toBe(1);
    expect([...byUser.get('alice')!][0]).not.toBe([...byUser.get('bob')!][0]);
  });

  it('the key is the subject token, not the user: a new token of the same user is a new exchange', async () => {
    const tokens = manager();
    const first = await userContext('alice');
    const second = await userContext('alice');
    expect(second.token).not.toBe(first.token);
    const a = await tokens.exchange({ connection: 'idp', context: first.ctx, audience: B_AUD, scopes: ['search:read'] });
    const b = await tokens.exchange({ connection: 'idp', context: second.ctx, audience: B_AUD, scopes: ['search:read'] });
    expect(exchanges()).toBe(2);
    expect(b.accessToken).not.toBe(a.accessToken);
    // ...and the subject token passed directly (not from a context) hits the same entry as its context.
    const c = await tokens.exchange({ connection: 'idp', subjectToken: first.token, audience: B_AUD, scopes: ['search:read'] });
    expect(c.accessToken).toBe(a.accessToken);
    expect(exchanges()).toBe(2);
  });

  it('a different scope set, audience or resource is a different exchange; the same set in another order is not', async () => {
    const tokens = manager();
    const { ctx } = await userContext('alice');
    const ex = (o: { scopes: string[]; audience?: string; resource?: string }) => tokens.exchange({ connection: 'idp', context: ctx, ...o });
    const read = await ex({ scopes: ['search:read'], audience: B_AUD });
    const rw = await ex({ scopes: ['search:read', 'search:write'], audience: B_AUD });
    const wr = await ex({ scopes: ['search:write', 'search:read'], audience: B_AUD });
    expect(exchanges()).toBe(2);
    expect(wr.accessToken).toBe(rw.accessToken);
    expect(rw.accessToken).not.toBe(read.accessToken);
    expect(decodeJwt(read.accessToken).scope).toBe('search:read');
    expect(decodeJwt(rw.accessToken).scope).toBe('search:read search:write');

    const forC = await ex({ scopes: ['search:read'], audience: C_AUD });
    expect(exchanges()).toBe(3);
    expect(decodeJwt(forC.accessToken).aud).toBe(C_AUD);
    const byResource = await ex({ scopes: ['search:read'], resource: B_AUD });
    expect(exchanges()).toBe(4);
    expect(byResource.accessToken).not.toBe(read.accessToken);
    // All of them are cached now.
    await ex({ scopes: ['search:read'], audience: C_AUD });
    await ex({ scopes: ['search:read'], resource: B_AUD });
    await ex({ scopes: ['search:read'], audience: B_AUD });
    expect(exchanges()).toBe(4);
  });

  it('SCOPE_ESCALATION is checked on every call, before the cache, and audited each time', async () => {
    const audit = memoryAudit();
    const tokens = manager({ audit });
    const { ctx } = await userContext('alice', { scopes: ['search:read'] });
    await tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read'] });
    for (let i = 0; i < 3; i++) {
      await expectCode(tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read', 'search:write'] }), 'SCOPE_ESCALATION');
    }
    expect(exchanges()).toBe(1);
    expect(audit.events.filter((e) => e.type === 'token.exchange').map((e) => e.decision)).toEqual(['allow', 'deny', 'deny', 'deny']);
  });

  it('an expiring subject token is never served from the cache past its exp', async () => {
    const tokens = manager();
    const toolFetch = toolFetchFor(tokens);
    const { ctx, token } = await userContext('alice', { expiresIn: 2 });
    expect((await toolFetch(`${bUrl}/search`, { context: ctx })).status).toBe(200);
    expect((await toolFetch(`${bUrl}/search`, { context: ctx })).status).toBe(200);
    expect(exchanges()).toBe(1); // cached while the subject token lives, although the issued one lives 300 s
    const exp = (decodeJwt(token).exp as number) * 1000;
    jumpTo(exp + 50);
    // A's verifier would still admit the context inside its clock tolerance; the cache must not.
    const err = await expectCode(toolFetch(`${bUrl}/search`, { context: ctx }), 'OAUTH_ERROR');
    expect(err.oauthError).toBe('invalid_grant');
    expect(exchanges()).toBe(2); // the IdP was asked, and refused the expired subject token
    expect(seen).toHaveLength(2);
  });

  it('a failed exchange is shared by its concurrent callers and never cached', async () => {
    const audit = memoryAudit();
    const tokens = manager({ audit });
    const { ctx } = await userContext('alice');
    idp.setFault({ kind: 'invalid_grant', grantType: EXCHANGE, times: 1 });
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read'] })));
    expect(settled.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'OAUTH_ERROR')).toBe(true);
    expect(exchanges()).toBe(1);
    const ok = await tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read'] });
    expect(decodeJwt(ok.accessToken).sub).toBe('alice');
    expect(exchanges()).toBe(2);
    expect(audit.events.filter((e) => e.type === 'token.exchange').map((e) => e.decision)).toEqual(['error', 'allow']);
  });

  it('a JWT actor token bounds the entry too: not served past the actor token’s exp', async () => {
    const tokens = manager();
    const { ctx } = await userContext('alice');
    const actorToken = await idp.tokenFor({ userId: 'agent-one', audience: A_AUD, expiresIn: 2 });
    const ex = () => tokens.exchange({ connection: 'idp', context: ctx, actorToken, audience: B_AUD, scopes: ['search:read'] });
    await ex();
    await ex();
    expect(exchanges()).toBe(1);
    jumpTo((decodeJwt(actorToken).exp as number) * 1000 + 50);
    const err = await expectCode(ex(), 'OAUTH_ERROR'); // the IdP is asked again and refuses the expired actor token
    expect(err.oauthError).toBe('invalid_grant');
    expect(exchanges()).toBe(2);
  });

  it('an issued token is re-exchanged shortly before its own expiry (skew capped at half its lifetime)', async () => {
    const tokens = manager({ refreshSkewSeconds: 60 });
    const { ctx } = await userContext('alice');
    const clock = testClock(); // the token manager's clock; the IdP keeps real time
    const first = await tokens.exchange({ connection: 'idp', context: ctx, audience: SHORT_AUD, scopes: ['search:read'] });
    expect(first.expiresAt! - clock.now()).toBeLessThanOrEqual(2000);
    await tokens.exchange({ connection: 'idp', context: ctx, audience: SHORT_AUD, scopes: ['search:read'] });
    expect(exchanges()).toBe(1);
    clock.advance(1100); // past half of the 2 s lifetime
    const second = await tokens.exchange({ connection: 'idp', context: ctx, audience: SHORT_AUD, scopes: ['search:read'] });
    expect(exchanges()).toBe(2);
    expect(second.accessToken).not.toBe(first.accessToken);
  });

  it('a subject without a readable exp is not cached', async () => {
    const tokens = manager();
    const { ctx, token } = await userContext('alice');
    // A hand-built context (no verified claims): nothing bounds the subject's lifetime.
    const bare: AgentContext = Object.freeze({ ...ctx, claims: Object.freeze({}) });
    attachRawToken(bare, token);
    for (let i = 0; i < 3; i++) await tokens.exchange({ connection: 'idp', context: bare, audience: B_AUD, scopes: ['search:read'] });
    expect(exchanges()).toBe(3);
  });

  it('exchangeCache: false (or cacheSize: 0) exchanges on every call', async () => {
    for (const extra of [{ exchangeCache: false }, { cacheSize: 0 }] as Array<Partial<TokenManagerOptions>>) {
      idp.resetStats();
      const tokens = manager(extra);
      const { ctx } = await userContext('alice');
      for (let i = 0; i < 3; i++) await tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read'] });
      expect(exchanges()).toBe(3);
    }
    // An explicit size overrides cacheSize: 0.
    idp.resetStats();
    const tokens = manager({ cacheSize: 0, exchangeCache: 10 });
    const { ctx } = await userContext('alice');
    for (let i = 0; i < 3; i++) await tokens.exchange({ connection: 'idp', context: ctx, audience: B_AUD, scopes: ['search:read'] });
    expect(exchanges()).toBe(1);
  });

  it('the cache is bounded (LRU): with room for 2 entries, a third user evicts the oldest', async () => {
    const tokens = manager({ exchangeCache: 2 });
    const users = await Promise.all(['u1', 'u2', 'u3'].map((u) => userContext(u)));
    const ex = (i: number) => tokens.exchange({ connection: 'idp', context: users[i]!.ctx, audience: B_AUD, scopes: ['search:read'] });
    await ex(0);
    await ex(1);
    await ex(0); // u1 most recent
    expect(exchanges()).toBe(2);
    await ex(2); // evicts u2
    await ex(0);
    expect(exchanges()).toBe(3);
    await ex(1);
    expect(exchanges()).toBe(4);
  });

  it('rejects an invalid exchangeCache option', () => {
    expect(() => manager({ exchangeCache: -1 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => manager({ exchangeCache: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('actor token from toolFetch', () => {
  it('the agent’s own token is sent as actor_token: B sees it in act, and the exchange is still cached', async () => {
    const tokens = manager();
    let actorCalls = 0;
    const toolFetch = toolFetchFor(tokens, {
      actorToken: () => {
        actorCalls++;
        return tokens.clientCredentials({ connection: 'self', resource: A_AUD });
      },
    });
    const { ctx } = await userContext('alice');
    for (let i = 0; i < 20; i++) expect((await toolFetch(`${bUrl}/search`, { context: ctx })).status).toBe(200);
    expect(actorCalls).toBe(20);
    expect(idp.stats.token.client_credentials).toBe(1);
    expect(exchanges()).toBe(1);
    // The actor is agent A's own client (from its token), not the client that authenticated the exchange.
    expect(seen[0]!.act).toEqual({ sub: 'agent-a' });
    expect(seen[0]!.sub).toBe('alice');
    expect(new Set(seen.map((s) => s.token)).size).toBe(1);

    // Without an actor token the provider names the authenticating client: a different exchange.
    const plain = toolFetchFor(tokens);
    expect((await plain(`${bUrl}/search`, { context: ctx })).status).toBe(200);
    expect(exchanges()).toBe(2);
    expect(seen.at(-1)!.act).toEqual({ sub: 'exchange-gateway' });
  });

  it('a different actor token is a different exchange', async () => {
    const tokens = manager();
    const { ctx } = await userContext('alice');
    const actor1 = await idp.tokenFor({ userId: 'agent-one', audience: A_AUD });
    const actor2 = await idp.tokenFor({ userId: 'agent-two', audience: A_AUD });
    const ex = (actorToken: string) => tokens.exchange({ connection: 'idp', context: ctx, actorToken, audience: B_AUD, scopes: ['search:read'] });
    const one = await ex(actor1);
    await ex(actor1);
    const two = await ex(actor2);
    expect(exchanges()).toBe(2);
    expect(decodeJwt(one.accessToken).act).toEqual({ sub: 'agent-one' });
    expect(decodeJwt(two.accessToken).act).toEqual({ sub: 'agent-two' });
  });

  it('an actor token source that fails, hangs or returns garbage: TOKEN_ENDPOINT_UNAVAILABLE and nothing is sent', async () => {
    const tokens = manager();
    const { ctx } = await userContext('alice');
    const sources = [
      () => Promise.reject(new Error('vault down: secret-detail')),
      () => 'has space',
      () => ({ accessToken: '' }),
      () => undefined as unknown as string,
      () => new Promise<string>(() => {}),
    ];
    for (const actorToken of sources) {
      const toolFetch = createToolFetch({
        agent: { id: 'agent-a' },
        tools: [{ name: 'agent-b', baseUrl: bUrl, auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read'], actorToken } }],
        policies: [{ agent: 'agent-a', tool: 'agent-b' }],
        tokens,
        credentialTimeoutMs: 200,
      });
      const err = await expectCode(toolFetch(`${bUrl}/search`, { context: ctx }), 'TOKEN_ENDPOINT_UNAVAILABLE');
      expect(JSON.stringify(err) + err.message).not.toContain('secret-detail');
    }
    expect(exchanges()).toBe(0);
    expect(seen).toHaveLength(0);
  });

  it('refuses an actorToken that is not a function at construction', () => {
    expect(() =>
      createToolFetch({
        agent: { id: 'agent-a' },
        tools: [{ name: 'agent-b', baseUrl: bUrl, auth: { type: 'tokenExchange', connection: 'idp', scopes: ['search:read'], actorToken: 'raw-token' as unknown as () => string } }],
        policies: [],
        tokens: manager(),
      }),
    ).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('cache-key hash', () => {
  it('sha256HexSync equals WebCrypto SHA-256 (block boundaries, Unicode, long inputs)', async () => {
    expect(sha256HexSync('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4096, 70_000]) expect(sha256HexSync('a'.repeat(n))).toBe(await sha256Hex('a'.repeat(n)));
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 600 }), async (text) => {
        expect(sha256HexSync(text)).toBe(await sha256Hex(text));
      }),
      { numRuns: 300 },
    );
  });
});
