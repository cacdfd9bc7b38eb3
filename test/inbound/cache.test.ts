import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type VerifierOptions } from '../../src/inbound/index.js';
import { testClock } from '../helpers/clock.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken, type TestKey } from '../helpers/tokens.js';

let s: JwksServer;
let key: TestKey;
beforeAll(async () => {
  key = await createTestKey('ES256');
  s = await startJwksServer([key.publicJwk]);
});
afterAll(() => s.close());

const req = (token: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${token}`, ...extra } });
const v = (extra: Partial<VerifierOptions> = {}, provider: Record<string, unknown> = {}) =>
  createVerifier({ providers: [{ issuer: s.origin, jwksUri: s.url, audiences: ['api://test'], ...provider }], ...extra });

describe('verified-token cache', () => {
  it('a seen token is served from the cache with a fresh requestId and a fresh frozen context', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin, { scope: 'read' }));
    const a = await verifier.verify(req(token));
    const b = await verifier.verify(req(token, { 'x-request-id': 'second' }));
    expect(b.claims).toBe(a.claims); // same verified payload, no second verification
    expect(b).not.toBe(a);
    expect(b.requestId).toBe('second');
    expect(a.requestId).not.toBe(b.requestId);
    expect(Object.isFrozen(b)).toBe(true);
    // per-request checks still apply on a hit
    await expect(verifier.verify(req(token), { requiredScopes: ['write'] })).rejects.toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
  });

  it('a token that differs in one character is not a hit', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin));
    await verifier.verify(req(token));
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    const altered = `${token.slice(0, -2)}${last}${token.at(-1)}`;
    await expect(verifier.verify(req(altered))).rejects.toMatchObject({ code: 'TOKEN_SIGNATURE_INVALID' });
  });

  it('a token with the same signature but another payload is not a hit (the cache key is only the tail)', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin, { sub: 'alice' }));
    await verifier.verify(req(token));
    const [header, , signature] = token.split('.') as [string, string, string];
    const forged = `${header}.${Buffer.from(JSON.stringify(claims(s.origin, { sub: 'mallory' }))).toString('base64url')}.${signature}`;
    await expect(verifier.verify(req(forged))).rejects.toMatchObject({ code: 'TOKEN_SIGNATURE_INVALID' });
    expect((await verifier.verify(req(token))).userId).toBe('alice'); // and the real one is still served
  });

  it('cacheSize 0 disables it; the cache is bounded (LRU)', async () => {
    const off = v({ cacheSize: 0 });
    const token = await signToken(key, claims(s.origin));
    expect((await off.verify(req(token))).claims).not.toBe((await off.verify(req(token))).claims);
    const small = v({ cacheSize: 2 });
    const [t1, t2, t3] = await Promise.all([1, 2, 3].map((i) => signToken(key, claims(s.origin, { sub: `u${i}` }))));
    const c1 = (await small.verify(req(t1 as string))).claims;
    await small.verify(req(t2 as string));
    await small.verify(req(t3 as string));
    expect((await small.verify(req(t1 as string))).claims).not.toBe(c1); // evicted
  });

  it('an entry never outlives exp', async () => {
    const clock = testClock();
    const verifier = v({}, { clockTolerance: 0 });
    const exp = Math.floor(clock.now() / 1000) + 1;
    const token = await signToken(key, claims(s.origin, { exp, iat: exp - 60 }));
    const first = await verifier.verify(req(token));
    expect((await verifier.verify(req(token))).claims).toBe(first.claims); // cached
    clock.set(exp * 1000 + 20);
    await expect(verifier.verify(req(token))).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
  });

  it('a token is not cached before its nbf', async () => {
    const clock = testClock();
    const verifier = v(); // the tolerance accepts an nbf 1 s ahead, but it must not be cached
    const nbf = Math.floor(clock.now() / 1000) + 1;
    const token = await signToken(key, claims(s.origin, { nbf }));
    const a = await verifier.verify(req(token));
    const b = await verifier.verify(req(token));
    expect(b.claims).not.toBe(a.claims);
    clock.set(nbf * 1000 + 20);
    const c = await verifier.verify(req(token));
    expect((await verifier.verify(req(token))).claims).toBe(c.claims);
  });
});
