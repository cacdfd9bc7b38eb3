/**
 * Secret scan: drive every failing path we can reach — inbound rejections, token flows against a
 * faulty authorization server, toolFetch denials, store tampering, approvals — with known secrets
 * (client secret, API keys, refresh and access tokens, encryption key, raw JWTs, authorization
 * codes, a password in a URL) while capturing:
 *   - console.* and every process.stdout / process.stderr write,
 *   - every thrown error: message, String(e), JSON.stringify(e), the values of Object.keys(e),
 *     util.inspect (which shows non-enumerable `cause`), and the same for each `cause` in the chain,
 *   - the HTTP rendering of each error (renderError: status, headers, body),
 *   - every audit event (as objects and as JSON lines), and approval records.
 * Then no secret may appear anywhere. The secrets that come from the server (tokens, codes) are
 * collected from the wire by an observing fetch, so the scan covers the real values.
 */
import Keyv from 'keyv';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import {
  createApprovals,
  createTokenManager,
  createToolFetch,
  createVerifier,
  generateEncryptionKey,
  jsonLinesAudit,
  renderError,
  runWithContext,
  type AgentContext,
  type AuditEvent,
} from '../../src/index.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
const API_KEY = 'sk_live_SENTINEL_ApiKey_4b1d9c0e7a';
const USER_API_KEY = 'kaggle_SENTINEL_UserKey_93ab71c2';
const URL_PASSWORD = 'SENTINEL_UrlPassword_55e0';
const QUERY_SECRET = 'SENTINEL_QuerySecret_a7f3';
const BODY_SECRET = 'SENTINEL_BodySecret_0c4e';
const ENCRYPTION_KEY = generateEncryptionKey();
const OTHER_KEY = generateEncryptionKey();

/** Every secret value seen or made during the run (filled as the run goes). */
const secrets = new Set<string>([API_KEY, USER_API_KEY, URL_PASSWORD, QUERY_SECRET, BODY_SECRET, ENCRYPTION_KEY, OTHER_KEY]);
/** Everything printable the SDK produced. */
const captured: string[] = [];
const audit: AuditEvent[] = [];
const auditLines: string[] = [];
const sink = (e: AuditEvent): void => void audit.push(e);
const lines = jsonLinesAudit((line) => void auditLines.push(line), { hashChain: true });
const auditBoth = (e: AuditEvent): void => {
  sink(e);
  lines.write(e);
};

/** Record every printable form of a thrown value and of its cause chain. */
function recordError(e: unknown, depth = 0): void {
  if (depth > 5 || e === undefined || e === null) return;
  captured.push(String(e));
  try {
    captured.push(JSON.stringify(e) ?? '');
  } catch {
    /* circular: inspect below covers it */
  }
  captured.push(inspect(e, { depth: 8, showHidden: true }));
  if (typeof e === 'object') {
    const o = e as Record<string, unknown>;
    captured.push(String(o.message ?? ''), String(o.stack ?? ''));
    for (const k of Object.keys(o)) captured.push(inspect(o[k], { depth: 8 }));
    try {
      const r = renderError(e);
      captured.push(JSON.stringify(r));
    } catch {
      /* renderError never throws; keep scanning anyway */
    }
    recordError(o.cause, depth + 1);
  }
}

/** Run a step that is expected to fail (or not); record what it threw. */
const outcomes: Record<string, string> = {};
async function attempt(label: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    const v = await fn();
    if (v instanceof Response) await v.arrayBuffer();
    outcomes[label] = 'ok';
  } catch (e) {
    recordError(e);
    outcomes[label] = (e as { code?: string }).code ?? `untyped ${(e as Error)?.name}`;
  }
}

/** An observing fetch: collects every token and code the authorization server hands out. */
const observe: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  try {
    const body = (await res.clone().json()) as Record<string, unknown>;
    for (const k of ['access_token', 'refresh_token', 'id_token', 'client_secret', 'registration_access_token', 'code']) {
      if (typeof body[k] === 'string') secrets.add(body[k] as string);
    }
  } catch {
    /* not JSON */
  }
  return res;
};

let idp: TestIdentityProvider;
let upstream: Server;
let origin = '';
const consoleSpies: Array<ReturnType<typeof vi.spyOn>> = [];
let restoreWrites: () => void = () => {};

function startCapture(): void {
  for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
    consoleSpies.push(vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void captured.push(inspect(args, { depth: 8 }))));
  }
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    captured.push(String(chunk));
    return (out as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
    captured.push(String(chunk));
    return (err as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  restoreWrites = () => {
    process.stdout.write = out;
    process.stderr.write = err;
  };
}

function stopCapture(): void {
  restoreWrites();
  for (const s of consoleSpies) s.mockRestore();
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    if (req.url?.startsWith('/stripe/redirect')) {
      res.writeHead(302, { location: 'http://127.0.0.2:1/elsewhere' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  idp = await createTestIdentityProvider({ defaultResource: `${origin}/api` });
}, 60_000);
afterAll(async () => {
  stopCapture();
  await idp?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

function userCtx(userId: string, extra: Partial<AgentContext> = {}): AgentContext {
  return { userId, subject: userId, issuer: 'https://inbound.test', scopes: [], claims: {}, actorChain: [], requestId: 'r', authenticated: true, ...extra };
}

describe('no secret in any output of any failing path', () => {
  it('runs the failing paths with sentinel secrets and finds none of them anywhere', async () => {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'] });
    const clientSecret = reg.client_secret as string;
    secrets.add(clientSecret);
    startCapture();

    // ---- inbound rejections -------------------------------------------------------------------
    const verifier = createVerifier({
      providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [`${origin}/api`] }],
      audit: auditBoth,
    });
    const good = await idp.tokenFor({ userId: 'alice@example.com', scopes: ['read'] });
    const expired = await idp.tokenFor({ userId: 'alice@example.com', expiresIn: -120 });
    const otherAud = await idp.tokenFor({ userId: 'alice@example.com', audience: 'https://other.example' });
    const parts = good.split('.');
    const badSig = `${parts[0]}.${parts[1]}.${parts[2]!.slice(0, -4)}AAAA`;
    const malformed = `${parts[0]}.${Buffer.from(`{"sub":"${API_KEY}"`).toString('base64url')}.${parts[2]}`;
    const huge = `${good}${'A'.repeat(20_000)}`;
    for (const t of [good, expired, otherAud, badSig, malformed]) secrets.add(t);
    for (const [label, authorization] of [
      ['expired', `Bearer ${expired}`],
      ['audience', `Bearer ${otherAud}`],
      ['signature', `Bearer ${badSig}`],
      ['malformed', `Bearer ${malformed}`],
      ['oversized', `Bearer ${huge}`],
      ['basic scheme', `Basic ${Buffer.from(`alice:${URL_PASSWORD}`).toString('base64')}`],
      ['token in a second header', [`Bearer ${good}`, `Bearer ${expired}`]],
    ] as Array<[string, string | string[]]>) {
      await attempt(`inbound ${label}`, () => verifier.verify({ headers: { authorization } }));
    }
    await attempt('inbound insufficient scope', () => verifier.verify({ headers: { authorization: `Bearer ${good}` } }, { requiredScopes: ['admin'] }));
    const aliceCtx = await verifier.verify({ headers: { authorization: `Bearer ${good}` } });
    captured.push(inspect(aliceCtx, { depth: 8, showHidden: true }), JSON.stringify(aliceCtx));

    // ---- token flows with faults --------------------------------------------------------------
    const store = new Map<string, unknown>();
    const tokens = createTokenManager({
      store: new Keyv({ store }),
      encryptionKey: ENCRYPTION_KEY,
      fetch: observe,
      timeoutMs: 800,
      retries: 0,
      refreshSkewSeconds: 3600, // every getAccessToken refreshes
      audit: auditBoth,
      connections: [
        { id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret, redirectUri: REDIRECT, scopes: ['openid', 'offline_access', 'read'] },
        { id: 'kaggle', kind: 'apiKey' },
      ],
    });
    const { url } = await tokens.startAuthorization({ connection: 'corp', userId: 'alice@example.com' });
    const callback = await idp.authorize(url, { userId: 'alice@example.com' });
    const code = new URL(callback).searchParams.get('code') as string;
    secrets.add(code);
    await tokens.completeAuthorization(callback);
    secrets.add((await tokens.getAccessToken({ connection: 'corp', userId: 'alice@example.com' })).accessToken);
    await attempt('callback replayed', () => tokens.completeAuthorization(callback));
    await attempt('callback with unknown state', () => tokens.completeAuthorization(`${REDIRECT}?code=${code}&state=forged-state-value&iss=${encodeURIComponent(idp.issuer)}`));
    const { url: url2 } = await tokens.startAuthorization({ connection: 'corp', userId: 'bob@example.com' });
    const cb2 = await idp.authorize(url2, { userId: 'bob@example.com' });
    secrets.add(new URL(cb2).searchParams.get('code') as string);
    await attempt('callback from another issuer', () => tokens.completeAuthorization(cb2.replace(/iss=[^&]*/, `iss=${encodeURIComponent('http://127.0.0.1:1')}`)));
    await attempt('callback with tokens in it', () => tokens.completeAuthorization(`${REDIRECT}?access_token=${API_KEY}&state=x`));
    const denied = await idp.authorize((await tokens.startAuthorization({ connection: 'corp', userId: 'carol@example.com' })).url, { userId: 'carol@example.com', deny: true });
    await attempt('consent denied', () => tokens.completeAuthorization(denied));
    for (const kind of ['5xx', 'slow', 'invalid_client', 'invalid_grant'] as const) {
      idp.setFault({ kind, delayMs: 2000, grantType: 'refresh_token' });
      await attempt(`refresh ${kind}`, () => tokens.getAccessToken({ connection: 'corp', userId: 'alice@example.com' }));
      idp.setFault(null);
    }
    await attempt('refresh after invalid_grant', () => tokens.getAccessToken({ connection: 'corp', userId: 'alice@example.com' }));
    idp.setFault({ kind: 'invalid_client' });
    await attempt('client credentials invalid_client', () => tokens.clientCredentials({ connection: 'corp', scopes: ['read'] }));
    idp.setFault(null);
    await attempt('exchange escalation', () => tokens.exchange({ connection: 'corp', context: aliceCtx, scopes: ['admin'] }));
    await attempt('exchange raw subject token', () => tokens.exchange({ connection: 'corp', subjectToken: expired, scopes: ['read'] }));
    await tokens.setApiKey({ connection: 'kaggle', userId: 'alice@example.com', key: USER_API_KEY });
    await attempt('api key with a newline', () => tokens.setApiKey({ connection: 'kaggle', userId: 'bob@example.com', key: `${API_KEY}\n` }));
    idp.setFault({ kind: '5xx' });
    await attempt('revoke with the server down', () => tokens.revoke({ connection: 'corp', userId: 'bob@example.com' }));
    idp.setFault(null);

    // ---- store tampering and a wrong key --------------------------------------------------------
    const wrongKey = createTokenManager({ store: new Keyv({ store }), encryptionKey: OTHER_KEY, connections: [{ id: 'kaggle', kind: 'apiKey' }], audit: auditBoth });
    await attempt('store read with another key', () => wrongKey.getAccessToken({ connection: 'kaggle', userId: 'alice@example.com' }));
    for (const [k, v] of store) {
      if (typeof v === 'string' && k.includes(':account:kaggle:')) {
        const entry = JSON.parse(v) as { value: { ct: string } };
        entry.value.ct = `${entry.value.ct.slice(0, 10)}${entry.value.ct[10] === 'A' ? 'B' : 'A'}${entry.value.ct.slice(11)}`;
        store.set(k, JSON.stringify(entry));
      }
    }
    await attempt('tampered record', () => tokens.getAccessToken({ connection: 'kaggle', userId: 'alice@example.com' }));
    await attempt('plain-store config error', async () => createTokenManager({ encryptionKey: `${ENCRYPTION_KEY}x`, connections: [{ id: 'k', kind: 'apiKey' }] }));
    await attempt('tool config error', async () => createToolFetch({ agent: { id: 'a' }, tools: [{ name: 't', baseUrl: `http://u:${URL_PASSWORD}@127.0.0.1:1`, auth: { type: 'apiKey', key: API_KEY } }], policies: [] }));

    // ---- toolFetch denials ----------------------------------------------------------------------
    const approvals = createApprovals({ audit: auditBoth } as Parameters<typeof createApprovals>[0]);
    const toolFetch = createToolFetch({
      agent: { id: 'agent' },
      tools: [
        { name: 'stripe', baseUrl: `${origin}/stripe`, auth: { type: 'apiKey', key: API_KEY }, capabilities: [{ method: 'GET', path: '/stripe/charges' }, { method: 'GET', path: '/stripe/redirect' }, { method: 'POST', path: '/stripe/refunds' }] },
        { name: 'api', baseUrl: `${origin}/api`, auth: { type: 'oauth2', connection: 'corp' } },
        { name: 'cc', baseUrl: `${origin}/cc`, auth: { type: 'clientCredentials', connection: 'corp', scopes: ['read'] } },
        { name: 'xchg', baseUrl: `${origin}/xchg`, auth: { type: 'tokenExchange', connection: 'corp', scopes: ['admin'] } },
      ],
      policies: [
        { agent: 'agent', tool: 'stripe', capabilities: [{ method: 'GET', path: '/stripe/*' }] },
        { agent: 'agent', tool: 'stripe', capabilities: [{ method: 'POST', path: '/stripe/refunds' }], effect: 'approval' },
        { agent: 'agent', tool: 'api' },
        { agent: 'agent', tool: 'cc' },
        { agent: 'agent', tool: 'xchg' },
      ],
      tokens,
      approvals,
      audit: auditBoth,
      timeoutMs: 2000,
    });
    const alice = userCtx('alice@example.com');
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['unregistered tool', () => toolFetch(`http://127.0.0.1:1/x?key=${QUERY_SECRET}`, { context: alice })],
      ['userinfo in URL', () => toolFetch(`http://user:${URL_PASSWORD}@127.0.0.1:${new URL(origin).port}/stripe/charges`, { context: alice })],
      ['capability denied', () => toolFetch(`${origin}/stripe/customers?api_key=${QUERY_SECRET}`, { context: alice })],
      ['policy denied (method)', () => toolFetch(`${origin}/stripe/charges?api_key=${QUERY_SECRET}`, { method: 'DELETE', context: alice })],
      ['approval required', () => toolFetch(`${origin}/stripe/refunds?token=${QUERY_SECRET}`, { method: 'POST', body: BODY_SECRET, context: alice })],
      ['caller credentials replaced', () => toolFetch(`${origin}/stripe/charges`, { headers: { authorization: `Bearer ${good}`, cookie: `s=${URL_PASSWORD}` }, context: alice })],
      ['redirect off origin', () => toolFetch(`${origin}/stripe/redirect?x=${QUERY_SECRET}`, { context: alice })],
      ['consent required (no account)', () => toolFetch(`${origin}/api/me`, { context: userCtx('dave@example.com') })],
      ['consent required (needs consent)', () => toolFetch(`${origin}/api/me`, { context: alice })],
      ['no user for a per-user tool', () => toolFetch(`${origin}/api/me`, { context: userCtx(undefined as unknown as string, { authenticated: false }) })],
      ['token exchange escalation', () => runWithContext(aliceCtx, () => toolFetch(`${origin}/xchg/x`))],
    ];
    for (const [label, fn] of steps) await attempt(`toolFetch ${label}`, fn);
    idp.setFault({ kind: '5xx' });
    await attempt('toolFetch client credentials down', () => toolFetch(`${origin}/cc/x`, { context: alice }));
    idp.setFault(null);

    // ---- approvals -------------------------------------------------------------------------------
    const pending = await approvals.list();
    captured.push(JSON.stringify(pending), inspect(pending, { depth: 8 }));
    for (const p of pending) {
      await attempt('approve', () => approvals.approve(p.id, { approver: 'boss' }));
      await attempt('approve twice', () => approvals.approve(p.id, { approver: 'boss' }));
      await attempt('deny approved', () => approvals.deny(p.id, { approver: 'boss' }));
    }
    await attempt('approve unknown', () => approvals.approve(`apr_${API_KEY}`, { approver: 'boss' }));

    stopCapture();
    // ---- scan ------------------------------------------------------------------------------------
    captured.push(...audit.map((e) => JSON.stringify(e)), ...audit.map((e) => inspect(e, { depth: 8 })), ...auditLines);
    const haystack = captured.join('\n');
    const leaks: string[] = [];
    for (const s of secrets) {
      if (s.length < 8) continue;
      // the whole value, and the parts that leak on their own: a JWT's payload and signature, and
      // each half of a long secret (a truncated secret in a message is still a leak)
      const forms = [s];
      const jwt = s.split('.');
      if (jwt.length === 3) forms.push(jwt[1]!, jwt[2]!);
      else if (s.length >= 32) forms.push(s.slice(0, s.length >> 1), s.slice(s.length >> 1));
      for (const f of forms) {
        if (f.length >= 16 && haystack.includes(f)) {
          leaks.push(`${s.slice(0, 12)}… (${s.length} chars)`);
          break;
        }
      }
    }
    console.log(`[no-secrets] ${secrets.size} secrets, ${captured.length} captured outputs (${haystack.length} chars), ${audit.length} audit events; outcomes ${JSON.stringify(outcomes)}`);
    expect(leaks).toEqual([]);
    // the run really went through the failing paths
    const codes = new Set(Object.values(outcomes));
    for (const c of ['TOKEN_EXPIRED', 'TOKEN_AUDIENCE_MISMATCH', 'TOKEN_SIGNATURE_INVALID', 'TOKEN_MALFORMED', 'INSUFFICIENT_SCOPE', 'OAUTH_STATE_MISMATCH', 'OAUTH_ERROR', 'TOKEN_ENDPOINT_UNAVAILABLE', 'CONSENT_REQUIRED', 'STORE_UNAVAILABLE', 'CONFIG_INVALID', 'TOOL_NOT_REGISTERED', 'REQUEST_INVALID', 'CAPABILITY_DENIED', 'POLICY_DENIED', 'APPROVAL_REQUIRED', 'REDIRECT_BLOCKED', 'SCOPE_ESCALATION']) {
      expect(codes, c).toContain(c);
    }
    expect(audit.length).toBeGreaterThan(30);
    expect([...secrets].filter((s) => s.length >= 8).length).toBeGreaterThanOrEqual(15);
  }, 60_000);
});
