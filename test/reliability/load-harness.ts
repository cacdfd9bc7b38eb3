/**
 * Shared by test/reliability/load.test.ts (small, asserted in CI) and bench/load-toolfetch.ts (large,
 * printed): many users call one per-user oauth2 tool through toolFetch while their access tokens
 * expire, with the real test identity provider and the real token manager.
 *
 * The loopback upstream verifies every bearer token with agent-iam's own verifier against the
 * IdP's JWKS and compares the token's `sub` with `X-End-User-ID`: a token of another user is counted
 * as `wrongUser`. The moment toolFetch hands a request to fetch, the token's `exp` is compared with
 * the clock (`sentExpired`, `minRemainingMs`): that is the SDK's guarantee, independent of how long a
 * loaded machine then takes to deliver the request.
 *
 * "One refresh per account per expiry" is measured without trusting the SDK: every refresh the IdP
 * answered produced a new access token, and every refresh is triggered by a call that then uses its
 * token, so (IdP refresh requests) must equal (distinct tokens seen per user, including the one from
 * consent) − (users). A duplicate refresh (two callers of one account refreshing at once) makes the
 * left side larger: its token is dropped or, with rotation, its request fails with invalid_grant.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { createTokenManager, createToolFetch, createVerifier, type AgentContext, type TokenManager } from '../../src/index.js';

export interface LoadOptions {
  users: number;
  calls: number;
  concurrency: number;
  /** IdP access-token lifetime, seconds. */
  accessTokenTtl: number;
  /** Token manager refresh skew, seconds (a token is refreshed `ttl - skew` s after issue). */
  refreshSkewSeconds: number;
  /** Spread the calls over at least this long (so tokens expire mid-run even on a fast machine). */
  minDurationMs?: number;
  /** Concurrent consents during setup. */
  connectConcurrency?: number;
  log?: (line: string) => void;
}

export interface LoadResult {
  users: number;
  calls: number;
  concurrency: number;
  ok: number;
  /** Errors thrown by toolFetch, by code (or name). */
  errors: Record<string, number>;
  /** Upstream answers other than 200, by status. */
  upstreamRefused: Record<string, number>;
  /** Requests whose bearer token belonged to another user than X-End-User-ID. */
  wrongUser: number;
  /** Requests whose bearer failed verification at the upstream (expired, bad signature...). */
  invalidToken: number;
  /** Why the upstream refused them, by code. */
  invalidCodes: Record<string, number>;
  /** Requests handed to fetch with a token whose `exp` had passed. */
  sentExpired: number;
  /** Least time left before `exp` of a token at the moment it was sent, ms. */
  minRemainingMs: number;
  setupMs: number;
  durationMs: number;
  callsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** Refresh-token grant requests the IdP received during the run. */
  refreshes: number;
  /** Σ over users of (distinct access tokens seen − 1), the refreshes that served traffic. */
  usedRefreshes: number;
  /** Users whose token was refreshed at least twice (so a token expired while traffic was flowing). */
  usersRefreshedTwice: number;
  /** Upper bound of refreshes if every account refreshes once per expiry window. */
  maxExpectedRefreshes: number;
}

const REDIRECT = 'http://127.0.0.1:9/callback';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function contextFor(userId: string, i: number): AgentContext {
  return Object.freeze({
    userId,
    subject: userId,
    issuer: 'https://inbound.test',
    scopes: [],
    claims: {},
    actorChain: [],
    requestId: `req-${i}`,
    authenticated: true,
  });
}

/** Run the load; everything listens on 127.0.0.1 and is closed before this returns. */
export async function runToolFetchLoad(o: LoadOptions): Promise<LoadResult> {
  const log = o.log ?? (() => {});
  const seen = new Map<string, Set<string>>(); // user → distinct access tokens seen by the upstream
  let wrongUser = 0;
  let invalidToken = 0;
  const invalidCodes: Record<string, number> = {};
  let sentExpired = 0;
  let minRemainingMs = Infinity;

  // The upstream: the tool. It needs the IdP's issuer for its verifier, so the verifier is set later.
  let verify: ((authorization: string) => Promise<string>) | undefined;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const authorization = req.headers.authorization ?? '';
      const claimed = req.headers['x-end-user-id'];
      void (verify as (a: string) => Promise<string>)(authorization).then(
        (sub) => {
          const token = authorization.slice(7);
          if (sub !== claimed) {
            wrongUser++;
            res.writeHead(409).end();
            return;
          }
          let set = seen.get(sub);
          if (set === undefined) seen.set(sub, (set = new Set()));
          set.add(token);
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
        },
        (e: unknown) => {
          invalidToken++;
          const code = (e as { code?: string }).code ?? 'unknown';
          invalidCodes[code] = (invalidCodes[code] ?? 0) + 1;
          res.writeHead(401).end();
        },
      );
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const resource = `${origin}/api`;

  let idp: TestIdentityProvider | undefined;
  try {
    idp = await createTestIdentityProvider({ accessTokenTtl: o.accessTokenTtl, defaultResource: resource });
    const verifier = createVerifier({
      providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource] }],
      cacheSize: o.users * 8,
    });
    verify = async (authorization) => {
      const ctx = await verifier.verify({ headers: { authorization } });
      return ctx.userId as string;
    };
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
    const tokens: TokenManager = createTokenManager({
      refreshSkewSeconds: o.refreshSkewSeconds,
      cacheSize: o.users * 2,
      connections: [
        { id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'offline_access'] },
      ],
    });
    // Observe (not alter) what is sent: the bearer's exp against the clock at the moment of sending.
    const observe: typeof fetch = (input, init) => {
      const auth = new Headers(init?.headers).get('authorization') ?? '';
      const payload = auth.split('.')[1];
      if (payload !== undefined) {
        const exp = (JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)))) as { exp: number }).exp;
        const left = exp * 1000 - Date.now();
        if (left <= 0) sentExpired++;
        if (left < minRemainingMs) minRemainingMs = left;
      }
      return fetch(input, init);
    };
    const toolFetch = createToolFetch({
      agent: { id: 'load-agent' },
      fetch: observe,
      tools: [{ name: 'api', baseUrl: resource, auth: { type: 'oauth2', connection: 'corp' } }],
      policies: [{ agent: 'load-agent', tool: 'api' }],
      tokens,
    });

    // Setup: every user consents once (real authorization code + PKCE at the IdP).
    const setupStart = performance.now();
    const users = Array.from({ length: o.users }, (_, i) => `user-${i}@example.com`);
    const initial = new Map<string, string>();
    let nextUser = 0;
    await Promise.all(
      Array.from({ length: o.connectConcurrency ?? 16 }, async () => {
        while (nextUser < users.length) {
          const userId = users[nextUser++]!;
          const { url } = await tokens.startAuthorization({ connection: 'corp', userId });
          await tokens.completeAuthorization(await idp!.authorize(url, { userId }));
          initial.set(userId, (await tokens.getAccessToken({ connection: 'corp', userId })).accessToken);
        }
      }),
    );
    const setupMs = performance.now() - setupStart;
    log(`setup: ${o.users} consents in ${(setupMs / 1000).toFixed(1)} s`);

    // The calls: rounds over all users in a fresh random order, each user twice in a row, so that
    // two calls of one account are often in flight together (single flight is exercised).
    const order: string[] = [];
    while (order.length < o.calls) {
      const shuffled = [...users];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      for (const u of shuffled) order.push(u, u);
    }
    order.length = o.calls;

    idp.resetStats();
    const errors: Record<string, number> = {};
    const upstreamRefused: Record<string, number> = {};
    const latencies: number[] = new Array(o.calls);
    let ok = 0;
    let next = 0;
    const start = performance.now();
    const minDuration = o.minDurationMs ?? 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        for (;;) {
          const i = next++;
          if (i >= order.length) return;
          if (minDuration > 0) {
            const due = start + (i / order.length) * minDuration;
            const wait = due - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
          const userId = order[i]!;
          const t0 = performance.now();
          try {
            const res = await toolFetch(`${resource}/me`, { context: contextFor(userId, i) });
            await res.arrayBuffer();
            if (res.status === 200) ok++;
            else upstreamRefused[res.status] = (upstreamRefused[res.status] ?? 0) + 1;
          } catch (e) {
            const code = (e as { code?: string }).code ?? (e as Error).name;
            errors[code] = (errors[code] ?? 0) + 1;
          }
          latencies[i] = performance.now() - t0;
        }
      }),
    );
    const durationMs = performance.now() - start;
    const refreshes = idp.stats.token.refresh_token ?? 0;

    let usedRefreshes = 0;
    let usersRefreshedTwice = 0;
    for (const u of users) {
      const set = new Set(seen.get(u) ?? []);
      set.add(initial.get(u)!);
      usedRefreshes += set.size - 1;
      if (set.size >= 3) usersRefreshedTwice++;
    }
    const window = (o.accessTokenTtl - o.refreshSkewSeconds) * 1000;
    const maxExpectedRefreshes = o.users * (1 + Math.ceil(durationMs / window));
    latencies.sort((a, b) => a - b);
    return {
      users: o.users,
      calls: o.calls,
      concurrency: o.concurrency,
      ok,
      errors,
      upstreamRefused,
      wrongUser,
      invalidToken,
      invalidCodes,
      sentExpired,
      minRemainingMs: Math.round(minRemainingMs),
      setupMs: Math.round(setupMs),
      durationMs: Math.round(durationMs),
      callsPerSecond: Math.round((o.calls / durationMs) * 1000),
      latencyMs: {
        p50: Number(percentile(latencies, 50).toFixed(1)),
        p99: Number(percentile(latencies, 99).toFixed(1)),
        max: Number(latencies[latencies.length - 1]!.toFixed(1)),
      },
      refreshes,
      usedRefreshes,
      usersRefreshedTwice,
      maxExpectedRefreshes,
    };
  } finally {
    await idp?.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}
