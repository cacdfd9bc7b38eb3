/**
 * The verified-token cache answers without a promise chain of its own (`verifyNow`, used by the
 * adapters). Every per-request check must still run on that path: header hygiene, the length cap,
 * exp/nbf against the clock of this request, the host binding, requiredScopes, a fresh requestId,
 * the key-set generation, and the audit event.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.js';
import { rawTokenOf } from '../../src/context.js';
import { createVerifier, type VerifierOptions } from '../../src/inbound/index.js';
import { verifyNow } from '../../src/inbound/verifier.js';
import { testClock } from '../helpers/clock.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, nowSeconds, signToken, type TestKey } from '../helpers/tokens.js';

let s: JwksServer;
let key: TestKey;
beforeAll(async () => {
  key = await createTestKey('ES256');
  s = await startJwksServer([key.publicJwk]);
});
afterAll(() => s.close());
afterEach(() => {
  vi.useRealTimers();
});

const req = (token: string, extra: Record<string, string | string[]> = {}) => ({ headers: { authorization: `Bearer ${token}`, ...extra } });
const v = (extra: Partial<VerifierOptions> = {}, provider: Record<string, unknown> = {}) =>
  createVerifier({ providers: [{ issuer: s.origin, jwksUri: s.url, audiences: ['api://test'], ...provider }], ...extra });

describe('verifyNow: the cache-hit fast path', () => {
  it('a miss is a promise, a hit is the context itself (fresh, frozen, with its raw token attached)', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin, { scope: 'read' }));
    const miss = verifyNow(verifier, req(token));
    expect(miss).toBeInstanceOf(Promise);
    const first = await miss;
    const hit = verifyNow(verifier, req(token, { 'x-request-id': 'r-2' }));
    expect(hit).not.toBeInstanceOf(Promise);
    const ctx = hit as Exclude<typeof hit, Promise<unknown>>;
    expect(ctx).not.toBe(first);
    expect(ctx.claims).toBe(first.claims);
    expect(ctx.requestId).toBe('r-2');
    expect(Object.isFrozen(ctx)).toBe(true);
    expect(rawTokenOf(ctx)).toBe(token);
    expect(JSON.stringify(ctx)).not.toContain(token.split('.')[2]);
  });

  it('verify() still always answers with a promise, also for failures found before any I/O', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin));
    await verifier.verify(req(token));
    const hit = verifier.verify(req(token));
    expect(hit).toBeInstanceOf(Promise);
    await expect(hit).resolves.toMatchObject({ authenticated: true });
    const duplicate = verifier.verify({ headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } });
    expect(duplicate).toBeInstanceOf(Promise);
    await expect(duplicate).rejects.toMatchObject({ code: 'TOKEN_MALFORMED', status: 400 });
    await expect(verifier.verify({ headers: {} })).rejects.toMatchObject({ code: 'TOKEN_MISSING' });
    // the synchronous entry throws instead
    expect(() => verifyNow(verifier, { headers: {} })).toThrow(expect.objectContaining({ code: 'TOKEN_MISSING' }));
  });

  it('a cached token is refused once its exp has passed, and not honoured before its nbf', async () => {
    const verifier = v({}, { clockTolerance: 0 });
    const now = nowSeconds();
    const token = await signToken(key, claims(s.origin, { iat: now - 10, nbf: now - 5, exp: now + 60 }));
    await verifier.verify(req(token));
    expect(verifyNow(verifier, req(token))).not.toBeInstanceOf(Promise); // cached
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime((now + 61) * 1000);
    // the entry is dropped and the full path refuses the token
    await expect(verifier.verify(req(token))).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
    vi.setSystemTime(now * 1000);
    // and it is not a hit any more: the next call verifies it again (a promise)
    const again = verifyNow(verifier, req(token));
    expect(again).toBeInstanceOf(Promise);
    await again;
    // an entry is never served before nbf either (a clock moved back)
    expect(verifyNow(verifier, req(token))).not.toBeInstanceOf(Promise);
    vi.setSystemTime((now - 6) * 1000);
    await expect(verifier.verify(req(token))).rejects.toMatchObject({ code: 'TOKEN_NOT_YET_VALID' });
  });

  it('a cached token on the wrong host is refused; the right host still hits', async () => {
    const verifier = v({}, { host: 'portal.example.com' });
    const token = await signToken(key, claims(s.origin));
    await verifier.verify(req(token, { host: 'portal.example.com' }));
    expect(verifyNow(verifier, req(token, { host: 'portal.example.com' }))).not.toBeInstanceOf(Promise);
    await expect(verifier.verify(req(token, { host: 'evil.example.com' }))).rejects.toMatchObject({ code: 'TOKEN_ISSUER_UNKNOWN' });
    await expect(verifier.verify({ ...req(token), host: 'portal.example.com.evil.test' })).rejects.toMatchObject({
      code: 'TOKEN_ISSUER_UNKNOWN',
    });
    await expect(verifier.verify(req(token))).rejects.toMatchObject({ code: 'TOKEN_ISSUER_UNKNOWN' }); // no host at all
    await expect(verifier.verify(req(token, { host: 'PORTAL.example.com.' }))).resolves.toMatchObject({ authenticated: true });
  });

  it('header hygiene and the length cap run before the cache', async () => {
    const verifier = v({ maxTokenLength: 1024 });
    const token = await signToken(key, claims(s.origin, { pad: 'x'.repeat(300) }));
    expect(token.length).toBeLessThan(1024);
    await verifier.verify(req(token));
    expect(() => verifyNow(verifier, { headers: { authorization: `Bearer ${token}`, Authorization: `Bearer ${token}` } })).toThrow(
      expect.objectContaining({ code: 'TOKEN_MALFORMED', status: 400 }),
    );
    expect(() => verifyNow(verifier, { ...req(token), rawHeaders: ['Authorization', `Bearer ${token}`, 'authorization', `Bearer ${token}`] })).toThrow(
      expect.objectContaining({ status: 400 }),
    );
    expect(() => verifyNow(verifier, { headers: { authorization: `Bearer ${token},x` } })).toThrow(
      expect.objectContaining({ status: 400 }),
    );
    const small = v({ maxTokenLength: 256 });
    await expect(small.verify(req(token))).rejects.toMatchObject({ code: 'TOKEN_MALFORMED' });
    expect(verifyNow(verifier, { headers: { authorization: `bEaReR ${token}` } })).not.toBeInstanceOf(Promise);
    expect(() => verifyNow(verifier, { headers: { authorization: `Bearerx${token}` } })).toThrow(expect.objectContaining({ code: 'TOKEN_MISSING' }));
    expect(() => verifyNow(verifier, { headers: { authorization: `Basic ${token}` } })).toThrow(expect.objectContaining({ code: 'TOKEN_MISSING' }));
  });

  it('requiredScopes is checked on every hit', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin, { scope: 'read' }));
    await verifier.verify(req(token), { requiredScopes: ['read'] });
    expect(verifyNow(verifier, req(token), { requiredScopes: ['read'] })).not.toBeInstanceOf(Promise);
    expect(() => verifyNow(verifier, req(token), { requiredScopes: ['write'] })).toThrow(expect.objectContaining({ code: 'INSUFFICIENT_SCOPE' }));
  });

  it('a key-set change empties the cache: a token of the removed key is refused', async () => {
    const clock = testClock();
    const other = await createTestKey('ES256');
    const jwks = await startJwksServer([key.publicJwk, other.publicJwk]);
    try {
      const verifier = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] }], jwksCooldownMs: 100 });
      const token = await signToken(other, claims(jwks.origin));
      await verifier.verify(req(token));
      expect(verifyNow(verifier, req(token))).not.toBeInstanceOf(Promise);
      // rotate: the other key is gone; a token with a new kid makes the verifier re-read the set
      jwks.keys = [key.publicJwk];
      clock.advance(120); // past the 100 ms cool-down
      const unknown = await signToken(await createTestKey('ES256'), claims(jwks.origin));
      await expect(verifier.verify(req(unknown))).rejects.toMatchObject({ code: 'TOKEN_SIGNATURE_INVALID' });
      await expect(verifier.verify(req(token))).rejects.toMatchObject({ code: 'TOKEN_SIGNATURE_INVALID' });
    } finally {
      await jwks.close();
    }
  });

  it('every hit is audited with its own requestId, and a synchronous refusal too', async () => {
    const events: AuditEvent[] = [];
    const verifier = v({ audit: (e) => void events.push(e) });
    const token = await signToken(key, claims(s.origin, { sub: 'alice' }));
    await verifier.verify({ ...req(token), method: 'GET', url: '/a?q=secret' });
    const hit = verifyNow(verifier, { ...req(token, { 'x-request-id': 'hit-1' }), method: 'POST', url: '/b?q=secret' });
    expect(hit).not.toBeInstanceOf(Promise);
    expect(() => verifyNow(verifier, { headers: {}, method: 'GET', url: '/c' })).toThrow();
    expect(events.map((e) => [e.decision, e.path, e.method])).toEqual([
      ['allow', '/a', 'GET'],
      ['allow', '/b', 'POST'],
      ['deny', '/c', 'GET'],
    ]);
    expect(events[1]).toMatchObject({ type: 'inbound.verify', userId: 'alice', requestId: 'hit-1' });
    expect(events[2]).toMatchObject({ code: 'TOKEN_MISSING' });
    expect(JSON.stringify(events)).not.toContain(token);
    expect(JSON.stringify(events)).not.toContain('secret');
  });

  it('open mode without a token answers synchronously with a fresh anonymous context', () => {
    const verifier = v({ mode: 'open' });
    const a = verifyNow(verifier, { headers: {} });
    const b = verifyNow(verifier, { headers: {} });
    expect(a).toMatchObject({ authenticated: false, userId: undefined });
    expect(a).not.toBe(b);
  });

  it('falls back to verify() for a verifier object without the internal entry', async () => {
    const verifier = v();
    const token = await signToken(key, claims(s.origin));
    const wrapped = { verify: verifier.verify, requireScopes: verifier.requireScopes, mode: verifier.mode };
    const result = verifyNow(wrapped, req(token));
    expect(result).toBeInstanceOf(Promise);
    await expect(result).resolves.toMatchObject({ authenticated: true });
  });
});
