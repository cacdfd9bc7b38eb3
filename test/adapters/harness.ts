/**
 * Shared by the Express and Hono adapter tests: keys, a real JWKS server, the verifiers every app is
 * built with, a raw HTTP/1.1 client (so tests control every header line, duplicates included), and
 * the one suite of HTTP cases both adapters must pass.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type Verifier } from '../../src/inbound/verifier.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, hmacToken, nowSeconds, rawToken, signRaw, signToken, type TestKey } from '../helpers/tokens.js';

export const AUDIENCE = 'api://test';
export const RESOURCE_METADATA = 'https://agent.example.com/.well-known/oauth-protected-resource/mcp';
/** A small cap so an over-long token fits under Node's own 16 KB header limit. */
export const MAX_TOKEN_LENGTH = 4096;

/** What every app is built from. */
export interface AppSetup {
  /** authenticated; providers: main issuer, a corp issuer (email user id, allowedDomains), one whose JWKS is down. */
  auth: Verifier;
  /** open mode, main issuer. */
  open: Verifier;
  /** authenticated, main issuer, with `resourceMetadataUrl`. */
  meta: Verifier;
  /** authenticated, one provider bound to the host `tenant-a.example` (issuer `<origin>/tenant-a`). */
  hosted: Verifier;
  /** Options (not a verifier) for the `/opts` routes. */
  options: Parameters<typeof createVerifier>[0];
}

/**
 * The routes each test app must offer. `*` handlers answer with {@link Seen}, after an `await` of a
 * timer so that context propagation across async work is exercised.
 *   /api/*      agentAuth(auth)          GET /api/me · GET /api/write requireScopes('items:write') ·
 *                                        GET /api/admin requireScopes('admin','items:write') · POST /api/echo (JSON body echoed in `body`)
 *   /scoped/*   agentAuth(auth, { requiredScopes: ['items:read'] })   GET /scoped/me
 *   /open/*     agentAuth(open)          GET /open/me · GET /open/write requireScopes('items:write')
 *   /meta/*     agentAuth(meta)          GET /meta/me · GET /meta/write requireScopes('items:write')
 *   /opts/*     agentAuth(options)       GET /opts/me
 *   /hosted/*   agentAuth(hosted)        GET /hosted/me
 *   /bare/write requireScopes('items:write') without agentAuth
 *   /broken/*   agentAuth(a verifier whose verify throws a plain Error holding 'secret-in-error')
 */
export interface Seen {
  /** `req.agentContext.userId` / `c.get('agentContext').userId` */
  userId: string | null;
  /** `currentContext()?.userId` read after an await */
  currentUserId: string | null;
  /** `currentContext()` is the very same context object as the framework's */
  sameContext: boolean;
  authenticated: boolean | null;
  /** every value of X-End-User-ID the handler can see through the framework API */
  endUser: string | null;
  /** Node's view (rawHeaders values, headers, headersDistinct) where the framework exposes it */
  nodeEndUser?: { raw: string[]; header: string | null; distinct: string[] | null };
  body?: unknown;
}

export interface RunningApp {
  port: number;
  close(): Promise<void>;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: Record<string, unknown>;
}

/** One HTTP/1.1 request over a raw socket; every header line is sent exactly as given. */
export function rawRequest(port: number, path: string, headers: [string, string][] = [], method = 'GET', body?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (e) {
        reject(e as Error);
      }
    });
    const lines = [`${method} ${path} HTTP/1.1`, 'Connection: close'];
    if (!headers.some(([name]) => name.toLowerCase() === 'host')) lines.push(`Host: 127.0.0.1:${port}`);
    for (const [name, value] of headers) lines.push(`${name}: ${value}`);
    if (body !== undefined) lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
    // write, not end: a half-closed socket may be torn down before an async response is sent
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
  });
}

function parseResponse(data: Buffer): RawResponse {
  const split = data.indexOf('\r\n\r\n');
  if (split < 0) throw new Error('incomplete HTTP response');
  const [statusLine, ...headerLines] = data.subarray(0, split).toString('latin1').split('\r\n');
  const status = Number((statusLine ?? '').split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let body = data.subarray(split + 4);
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  const text = body.toString('utf8');
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { status, headers, text, json };
}

/** A verifier-shaped object (it carries the verifier brand) whose verify fails with a plain Error. */
function brokenVerifier(sync: boolean): Verifier {
  const fail = () => {
    throw new Error('secret-in-error');
  };
  return {
    [Symbol.for('agent-iam.verifier')]: true,
    mode: 'authenticated',
    verify: sync ? fail : async () => fail(),
    requireScopes: fail,
  } as unknown as Verifier;
}

/**
 * The HTTP cases both adapters must pass. `start` builds the framework's app over `setup` and
 * listens on 127.0.0.1:0; `broken` adds a `/broken/*` route over the given verifier.
 */
export function adapterSuite(name: string, start: (setup: AppSetup & { broken: Verifier; brokenSync: Verifier }) => Promise<RunningApp>): void {
  let jwks: JwksServer;
  let downJwks: JwksServer;
  let key: TestKey;
  let otherKey: TestKey;
  let issuer: string;
  let corpIssuer: string;
  let downIssuer: string;
  let app: RunningApp;

  const token = (overrides: Record<string, unknown> = {}, iss = issuer) => signToken(key, claims(iss, overrides));
  const get = (path: string, headers: [string, string][] = []) => rawRequest(app.port, path, headers);
  const bearer = (t: string): [string, string] => ['Authorization', `Bearer ${t}`];
  const invalid = 'Bearer error="invalid_token"';

  beforeAll(async () => {
    [key, otherKey] = await Promise.all([createTestKey('RS256'), createTestKey('ES256')]);
    jwks = await startJwksServer([key.publicJwk]);
    downJwks = await startJwksServer([]);
    downJwks.mode = 'down';
    issuer = jwks.origin;
    corpIssuer = `${jwks.origin}/corp`;
    downIssuer = downJwks.origin;
    const main = { issuer, jwksUri: jwks.url, audiences: [AUDIENCE] };
    const auth = createVerifier({
      maxTokenLength: MAX_TOKEN_LENGTH,
      jwksTimeoutMs: 2000,
      providers: [
        main,
        { issuer: corpIssuer, jwksUri: jwks.url, audiences: [AUDIENCE], userIdClaim: 'email', allowedDomains: ['company.com'] },
        { issuer: downIssuer, jwksUri: downJwks.url, audiences: [AUDIENCE] },
      ],
    });
    app = await start({
      auth,
      open: createVerifier({ mode: 'open', providers: [main] }),
      meta: createVerifier({ providers: [main], resourceMetadataUrl: RESOURCE_METADATA }),
      hosted: createVerifier({ providers: [{ issuer: `${issuer}/tenant-a`, jwksUri: jwks.url, audiences: [AUDIENCE], host: 'tenant-a.example' }] }),
      options: { providers: [main] },
      broken: brokenVerifier(false),
      brokenSync: brokenVerifier(true),
    });
  });
  afterAll(async () => {
    await app?.close();
    await jwks?.close();
    await downJwks?.close();
  });

  /** Status, code, JSON body, WWW-Authenticate, no-store, and no trace of the token anywhere. */
  function expectRejection(res: RawResponse, status: number, code: string, challenge: string | RegExp, sent?: string): void {
    expect({ status: res.status, error: res.json.error }).toEqual({ status, error: code });
    expect(typeof res.json.message).toBe('string');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    if (typeof challenge === 'string') expect(res.headers['www-authenticate']).toBe(challenge);
    else expect(res.headers['www-authenticate']).toMatch(challenge);
    if (sent !== undefined) {
      const signature = sent.split('.')[2] ?? sent;
      const everything = `${res.text}\n${JSON.stringify(res.headers)}`;
      if (signature.length > 8) expect(everything).not.toContain(signature);
    }
  }

  describe(`${name}: rejections over HTTP`, () => {
    it('no Authorization header: 401 TOKEN_MISSING with a bare Bearer challenge', async () => {
      expectRejection(await get('/api/me'), 401, 'TOKEN_MISSING', 'Bearer');
    });

    it('another scheme is not a bearer token: 401 TOKEN_MISSING', async () => {
      expectRejection(await get('/api/me', [['Authorization', 'Basic dXNlcjpwYXNz']]), 401, 'TOKEN_MISSING', 'Bearer');
    });

    it('a token in the query string is ignored: 401 TOKEN_MISSING', async () => {
      const t = await token();
      const res = await get(`/api/me?access_token=${t}`);
      expectRejection(res, 401, 'TOKEN_MISSING', 'Bearer', t);
    });

    it('two Authorization header lines are refused: 400 invalid_request', async () => {
      const t = await token();
      const res = await get('/api/me', [bearer(t), bearer(t)]);
      expectRejection(res, 400, 'TOKEN_MALFORMED', 'Bearer error="invalid_request"', t);
    });

    it('two Authorization lines, the second valid, are still refused', async () => {
      const t = await token();
      const res = await get('/api/me', [['Authorization', 'Bearer x.y.z'], bearer(t)]);
      expectRejection(res, 400, 'TOKEN_MALFORMED', 'Bearer error="invalid_request"', t);
    });

    it('the Bearer scheme is case-insensitive', async () => {
      const res = await get('/api/me', [['Authorization', `bEaReR ${await token()}`]]);
      expect(res.status).toBe(200);
    });

    const cases: [string, () => Promise<string>, number, string, string?][] = [
      ['not a JWS', async () => 'not-a-jwt', 401, 'TOKEN_MALFORMED'],
      ['too long (cap checked before decoding)', async () => 'a'.repeat(MAX_TOKEN_LENGTH + 100), 401, 'TOKEN_MALFORMED'],
      ['alg none', async () => rawToken({ alg: 'none' }, claims(issuer)), 401, 'TOKEN_ALG_NOT_ALLOWED'],
      ['HS256 for a JWKS provider', () => hmacToken(claims(issuer)), 401, 'TOKEN_ALG_NOT_ALLOWED'],
      ['an embedded jwk header', () => signRaw(key, { jwk: key.publicJwk }, claims(issuer)), 401, 'TOKEN_MALFORMED'],
      ['a jku header', () => signRaw(key, { jku: `${issuer}/jwks` }, claims(issuer)), 401, 'TOKEN_MALFORMED'],
      ['an unknown kid', () => signToken(otherKey, claims(issuer)), 401, 'TOKEN_SIGNATURE_INVALID'],
      ['a bad signature (taken from another token)', swappedSignature, 401, 'TOKEN_SIGNATURE_INVALID'],
      ['a signature by another key under our kid', () => signRaw(otherKey, { alg: 'RS256', kid: key.kid }, claims(issuer)), 401, 'TOKEN_SIGNATURE_INVALID'],
      ['expired', () => token({ exp: nowSeconds() - 120, iat: nowSeconds() - 600 }), 401, 'TOKEN_EXPIRED'],
      ['without exp', () => token({ exp: undefined }), 401, 'TOKEN_EXPIRED'],
      ['not yet valid', () => token({ nbf: nowSeconds() + 600 }), 401, 'TOKEN_NOT_YET_VALID'],
      ['issued in the future', () => token({ iat: nowSeconds() + 600 }), 401, 'TOKEN_NOT_YET_VALID'],
      ['an unknown issuer', () => token({}, 'https://evil.example.com'), 401, 'TOKEN_ISSUER_UNKNOWN'],
      ['another audience', () => token({ aud: 'api://other' }), 401, 'TOKEN_AUDIENCE_MISMATCH'],
      ['no user claim', () => token({ sub: undefined }), 401, 'USER_CLAIM_MISSING'],
      ['a user claim with a line break', () => token({ sub: 'alice\r\nX-End-User-ID: admin' }), 401, 'USER_CLAIM_MISSING'],
      ['a look-alike email domain', () => token({ email: 'eve@evilcompany.com' }, corpIssuer), 403, 'DOMAIN_NOT_ALLOWED'],
      ['a suffixed email domain', () => token({ email: 'eve@company.com.evil.io' }, corpIssuer), 403, 'DOMAIN_NOT_ALLOWED'],
      ['email_verified false', () => token({ email: 'eve@company.com', email_verified: false }, corpIssuer), 403, 'DOMAIN_NOT_ALLOWED'],
      ['no usable email for an email user claim', () => token({}, corpIssuer), 401, 'USER_CLAIM_MISSING'],
      ['a JWKS that cannot be fetched and no cached keys', () => token({}, downIssuer), 503, 'JWKS_UNAVAILABLE', 'Bearer'],
    ];
    async function swappedSignature(): Promise<string> {
      const [a, b] = await Promise.all([token({ sub: 'alice' }), token({ sub: 'admin' })]);
      return `${a.split('.').slice(0, 2).join('.')}.${b.split('.')[2]}`;
    }
    it.each(cases)('%s: %i %s', async (_label, make, status, code, challenge) => {
      const t = await make();
      expectRejection(await get('/api/me', [bearer(t)]), status, code, challenge ?? invalid, t);
    });

    it('insufficient scope per route: 403 with scope= naming every required scope', async () => {
      const t = await token({ scope: 'items:read' });
      expectRejection(await get('/api/write', [bearer(t)]), 403, 'INSUFFICIENT_SCOPE', 'Bearer error="insufficient_scope", scope="items:write"', t);
      const res = await get('/api/admin', [bearer(await token({ scope: 'items:write' }))]);
      expectRejection(res, 403, 'INSUFFICIENT_SCOPE', 'Bearer error="insufficient_scope", scope="admin items:write"');
      expect(res.json.scopes).toEqual(['admin', 'items:write']);
    });

    it('requiredScopes on agentAuth itself: 403 unless held', async () => {
      expectRejection(await get('/scoped/me', [bearer(await token({ scope: 'other' }))]), 403, 'INSUFFICIENT_SCOPE', 'Bearer error="insufficient_scope", scope="items:read"');
      expect((await get('/scoped/me', [bearer(await token({ scp: ['items:read'] }))])).status).toBe(200);
    });

    it('requireScopes without agentAuth before it: 401 TOKEN_MISSING', async () => {
      const res = await get('/bare/write', [bearer(await token({ scope: 'items:write' }))]);
      expectRejection(res, 401, 'TOKEN_MISSING', 'Bearer scope="items:write"');
    });

    it('challenges carry resource_metadata when it is configured', async () => {
      expectRejection(await get('/meta/me'), 401, 'TOKEN_MISSING', `Bearer resource_metadata="${RESOURCE_METADATA}"`);
      expectRejection(await get('/meta/me', [bearer(await token({ exp: nowSeconds() - 100 }))]), 401, 'TOKEN_EXPIRED', `Bearer error="invalid_token", resource_metadata="${RESOURCE_METADATA}"`);
      expectRejection(
        await get('/meta/write', [bearer(await token({ scope: 'items:read' }))]),
        403,
        'INSUFFICIENT_SCOPE',
        `Bearer error="insufficient_scope", scope="items:write", resource_metadata="${RESOURCE_METADATA}"`,
      );
    });

    it('an unexpected failure inside the verifier becomes a generic 500 that echoes nothing', async () => {
      for (const path of ['/broken/me', '/broken-sync/me']) {
        const res = await get(path, [bearer(await token())]);
        expect(res.status).toBe(500);
        expect(res.json).toEqual({ error: 'INTERNAL_ERROR', message: 'Internal error' });
        expect(res.text).not.toContain('secret-in-error');
      }
    });
  });

  describe(`${name}: accepted requests`, () => {
    it('exposes the context, runs the handler inside it (across an await), sets X-End-User-ID', async () => {
      const res = await get('/api/me', [bearer(await token({ scope: 'items:read' }))]);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ userId: 'user-1', currentUserId: 'user-1', sameContext: true, authenticated: true, endUser: 'user-1' });
    });

    it('a spoofed X-End-User-ID never reaches the handler, however it is sent', async () => {
      const res = await get('/api/me', [
        ['X-End-User-ID', 'admin'],
        bearer(await token({ sub: 'alice' })),
        ['x-end-user-id', 'root'],
        ['X-END-USER-ID', 'admin2'],
      ]);
      expect(res.status).toBe(200);
      const seen = res.json as unknown as Seen;
      expect(seen.userId).toBe('alice');
      expect(seen.endUser).toBe('alice');
      if (seen.nodeEndUser !== undefined) expect(seen.nodeEndUser).toEqual({ raw: ['alice'], header: 'alice', distinct: ['alice'] });
      expect(res.text).not.toMatch(/admin|root/);
    });

    it('a spoofed X-End-User-ID is not echoed when the token is refused either', async () => {
      const res = await get('/api/me', [['X-End-User-ID', 'admin']]);
      expect(res.status).toBe(401);
      expect(res.text).not.toContain('admin');
    });

    it('keeps the context of each of many concurrent requests apart', async () => {
      const users = Array.from({ length: 24 }, (_, i) => `user-${i}`);
      const replies = await Promise.all(users.map(async (u) => get('/api/me', [bearer(await token({ sub: u }))])));
      expect(replies.map((r) => [r.json.userId, r.json.currentUserId, r.json.endUser])).toEqual(users.map((u) => [u, u, u]));
    });

    it('a request body is still readable after the headers were rewritten', async () => {
      const res = await rawRequest(app.port, '/api/echo', [bearer(await token()), ['X-End-User-ID', 'admin']], 'POST', JSON.stringify({ hello: 'world' }));
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ userId: 'user-1', endUser: 'user-1', body: { hello: 'world' } });
    });

    it('a provider bound to a host is chosen by the Host header, never by X-Forwarded-Host', async () => {
      const t = await token({}, `${issuer}/tenant-a`);
      expect((await get('/hosted/me', [['Host', 'tenant-a.example'], bearer(t)])).json).toMatchObject({ userId: 'user-1' });
      const res = await get('/hosted/me', [['X-Forwarded-Host', 'tenant-a.example'], bearer(t)]);
      expectRejection(res, 401, 'TOKEN_ISSUER_UNKNOWN', invalid, t);
    });

    it('agentAuth given options builds its verifier once and works the same', async () => {
      const res = await get('/opts/me', [bearer(await token())]);
      expect(res.json).toMatchObject({ userId: 'user-1', currentUserId: 'user-1' });
      expectRejection(await get('/opts/me'), 401, 'TOKEN_MISSING', 'Bearer');
    });
  });

  describe(`${name}: open mode`, () => {
    it('no token: an anonymous context, and no X-End-User-ID at all (a spoofed one is removed)', async () => {
      const res = await get('/open/me', [['X-End-User-ID', 'admin']]);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ userId: null, currentUserId: null, sameContext: true, authenticated: false, endUser: null });
      const seen = res.json as unknown as Seen;
      if (seen.nodeEndUser !== undefined) expect(seen.nodeEndUser).toEqual({ raw: [], header: null, distinct: null });
    });

    it('a token that is present is verified all the same', async () => {
      expectRejection(await get('/open/me', [bearer(await token({ exp: nowSeconds() - 100 }))]), 401, 'TOKEN_EXPIRED', invalid);
      expect((await get('/open/me', [bearer(await token({ sub: 'bob' }))])).json).toMatchObject({ userId: 'bob', endUser: 'bob', authenticated: true });
    });

    it('requireScopes asks an anonymous caller for a token (401) and checks a present one (403)', async () => {
      expectRejection(await get('/open/write'), 401, 'TOKEN_MISSING', 'Bearer scope="items:write"');
      expectRejection(await get('/open/write', [bearer(await token())]), 403, 'INSUFFICIENT_SCOPE', 'Bearer error="insufficient_scope", scope="items:write"');
      expect((await get('/open/write', [bearer(await token({ scope: 'items:write' }))])).status).toBe(200);
    });
  });
}
