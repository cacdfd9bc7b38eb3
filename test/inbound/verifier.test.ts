import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, isVerifier, type Verifier, type VerifierOptions } from '../../src/inbound/index.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { rawTokenOf } from '../../src/context.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { b64url, claims, createTestKey, hmacToken, nowSeconds, rawToken, signRaw, signToken, type TestKey } from '../helpers/tokens.js';

let jwks: JwksServer;
let rsa: TestKey;
let ec: TestKey;
let ed: TestKey;
let ps: TestKey;
let issuer: string;

beforeAll(async () => {
  [rsa, ec, ed, ps] = await Promise.all([createTestKey('RS256'), createTestKey('ES256'), createTestKey('EdDSA'), createTestKey('PS256')]);
  jwks = await startJwksServer([rsa.publicJwk, ec.publicJwk, ed.publicJwk, ps.publicJwk]);
  issuer = jwks.origin;
});
afterAll(async () => {
  await jwks.close();
});

function verifier(extra: Partial<VerifierOptions> = {}, provider: Record<string, unknown> = {}): Verifier {
  return createVerifier({
    providers: [{ issuer, jwksUri: jwks.url, audiences: ['api://test'], ...provider }],
    ...extra,
  });
}

function bearer(token: string, extra: Record<string, string> = {}): Request {
  return new Request('http://127.0.0.1/resource', { headers: { authorization: `Bearer ${token}`, ...extra } });
}

async function failure(promise: Promise<unknown>): Promise<Record<string, unknown> & { code: string; status: number; message: string; wwwAuthenticate?: string }> {
  try {
    await promise;
  } catch (e) {
    return e as never;
  }
  throw new Error('expected a rejection');
}

describe('createVerifier: accepted tokens', () => {
  it.each(['rsa', 'ec', 'ed', 'ps'] as const)('verifies a %s token into a frozen context', async (which) => {
    const key = { rsa, ec, ed, ps }[which];
    const v = verifier();
    const token = await signToken(key, claims(issuer, { scope: 'a b', email: 'Ann@Company.COM' }));
    const ctx = await v.verify(bearer(token));
    expect(ctx.userId).toBe('user-1');
    expect(ctx.subject).toBe('user-1');
    expect(ctx.issuer).toBe(issuer);
    expect(ctx.scopes).toEqual(['a', 'b']);
    expect(ctx.email).toBe('Ann@Company.COM');
    expect(ctx.domain).toBe('company.com');
    expect(ctx.authenticated).toBe(true);
    expect(Object.isFrozen(ctx)).toBe(true);
    expect(Object.isFrozen(ctx.claims)).toBe(true);
    expect(JSON.stringify(ctx)).not.toContain(token.split('.')[2]);
    expect(Object.keys(ctx)).not.toContain('token');
    expect(rawTokenOf(ctx)).toBe(token);
  });

  it('verifies RS512, PS384, ES384 and ES512 tokens too', async () => {
    const more = await Promise.all((['RS512', 'PS384', 'ES384', 'ES512'] as const).map((a) => createTestKey(a as never)));
    const saved = jwks.keys;
    jwks.keys = [...saved, ...more.map((k) => k.publicJwk)];
    try {
      const v = verifier();
      for (const key of more) expect((await v.verify(bearer(await signToken(key, claims(issuer))))).userId).toBe('user-1');
    } finally {
      jwks.keys = saved;
    }
  });

  it('accepts the plain { headers } shape, lower-case scheme and scp arrays', async () => {
    const v = verifier();
    const token = await signToken(rsa, claims(issuer, { scp: ['x', 'y'] }));
    const ctx = await v.verify({ headers: { authorization: `bearer ${token}` } });
    expect(ctx.scopes).toEqual(['x', 'y']);
    const ctx2 = await v.verify({ headers: { Authorization: `BEARER ${token}` } });
    expect(ctx2.userId).toBe('user-1');
  });

  it('uses userIdClaim and turns nested act into an actor chain, outermost first', async () => {
    const v = verifier({}, { userIdClaim: 'email' });
    const token = await signToken(
      rsa,
      claims(issuer, { email: 'bob@company.com', act: { sub: 'agent-b', iss: 'https://as', act: { sub: 'agent-a' } } }),
    );
    const ctx = await v.verify(bearer(token));
    expect(ctx.userId).toBe('bob@company.com');
    expect(ctx.actorChain.map((a) => a.subject)).toEqual(['agent-b', 'agent-a']);
    expect(ctx.actorChain[0]?.issuer).toBe('https://as');
  });

  it('takes a safe x-request-id and replaces an unsafe one', async () => {
    const v = verifier();
    const token = await signToken(rsa, claims(issuer));
    expect((await v.verify(bearer(token, { 'x-request-id': 'req-123.abc' }))).requestId).toBe('req-123.abc');
    const unsafe = (await v.verify(bearer(token, { 'x-request-id': 'a b<script>' }))).requestId;
    expect(unsafe).not.toContain('script');
    expect(unsafe).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('open mode: anonymous without token, a present token is still verified', async () => {
    const v = verifier({ mode: 'open' });
    expect(v.mode).toBe('open');
    const anon = await v.verify(new Request('http://127.0.0.1/'));
    expect(anon.userId).toBeUndefined();
    expect(anon.authenticated).toBe(false);
    expect((await failure(v.verify(bearer('abc.def.ghi')))).code).toBe('TOKEN_MALFORMED');
    const token = await signToken(rsa, claims(issuer));
    expect((await v.verify(bearer(token))).userId).toBe('user-1');
    // a route that needs scopes asks an anonymous caller to authenticate (401), not for more scope (403)
    const e = await failure(v.verify(new Request('http://127.0.0.1/'), { requiredScopes: ['items:write'] }));
    expect(e).toMatchObject({ code: 'TOKEN_MISSING', status: 401, wwwAuthenticate: 'Bearer scope="items:write"' });
    expect(() => v.requireScopes(anon, ['items:write'])).toThrowError(expect.objectContaining({ code: 'TOKEN_MISSING' }));
  });

  it('isVerifier recognises verifiers only', () => {
    expect(isVerifier(verifier())).toBe(true);
    expect(isVerifier({ verify() {} })).toBe(false);
    expect(isVerifier(null)).toBe(false);
  });

  it('emits allow and deny audit events without the token', async () => {
    const events: AuditEvent[] = [];
    const v = verifier({ audit: (e) => void events.push(e) });
    const token = await signToken(rsa, claims(issuer, { act: { sub: 'agent-x' } }));
    await v.verify(new Request('http://127.0.0.1/p?secret=1', { method: 'POST', headers: { authorization: `Bearer ${token}` } }));
    await failure(v.verify(new Request('http://127.0.0.1/p')));
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ type: 'inbound.verify', decision: 'allow', userId: 'user-1', actorChain: ['agent-x'], method: 'POST', path: '/p' });
    expect(events[1]).toMatchObject({ type: 'inbound.verify', decision: 'deny', code: 'TOKEN_MISSING' });
    expect(JSON.stringify(events)).not.toContain(token);
    expect(JSON.stringify(events)).not.toContain('secret');
  });
});

describe('createVerifier: rejections', () => {
  const v = () => verifier({ realm: 'agents', resourceMetadataUrl: 'https://api.example.com/.well-known/oauth-protected-resource' });

  it('TOKEN_MISSING without error param, with realm and resource_metadata', async () => {
    const e = await failure(v().verify(new Request('http://127.0.0.1/')));
    expect(e.code).toBe('TOKEN_MISSING');
    expect(e.status).toBe(401);
    expect(e.wwwAuthenticate).toBe(
      'Bearer realm="agents", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"',
    );
    expect((await failure(v().verify(new Request('http://x/', { headers: { authorization: 'Basic dTpw' } })))).code).toBe('TOKEN_MISSING');
  });

  it('several Authorization headers: TOKEN_MALFORMED, 400, invalid_request', async () => {
    const token = await signToken(rsa, claims(issuer));
    const h = new Headers();
    h.append('authorization', `Bearer ${token}`);
    h.append('authorization', `Bearer ${token}`);
    for (const req of [
      new Request('http://127.0.0.1/', { headers: h }),
      { headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } },
      { headers: { authorization: `Bearer ${token}`, Authorization: `Bearer ${token}` } },
      { headers: { authorization: `Bearer ${token}` }, rawHeaders: ['Authorization', `Bearer ${token}`, 'authorization', 'Bearer x'] },
    ]) {
      const e = await failure(v().verify(req));
      expect(e.code).toBe('TOKEN_MALFORMED');
      expect(e.status).toBe(400);
      expect(e.wwwAuthenticate).toContain('error="invalid_request"');
      expect(e.message).not.toContain(token);
    }
  });

  it('refuses an oversize bearer before decoding it', async () => {
    const huge = 'a'.repeat(20_000);
    const e = await failure(v().verify(bearer(`${huge}.${huge}.${huge}`)));
    expect(e.code).toBe('TOKEN_MALFORMED');
    expect(e.message).toMatch(/too long/);
    const small = createVerifier({ providers: [{ issuer, jwksUri: jwks.url, audiences: ['api://test'] }], maxTokenLength: 256 });
    const token = await signToken(rsa, claims(issuer));
    expect((await failure(small.verify(bearer(token)))).message).toMatch(/too long/);
  });

  it.each([
    ['not a jws', 'abc'],
    ['two parts', 'abc.def'],
    ['bad json', `${b64url('{nope')}.${b64url('{}')}.sig`],
    ['array header', `${b64url('[]')}.${b64url('{}')}.sig`],
    ['empty bearer', ''],
  ])('TOKEN_MALFORMED: %s', async (_name, token) => {
    const e = await failure(v().verify(bearer(token)));
    expect(e.code).toBe('TOKEN_MALFORMED');
    expect(e.wwwAuthenticate).toContain('error="invalid_token"');
  });

  it('alg none and HS256 are TOKEN_ALG_NOT_ALLOWED', async () => {
    for (const alg of ['toString', '__proto__', 'constructor', 'HS512', 'RSA-OAEP', 42]) {
      expect((await failure(v().verify(bearer(rawToken({ alg }, claims(issuer), 'c2ln')))))).toMatchObject({ code: 'TOKEN_ALG_NOT_ALLOWED' });
    }
    const none = rawToken({ alg: 'none' }, claims(issuer));
    expect((await failure(v().verify(bearer(none)))).code).toBe('TOKEN_ALG_NOT_ALLOWED');
    expect((await failure(v().verify(bearer(await hmacToken(claims(issuer)))))).code).toBe('TOKEN_ALG_NOT_ALLOWED');
    // outside the provider's own list
    const onlyEs = verifier({}, { algorithms: ['ES256'] });
    expect((await failure(onlyEs.verify(bearer(await signToken(rsa, claims(issuer))))))).toMatchObject({ code: 'TOKEN_ALG_NOT_ALLOWED' });
  });

  it.each(['jwk', 'jku', 'x5u', 'x5c'])('embedded %s header is refused and never fetched', async (name) => {
    const before = jwks.requests;
    const value = name === 'jwk' ? rsa.publicJwk : name === 'x5c' ? ['MIIB'] : `${jwks.origin}/evil`;
    const token = await signToken(rsa, claims(issuer), { [name]: value });
    expect((await failure(v().verify(bearer(token)))).code).toBe('TOKEN_MALFORMED');
    expect(jwks.requests).toBe(before);
  });

  it('crit is TOKEN_MALFORMED', async () => {
    const token = await signRaw(rsa, { crit: ['exp'], exp: 1 }, claims(issuer));
    expect((await failure(v().verify(bearer(token)))).code).toBe('TOKEN_MALFORMED');
    // the same hand-signed token without crit passes, so the refusal is about crit
    expect((await v().verify(bearer(await signRaw(rsa, {}, claims(issuer))))).userId).toBe('user-1');
  });

  it('bad signature and unknown kid are TOKEN_SIGNATURE_INVALID', async () => {
    const token = await signToken(rsa, claims(issuer));
    const [h, p] = token.split('.');
    const other = await signToken(rsa, claims(issuer, { sub: 'user-2' }));
    const forged = `${h}.${p}.${other.split('.')[2]}`;
    expect((await failure(v().verify(bearer(forged)))).code).toBe('TOKEN_SIGNATURE_INVALID');
    const tampered = `${h}.${b64url(claims(issuer, { sub: 'admin' }))}.${token.split('.')[2]}`;
    expect((await failure(v().verify(bearer(tampered)))).code).toBe('TOKEN_SIGNATURE_INVALID');
    const stranger = await createTestKey('RS256');
    expect((await failure(v().verify(bearer(await signToken(stranger, claims(issuer))))))).toMatchObject({ code: 'TOKEN_SIGNATURE_INVALID' });
    // same kid as a known key, but another key pair
    const impostor = { ...stranger, kid: rsa.kid };
    expect((await failure(v().verify(bearer(await signToken(impostor, claims(issuer))))))).toMatchObject({ code: 'TOKEN_SIGNATURE_INVALID' });
  });

  it('exp required, expired, nbf and iat in the future', async () => {
    const now = nowSeconds();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ exp: undefined }, 'TOKEN_EXPIRED'],
      [{ exp: 'tomorrow' }, 'TOKEN_EXPIRED'],
      [{ exp: now - 31 }, 'TOKEN_EXPIRED'],
      [{ exp: now - 6 }, 'TOKEN_EXPIRED'],
      [{ nbf: now + 120 }, 'TOKEN_NOT_YET_VALID'],
      [{ iat: now + 120 }, 'TOKEN_NOT_YET_VALID'],
    ];
    for (const [over, code] of cases) {
      expect((await failure(v().verify(bearer(await signToken(rsa, claims(issuer, over))))))).toMatchObject({ code });
    }
    // inside the (default 5 s) tolerance
    const ok = await signToken(rsa, claims(issuer, { nbf: now + 3, iat: now + 3, exp: now - 2 }));
    expect((await v().verify(bearer(ok))).userId).toBe('user-1');
  });

  it('unknown issuer and audience mismatch', async () => {
    expect((await failure(v().verify(bearer(await signToken(rsa, claims('https://evil.example')))))).code).toBe('TOKEN_ISSUER_UNKNOWN');
    expect((await failure(v().verify(bearer(await signToken(rsa, claims(issuer, { iss: undefined }))))))).toMatchObject({
      code: 'TOKEN_ISSUER_UNKNOWN',
    });
    for (const aud of ['api://other', ['x', 'y'], undefined, 42]) {
      const e = await failure(v().verify(bearer(await signToken(rsa, claims(issuer, { aud })))));
      expect(e.code).toBe('TOKEN_AUDIENCE_MISMATCH');
    }
    expect((await v().verify(bearer(await signToken(rsa, claims(issuer, { aud: ['x', 'api://test'] }))))).userId).toBe('user-1');
  });

  it('typ required (RFC 9068)', async () => {
    const at = verifier({}, { requireTyp: 'at+jwt' });
    expect((await at.verify(bearer(await signToken(rsa, claims(issuer), { typ: 'at+jwt' })))).userId).toBe('user-1');
    expect((await at.verify(bearer(await signToken(rsa, claims(issuer), { typ: 'application/AT+JWT' })))).userId).toBe('user-1');
    expect((await failure(at.verify(bearer(await signToken(rsa, claims(issuer), { typ: 'JWT' })))))).toMatchObject({ code: 'TOKEN_MALFORMED' });
    expect((await failure(at.verify(bearer(await signToken(rsa, claims(issuer))))))).toMatchObject({ code: 'TOKEN_MALFORMED' });
  });

  it('USER_CLAIM_MISSING for absent, empty, non-string, too long or control characters', async () => {
    for (const sub of [undefined, '', 'a'.repeat(257), 'alice\n', 'bob\u0000', 'x\u007f']) {
      const e = await failure(v().verify(bearer(await signToken(rsa, claims(issuer, { sub })))));
      expect(e.code).toBe('USER_CLAIM_MISSING');
    }
    const byEmail = verifier({}, { userIdClaim: 'email' });
    for (const email of [{ a: 1 }, ['a@b.c']]) {
      expect((await failure(byEmail.verify(bearer(await signToken(rsa, claims(issuer, { email }))))))).toMatchObject({ code: 'USER_CLAIM_MISSING' });
    }
    expect((await failure(v().verify(bearer(await signToken(rsa, claims(issuer, { sub: { id: 1 } }))))))).toMatchObject({ code: 'TOKEN_MALFORMED' });
  });

  it('DOMAIN_NOT_ALLOWED: exact, case-insensitive domain match; email_verified not exactly true', async () => {
    const d = verifier({}, { allowedDomains: ['company.com'] });
    for (const email of ['a@evilcompany.com', 'a@company.com.evil.io', 'a@sub.company.com', 'company.com', 'a@company.com@evil.io', undefined]) {
      const e = await failure(d.verify(bearer(await signToken(rsa, claims(issuer, { email, email_verified: true })))));
      expect(e.code).toBe('DOMAIN_NOT_ALLOWED');
      expect(e.status).toBe(403);
    }
    for (const email_verified of [false, 'false', undefined, null, 0, 'False']) {
      const e = await failure(d.verify(bearer(await signToken(rsa, claims(issuer, { email: 'a@company.com', email_verified })))));
      expect(e.code).toBe('DOMAIN_NOT_ALLOWED');
    }
    expect((await d.verify(bearer(await signToken(rsa, claims(issuer, { email: 'A@COMPANY.com', email_verified: true }))))).domain).toBe('company.com');
  });

  it('delegation deeper than maxDelegationDepth, or a bad act, is TOKEN_MALFORMED', async () => {
    const shallow = verifier({}, { maxDelegationDepth: 2 });
    const deep = { sub: 'a1', act: { sub: 'a2', act: { sub: 'a3' } } };
    expect((await failure(shallow.verify(bearer(await signToken(rsa, claims(issuer, { act: deep }))))))).toMatchObject({ code: 'TOKEN_MALFORMED' });
    expect((await failure(shallow.verify(bearer(await signToken(rsa, claims(issuer, { act: { iss: 'x' } }))))))).toMatchObject({
      code: 'TOKEN_MALFORMED',
    });
    expect((await shallow.verify(bearer(await signToken(rsa, claims(issuer, { act: { sub: 'a1', act: { sub: 'a2' } } }))))).actorChain).toHaveLength(2);
  });

  it('INSUFFICIENT_SCOPE with scope= in the challenge, via verify and requireScopes', async () => {
    const token = await signToken(rsa, claims(issuer, { scope: 'read' }));
    const e = await failure(v().verify(bearer(token), { requiredScopes: ['read', 'write'] }));
    expect(e.code).toBe('INSUFFICIENT_SCOPE');
    expect(e.status).toBe(403);
    expect(e.wwwAuthenticate).toContain('error="insufficient_scope"');
    expect(e.wwwAuthenticate).toContain('scope="read write"');
    expect(e.wwwAuthenticate).toContain('realm="agents"');
    const verifierInstance = v();
    const ctx = await verifierInstance.verify(bearer(token), { requiredScopes: ['read'] });
    expect(() => verifierInstance.requireScopes(ctx, ['read'])).not.toThrow();
    expect(() => verifierInstance.requireScopes(ctx, ['admin'])).toThrowError(expect.objectContaining({ code: 'INSUFFICIENT_SCOPE' }));
  });

  it('no error message or field ever contains the token', async () => {
    const token = await signToken(rsa, claims(issuer, { aud: 'nope' }));
    const e = await failure(v().verify(bearer(token)));
    expect(JSON.stringify({ ...e, message: e.message, www: e.wwwAuthenticate })).not.toContain(token.split('.')[1]);
  });
});

describe('createVerifier: providers by issuer and host', () => {
  it('chooses the provider by iss and host; a provider with host never matches another host', async () => {
    const other = await createTestKey('ES256');
    const jwks2 = await startJwksServer([other.publicJwk]);
    try {
      const v = createVerifier({
        providers: [
          { issuer, jwksUri: jwks.url, audiences: ['api://test'], host: 'portal.example.com' },
          { issuer: jwks2.origin, jwksUri: jwks2.url, audiences: ['api://test'] },
        ],
      });
      const t1 = await signToken(rsa, claims(issuer));
      expect((await v.verify({ headers: { authorization: `Bearer ${t1}`, host: 'Portal.Example.com:443' } })).issuer).toBe(issuer);
      expect((await v.verify({ headers: { authorization: `Bearer ${t1}` }, host: 'portal.example.com' })).userId).toBe('user-1');
      const e = await failure(v.verify({ headers: { authorization: `Bearer ${t1}`, host: 'evil.example.com' } }));
      expect(e.code).toBe('TOKEN_ISSUER_UNKNOWN');
      // and the cached token does not get through on another host either
      expect((await failure(v.verify(new Request('http://evil.example.com/', { headers: { authorization: `Bearer ${t1}` } })))).code).toBe(
        'TOKEN_ISSUER_UNKNOWN',
      );
      const t2 = await signToken(other, claims(jwks2.origin));
      expect((await v.verify({ headers: { authorization: `Bearer ${t2}`, host: 'anything.example' } })).issuer).toBe(jwks2.origin);
      // a token of issuer 2 signed with issuer 1's key fails
      const cross = await signToken({ ...rsa, kid: other.kid }, claims(jwks2.origin));
      expect((await failure(v.verify({ headers: { authorization: `Bearer ${cross}` } }))).code).toBe('TOKEN_SIGNATURE_INVALID');
    } finally {
      await jwks2.close();
    }
  });
});

describe('createVerifier: configuration', () => {
  it.each([
    [{ providers: [{ issuer: 'x', jwksUri: 'http://idp.example.com/jwks' }] }, 'providers.0.jwksUri'],
    [{ providers: [{ issuer: 'x', jwksUri: 'ftp://127.0.0.1/jwks' }] }, 'providers.0.jwksUri'],
    [{ providers: [{ issuer: 'x', jwksUri: 'https://idp/jwks', algorithms: ['HS256'] }] }, 'providers.0.algorithms.0'],
    [{ providers: [{ issuer: 'x', jwksUri: 'https://idp/jwks', algorithms: ['none'] }] }, 'providers.0.algorithms.0'],
    [{ providers: [{ issuer: 'x', jwksUri: 'https://idp/jwks', audience: ['typo'] }] }, 'providers.0.audience'],
    [{ providers: [] }, 'providers'],
    [{ providers: [{ issuer: 'x', jwksUri: 'https://idp/jwks', audiences: ['a'] }], jwksCooldownMs: 0 }, 'jwksCooldownMs'],
    [{ providers: [{ issuer: 'x', jwksUri: 'https://idp/jwks', audiences: ['a'] }], resourceMetadataUrl: 'http://api.example.com/x' }, 'resourceMetadataUrl'],
    [{ providers: [{ issuer: 'x', jwksUri: 'https://idp/jwks', allowedDomains: ['@company.com'] }] }, 'providers.0.allowedDomains.0'],
  ])('CONFIG_INVALID names the field (%#)', (options, field) => {
    let error: { code?: string; field?: string; message?: string } | undefined;
    try {
      createVerifier(options as never);
    } catch (e) {
      error = e as never;
    }
    expect(error?.code).toBe('CONFIG_INVALID');
    expect(error?.field).toContain(field);
  });

  it('accepts http JWKS on loopback hosts', () => {
    for (const jwksUri of ['http://127.0.0.1:1/jwks', 'http://localhost:1/jwks', 'http://[::1]:1/jwks']) {
      expect(() => createVerifier({ providers: [{ issuer: 'x', jwksUri, audiences: ['a'] }] })).not.toThrow();
    }
  });
});
