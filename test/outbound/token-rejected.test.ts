/**
 * A tool that answers 401 to a cached service token (revoked, say) makes toolFetch forget exactly
 * that token, so the next call obtains a fresh one; no retry inside the call; another user's (or
 * subject token's) entry is never touched. Real oidc-provider, real token manager, real upstream
 * on 127.0.0.1 that rejects the tokens the test "revokes".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTokenManager, createToolFetch, createVerifier, type TokenManager, type ToolDefinition } from '../../src/index.js';
import { createTestIdentityProvider, type RegisteredClient, type TestIdentityProvider } from '../../src/testing/index.js';
import type { AgentContext } from '../../src/context.js';
import { DROP_REJECTED_TOKEN } from '../../src/tokens/types.js';
import { startUpstream, type Upstream } from './upstream.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const A_AUD = 'https://agent-a.example.test';
const B_AUD = 'https://agent-b.example.test';

let idp: TestIdentityProvider;
let client: RegisteredClient;
let upstream: Upstream;
/** Tokens the upstream refuses, and the challenge it sends with the 401. */
const revoked = new Set<string>();
let challenge: string | undefined = 'Bearer error="invalid_token", error_description="revoked"';

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  client = await idp.registerClient({ client_id: 'gateway' });
  upstream = await startUpstream();
  const reject = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (revoked.has(token)) {
      res.writeHead(401, challenge === undefined ? {} : { 'www-authenticate': challenge }).end('{}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
  };
  upstream.route('/data', reject);
}, 60_000);

afterAll(async () => {
  await Promise.all([upstream?.close(), idp?.close()]);
});

beforeEach(() => {
  revoked.clear();
  upstream.clear();
  idp.resetStats();
  challenge = 'Bearer error="invalid_token", error_description="revoked"';
});

function manager(): TokenManager {
  return createTokenManager({ connections: [{ id: 'idp', issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string }] });
}

function toolFetchFor(tokens: TokenManager, auth: ToolDefinition['auth']) {
  return createToolFetch({ agent: { id: 'agent-a' }, tools: [{ name: 'up', baseUrl: upstream.origin, auth }], policies: [{ agent: 'agent-a', tool: 'up' }], tokens });
}

const sentTokens = (): string[] => upstream.received.map((r) => String(r.headers.authorization).replace(/^Bearer /, ''));
const grants = (name: string): number => idp.stats.token[name] ?? 0;

async function call(toolFetch: ReturnType<typeof toolFetchFor>, init: RequestInit & { context?: AgentContext } = {}): Promise<number> {
  const res = await toolFetch(`${upstream.origin}/data`, init);
  await res.arrayBuffer();
  return res.status;
}

describe('clientCredentials: a rejected cached token is dropped', () => {
  it('401 invalid_token: returned as is, not retried; the next call obtains a fresh token', async () => {
    const tokens = manager();
    const toolFetch = toolFetchFor(tokens, { type: 'clientCredentials', connection: 'idp' });
    expect(await call(toolFetch)).toBe(200);
    expect(await call(toolFetch)).toBe(200);
    expect(grants('client_credentials')).toBe(1);
    const first = sentTokens()[0] as string;
    revoked.add(first);

    // A POST with a body: the 401 reaches the caller, and nothing is sent twice.
    expect(await call(toolFetch, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } })).toBe(401);
    expect(upstream.received).toHaveLength(3);
    expect(grants('client_credentials')).toBe(1);

    expect(await call(toolFetch)).toBe(200);
    expect(grants('client_credentials')).toBe(2);
    const fresh = sentTokens()[3] as string;
    expect(fresh).not.toBe(first);
    // ...and the fresh token is cached again.
    expect(await call(toolFetch)).toBe(200);
    expect(grants('client_credentials')).toBe(2);
    expect(sentTokens()[4]).toBe(fresh);
  });

  it('a bare 401 (no WWW-Authenticate) also drops the token', async () => {
    challenge = undefined;
    const tokens = manager();
    const toolFetch = toolFetchFor(tokens, { type: 'clientCredentials', connection: 'idp' });
    expect(await call(toolFetch)).toBe(200);
    revoked.add(sentTokens()[0] as string);
    expect(await call(toolFetch)).toBe(401);
    expect(await call(toolFetch)).toBe(200);
    expect(grants('client_credentials')).toBe(2);
  });

  it('a 401 that blames the request (insufficient_scope, invalid_request) keeps the token', async () => {
    for (const c of ['Bearer error="insufficient_scope", scope="admin"', 'Bearer realm="x", error="invalid_request"']) {
      challenge = c;
      revoked.clear();
      upstream.clear();
      idp.resetStats();
      const tokens = manager();
      const toolFetch = toolFetchFor(tokens, { type: 'clientCredentials', connection: 'idp' });
      expect(await call(toolFetch)).toBe(200);
      const token = sentTokens()[0] as string;
      revoked.add(token);
      expect(await call(toolFetch)).toBe(401);
      expect(await call(toolFetch)).toBe(401);
      expect(grants('client_credentials')).toBe(1);
      expect(sentTokens()).toEqual([token, token, token]);
    }
  });

  it('a 401 after the entry was refreshed does not drop the new token (compare-and-delete)', async () => {
    const tokens = manager();
    const toolFetch = toolFetchFor(tokens, { type: 'clientCredentials', connection: 'idp' });
    expect(await call(toolFetch)).toBe(200);
    const first = sentTokens()[0] as string;
    revoked.add(first);
    // Two calls in flight with the same old token: both get 401, only the first drop removes it.
    const statuses = await Promise.all([call(toolFetch), call(toolFetch)]);
    expect(statuses).toEqual([401, 401]);
    expect(await call(toolFetch)).toBe(200);
    const second = sentTokens()[3] as string;
    expect(second).not.toBe(first);
    expect(grants('client_credentials')).toBe(2);
    // A late rejection of the OLD token (a slow call) must not evict the fresh entry.
    expect(tokens[DROP_REJECTED_TOKEN]?.({ kind: 'clientCredentials', options: { connection: 'idp' } }, first)).toBe(false);
    expect(await call(toolFetch)).toBe(200);
    expect(sentTokens()[4]).toBe(second);
    expect(grants('client_credentials')).toBe(2);
  });
});

describe('tokenExchange: a rejected token is dropped for that subject only', () => {
  it("bob's 401 drops bob's entry; alice keeps her cached token", async () => {
    const verifyA = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [A_AUD] }] });
    const userContext = async (userId: string): Promise<AgentContext> => {
      const token = await idp.tokenFor({ userId, scopes: ['search:read'], audience: A_AUD });
      return verifyA.verify({ headers: { authorization: `Bearer ${token}` } });
    };
    const tokens = manager();
    const toolFetch = toolFetchFor(tokens, { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read'] });
    const alice = await userContext('alice');
    const bob = await userContext('bob');
    expect(await call(toolFetch, { context: alice })).toBe(200);
    expect(await call(toolFetch, { context: bob })).toBe(200);
    expect(grants(EXCHANGE)).toBe(2);
    const [aliceToken, bobToken] = sentTokens() as [string, string];
    expect(aliceToken).not.toBe(bobToken);

    revoked.add(bobToken);
    expect(await call(toolFetch, { context: bob })).toBe(401);
    // Alice: still the cached token, no new exchange.
    expect(await call(toolFetch, { context: alice })).toBe(200);
    expect(sentTokens()[3]).toBe(aliceToken);
    expect(grants(EXCHANGE)).toBe(2);
    // Bob: a fresh exchange.
    expect(await call(toolFetch, { context: bob })).toBe(200);
    expect(grants(EXCHANGE)).toBe(3);
    expect(sentTokens()[4]).not.toBe(bobToken);

    // Bob's old token, named with alice's options, drops nothing of alice's.
    const aliceOptions = { connection: 'idp', context: alice, audience: B_AUD, scopes: ['search:read'] };
    expect(tokens[DROP_REJECTED_TOKEN]?.({ kind: 'tokenExchange', options: aliceOptions }, bobToken)).toBe(false);
    expect(await call(toolFetch, { context: alice })).toBe(200);
    expect(sentTokens()[5]).toBe(aliceToken);
    expect(grants(EXCHANGE)).toBe(3);
  });
});

// toolFetch's URL fast path (plain URLs skip the step-by-step checks) must accept nothing the full
// checks refuse, and parse to the same URL. Kept here with the other toolFetch throughput change.
