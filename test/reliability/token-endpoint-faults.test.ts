/**
 * The authorization server fails while many users' tokens need refreshing and toolFetch traffic
 * keeps coming: connection refused, 503, answers slower than the timeout, invalid_grant for some
 * accounts. Every failing call is a typed error within the token timeout, nothing reaches the tool
 * without a valid token, no account is corrupted, and after recovery each account is refreshed
 * exactly once by a burst of concurrent callers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { createTokenManager, createToolFetch, isAgentIamError, type AgentContext, type TokenManager, type ToolFetch } from '../../src/index.js';
import { freePort } from '../helpers/redis.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
const USERS = Array.from({ length: 24 }, (_, i) => `user-${i}`);
const TIMEOUT_MS = 700;
const SLACK_MS = 1500;

let idp: TestIdentityProvider;
let tokens: TokenManager;
let toolFetch: ToolFetch;
let upstream: Server;
let received = 0;
let asDown = false;
let deadPort = 0;

function ctx(userId: string): AgentContext {
  return { userId, subject: userId, issuer: 'https://inbound.test', scopes: [], claims: {}, actorChain: [], requestId: 'r', authenticated: true };
}

interface Burst {
  ok: number;
  codes: Record<string, number>;
  untyped: number;
  maxMs: number;
}

/** `perUser` concurrent toolFetch calls for every user at once. */
async function burst(url: string, perUser = 4): Promise<Burst> {
  const r: Burst = { ok: 0, codes: {}, untyped: 0, maxMs: 0 };
  await Promise.all(
    USERS.flatMap((u) =>
      Array.from({ length: perUser }, async () => {
        const t0 = performance.now();
        try {
          const res = await toolFetch(url, { context: ctx(u) });
          await res.arrayBuffer();
          if (res.status === 200) r.ok++;
          else r.codes[`HTTP_${res.status}`] = (r.codes[`HTTP_${res.status}`] ?? 0) + 1;
        } catch (e) {
          if (isAgentIamError(e)) r.codes[e.code] = (r.codes[e.code] ?? 0) + 1;
          else r.untyped++;
        }
        r.maxMs = Math.max(r.maxMs, performance.now() - t0);
      }),
    ),
  );
  return r;
}

/** Consent again for every account that needs it. */
async function reconnectLost(): Promise<void> {
  for (const userId of USERS) {
    if ((await tokens.getAccount({ connection: 'corp', userId }))?.status === 'active') continue;
    const { url: authUrl } = await tokens.startAuthorization({ connection: 'corp', userId });
    await tokens.completeAuthorization(await idp.authorize(authUrl, { userId }));
  }
}

async function statuses(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const u of USERS) {
    const s = (await tokens.getAccount({ connection: 'corp', userId: u }))?.status ?? 'missing';
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

let url: string;
beforeAll(async () => {
  deadPort = await freePort(); // nothing listens here: "connection refused"
  upstream = createServer((req, res) => {
    received++;
    req.resume();
    res.writeHead(req.headers.authorization?.startsWith('Bearer ') ? 200 : 401).end();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/me`;
  idp = await createTestIdentityProvider();
  const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
  // The token manager's fetch: the real one, sent to a port where nothing listens while "down".
  const routed: typeof fetch = (input, init) => {
    if (!asDown) return fetch(input, init);
    const u = new URL(input instanceof Request ? input.url : String(input));
    u.port = String(deadPort);
    return fetch(u, init);
  };
  tokens = createTokenManager({
    fetch: routed,
    timeoutMs: TIMEOUT_MS,
    retries: 1,
    refreshSkewSeconds: 3600, // longer than the token lifetime: every call needs a refresh
    connections: [{ id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'offline_access'] }],
  });
  toolFetch = createToolFetch({
    agent: { id: 'agent' },
    tools: [{ name: 'api', baseUrl: url.replace('/me', ''), auth: { type: 'oauth2', connection: 'corp' } }],
    policies: [{ agent: 'agent', tool: 'api' }],
    tokens,
  });
  await Promise.all(
    USERS.map(async (userId) => {
      const { url: authUrl } = await tokens.startAuthorization({ connection: 'corp', userId });
      await tokens.completeAuthorization(await idp.authorize(authUrl, { userId }));
    }),
  );
}, 60_000);
afterAll(async () => {
  await idp?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

describe('authorization server faults during refresh under load', () => {
  it('refused and 503: typed TOKEN_ENDPOINT_UNAVAILABLE within the timeout, nothing sent, accounts intact; one refresh per account after recovery', async () => {
    const report: Record<string, Burst & { sent: number; refreshRequests: number }> = {};
    const faults: Array<[string, () => void]> = [
      ['refused', () => void (asDown = true)],
      ['503', () => idp.setFault({ kind: '5xx' })],
    ];
    for (const [name, inject] of faults) {
      inject();
      received = 0;
      idp.resetStats();
      const r = await burst(url);
      report[name] = { ...r, sent: received, refreshRequests: idp.stats.token.refresh_token ?? 0 };
      asDown = false;
      idp.setFault(null);
    }
    // recovery: every account refreshed exactly once by its 4 concurrent callers
    received = 0;
    idp.resetStats();
    const after = await burst(url);
    console.log(`[token-endpoint-faults] ${JSON.stringify({ ...report, recovered: { ...after, sent: received, refreshes: idp.stats.token.refresh_token } })}`);
    for (const [name, r] of Object.entries(report)) {
      expect({ name, codes: r.codes, ok: r.ok, untyped: r.untyped, sent: r.sent }).toEqual({
        name,
        codes: { TOKEN_ENDPOINT_UNAVAILABLE: USERS.length * 4 },
        ok: 0,
        untyped: 0,
        sent: 0,
      });
      expect(r.maxMs, `${name}: slowest call`).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      // single flight holds under faults too: at most 1 + retries requests per account
      expect(r.refreshRequests, `${name}: refresh requests`).toBeLessThanOrEqual(USERS.length * 2);
    }
    expect(after).toMatchObject({ ok: USERS.length * 4, codes: {}, untyped: 0 });
    expect(idp.stats.token.refresh_token).toBe(USERS.length);
    expect(await statuses()).toEqual({ active: USERS.length });
  }, 60_000);

  it('slower than the timeout: typed and bounded, nothing sent; a refresh the server completes after the client gave up leaves the account needs_consent, never corrupt', async () => {
    const delayMs = TIMEOUT_MS * 2;
    idp.setFault({ kind: 'slow', delayMs });
    received = 0;
    const r = await burst(url);
    idp.setFault(null);
    expect({ codes: r.codes, ok: r.ok, untyped: r.untyped, sent: received }).toEqual({
      codes: { TOKEN_ENDPOINT_UNAVAILABLE: USERS.length * 4 },
      ok: 0,
      untyped: 0,
      sent: 0,
    });
    expect(r.maxMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    // The server still answers the abandoned requests after the delay: it rotates refresh tokens
    // the client never receives. oidc-provider then treats the stored (old) refresh token as reused
    // and revokes the grant. That is the protocol's limit, not a store fault: every account is
    // either active or needs consent, and every caller gets a usable answer or CONSENT_REQUIRED.
    await new Promise((res) => setTimeout(res, delayMs + 500));
    const after = await burst(url);
    const st = await statuses();
    console.log(`[token-endpoint-slow] ${JSON.stringify({ during: r, after, statuses: st })}`);
    expect(after.untyped).toBe(0);
    expect(Object.keys(after.codes).filter((c) => c !== 'CONSENT_REQUIRED')).toEqual([]);
    expect(Object.keys(st).filter((s) => s !== 'active' && s !== 'needs_consent')).toEqual([]);
    expect(after.ok).toBe((st.active ?? 0) * 4);
    await reconnectLost();
  }, 60_000);

  it('invalid_grant for a few refreshes amid concurrent ones: exactly those accounts need consent, all their callers are told so, the others are untouched', async () => {
    idp.resetStats();
    idp.setFault({ kind: 'invalid_grant', grantType: 'refresh_token', times: 3 });
    const r = await burst(url);
    idp.setFault(null);
    console.log(`[invalid-grant] ${JSON.stringify(r)} ${JSON.stringify(await statuses())}`);
    expect(r.untyped).toBe(0);
    expect(r.codes).toEqual({ CONSENT_REQUIRED: 3 * 4 }); // every caller of a refused account, and only those
    expect(r.ok).toBe((USERS.length - 3) * 4);
    expect(await statuses()).toEqual({ active: USERS.length - 3, needs_consent: 3 });
    // the others keep working; the refused ones can consent again
    const again = await burst(url, 1);
    expect(again.codes).toEqual({ CONSENT_REQUIRED: 3 });
    await reconnectLost();
    expect(await statuses()).toEqual({ active: USERS.length });
    expect((await burst(url, 1)).ok).toBe(USERS.length);
  }, 60_000);
});
