import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportJWK } from 'jose';
import { createVerifier, type VerifierOptions } from '../../src/inbound/index.js';
import { testClock } from '../helpers/clock.js';
import { jwksServerPool, trackedFetch, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signRaw, signToken, type TestKey } from '../helpers/tokens.js';

let k1: TestKey;
let k2: TestKey;
const pool = jwksServerPool();

beforeAll(async () => {
  [k1, k2] = await Promise.all([createTestKey('RS256'), createTestKey('ES256')]);
});
afterEach(() => pool.closeAll());

function server(keys = [k1.publicJwk]): Promise<JwksServer> {
  return pool.start(keys);
}

function verifierFor(s: JwksServer, extra: Partial<VerifierOptions> = {}) {
  return createVerifier({ providers: [{ issuer: s.origin, jwksUri: s.url, audiences: ['api://test'] }], jwksCooldownMs: 200, ...extra });
}

const req = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    return (e as { code: string }).code;
  }
}

// Cool-downs and max ages read the test clock (installed per test, see ../helpers/clock.ts); the
// JWKS server, its answers and the fetch timeouts are real.
describe('JWKS cache', () => {
  it('fetches once and caches; concurrent cold misses share one fetch', async () => {
    const s = await server();
    s.mode = 'hang'; // held until every caller is waiting
    const v = verifierFor(s, { cacheSize: 0 });
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => signToken(k1, claims(s.origin, { sub: `u${i}` }))));
    const verifying = Promise.all(tokens.map((t) => v.verify(req(t))));
    await vi.waitFor(() => expect(s.held).toBe(1));
    s.mode = 'ok';
    s.release();
    const results = await verifying;
    expect(results.map((r) => r.userId)).toEqual(tokens.map((_, i) => `u${i}`));
    expect(s.requests).toBe(1);
    await v.verify(req(tokens[0] as string));
    expect(s.requests).toBe(1);
  });

  it('rotation: an unknown kid triggers one refetch; the verified-token cache is emptied when keys change', async () => {
    const clock = testClock();
    const s = await server([k1.publicJwk]);
    const v = verifierFor(s);
    const old = await signToken(k1, claims(s.origin));
    expect((await v.verify(req(old))).userId).toBe('user-1');
    expect(s.requests).toBe(1);
    s.keys = [k2.publicJwk]; // k1 retired, k2 published
    clock.advance(220); // past the 200 ms cool-down
    // the cached old token is still honoured while the set has not been re-read
    expect(await codeOf(v.verify(req(old)))).toBe('OK');
    const fresh = await signToken(k2, claims(s.origin));
    expect((await v.verify(req(fresh))).userId).toBe('user-1');
    expect(s.requests).toBe(2);
    // the key set changed: the old token's cache entry is void and its key is gone
    expect(await codeOf(v.verify(req(old)))).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('unknown kids: at most one refetch per cool-down', async () => {
    const clock = testClock();
    const s = await server();
    const v = verifierFor(s, { jwksCooldownMs: 300 });
    const stranger = await createTestKey('ES256');
    const flood = await Promise.all(
      Array.from({ length: 20 }, (_, i) => signToken({ ...stranger, kid: `random-${i}` }, claims(s.origin))),
    );
    const first = await signToken(k1, claims(s.origin));
    await v.verify(req(first));
    expect(s.requests).toBe(1);
    const codes = await Promise.all(flood.map((t) => codeOf(v.verify(req(t)))));
    expect(new Set(codes)).toEqual(new Set(['TOKEN_SIGNATURE_INVALID']));
    expect(s.requests).toBe(1); // still inside the cool-down of the first fetch
    clock.advance(299);
    expect(await codeOf(v.verify(req(flood[0] as string)))).toBe('TOKEN_SIGNATURE_INVALID');
    expect(s.requests).toBe(1); // 1 ms before its end
    clock.advance(21);
    for (const t of flood.slice(0, 5)) expect(await codeOf(v.verify(req(t)))).toBe('TOKEN_SIGNATURE_INVALID');
    expect(s.requests).toBe(2);
  });

  it('outage: cached keys keep serving (also past max age); new kids fail until it recovers', async () => {
    const clock = testClock();
    const s = await server([k1.publicJwk]);
    const fetches = trackedFetch();
    const v = verifierFor(s, { jwksMaxAgeMs: 1000, cacheSize: 0, fetch: fetches.fetch });
    const t1 = await signToken(k1, claims(s.origin));
    await v.verify(req(t1));
    s.mode = 'down';
    s.keys = [k1.publicJwk, k2.publicJwk];
    clock.advance(1050);
    expect(await codeOf(v.verify(req(t1)))).toBe('OK'); // stale keys served at once; the re-read runs in the background and fails
    await vi.waitFor(() => expect(fetches.ended).toBe(2), { interval: 5 });
    expect(s.requests).toBe(2);
    const t2 = await signToken(k2, claims(s.origin));
    expect(await codeOf(v.verify(req(t2)))).toBe('TOKEN_SIGNATURE_INVALID');
    s.mode = 'ok';
    clock.advance(220);
    expect(await codeOf(v.verify(req(t2)))).toBe('OK');
  });

  it('no keys at all: JWKS_UNAVAILABLE (503) for down, hanging, slow, oversized, invalid and redirecting answers; recovers', async () => {
    const clock = testClock();
    const s = await server();
    const t = await signToken(k1, claims(s.origin));
    // Hanging and slow answers end with the (real) 150 ms fetch timeout; how long that takes under
    // load is measured in test/reliability/jwks-faults.test.ts, not here.
    for (const mode of ['down', 'hang', 'slow', 'huge', 'garbage', 'redirect'] as const) {
      s.mode = mode;
      s.delayMs = 400;
      const v = verifierFor(s, { jwksTimeoutMs: 150 });
      let error: { code?: string; status?: number; wwwAuthenticate?: string } = {};
      try {
        await v.verify(req(t));
      } catch (e) {
        error = e as never;
      }
      expect(error.code, mode).toBe('JWKS_UNAVAILABLE');
      expect(error.status).toBe(503);
      expect(error.wwwAuthenticate).toBe('Bearer');
      if (mode === 'hang') await vi.waitFor(() => expect(s.abandoned).toBe(1)); // the client gave up on it: the timeout
    }
    s.mode = 'down';
    const v = verifierFor(s, { jwksCooldownMs: 5000 }); // retry window with no keys: min(cool-down, 1 s)
    expect(await codeOf(v.verify(req(t)))).toBe('JWKS_UNAVAILABLE');
    const before = s.requests;
    expect(await codeOf(v.verify(req(t)))).toBe('JWKS_UNAVAILABLE'); // inside the retry window: no new fetch
    expect(s.requests).toBe(before);
    s.mode = 'ok';
    clock.advance(999);
    expect(await codeOf(v.verify(req(t)))).toBe('JWKS_UNAVAILABLE'); // 1 ms before the window ends
    expect(s.requests).toBe(before);
    clock.advance(21);
    expect(await codeOf(v.verify(req(t)))).toBe('OK');
  });

  it('a cached token whose key was retired stops passing once the stale key set is re-read', async () => {
    const clock = testClock();
    const s = await server([k1.publicJwk]);
    const fetches = trackedFetch();
    const v = verifierFor(s, { jwksMaxAgeMs: 1000, fetch: fetches.fetch });
    const t1 = await signToken(k1, claims(s.origin));
    await v.verify(req(t1));
    s.keys = [k2.publicJwk];
    clock.advance(1050);
    expect(await codeOf(v.verify(req(t1)))).toBe('OK'); // served from the cache, kicks off a background re-read
    await vi.waitFor(() => expect(fetches.ended).toBe(2), { interval: 5 }); // the re-read has landed
    expect(s.requests).toBe(2);
    expect(await codeOf(v.verify(req(t1)))).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('duplicate kids in the key set are a typed error, not a crash', async () => {
    const twin = await createTestKey('RS256', k1.kid);
    const s = await server([k1.publicJwk, twin.publicJwk]);
    const v = verifierFor(s);
    let error: { code?: string; message?: string } = {};
    try {
      await v.verify(req(await signToken(k1, claims(s.origin))));
    } catch (e) {
      error = e as never;
    }
    expect(error.code).toBe('TOKEN_SIGNATURE_INVALID');
    expect(error.message).toMatch(/share the token kid/);
  });

  it('ignores private, symmetric and short RSA keys in the set; accepts a token without kid when one key fits', async () => {
    const weak = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const weakKey: TestKey = {
      kid: 'weak',
      alg: 'RS256',
      privateKey: weak.privateKey,
      publicKey: weak.publicKey,
      publicJwk: { ...(await exportJWK(weak.publicKey)), kid: 'weak', alg: 'RS256' },
    };
    const privateJwk = { ...(await exportJWK(k2.privateKey)), kid: k2.kid };
    const s = await server([weakKey.publicJwk, privateJwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hs' }, k1.publicJwk]);
    const v = verifierFor(s);
    expect(await codeOf(v.verify(req(await signRaw(weakKey, {}, claims(s.origin)))))).toBe('TOKEN_SIGNATURE_INVALID');
    expect(await codeOf(v.verify(req(await signToken(k2, claims(s.origin)))))).toBe('TOKEN_SIGNATURE_INVALID');
    expect(await codeOf(v.verify(req(await signRaw(k1, { kid: undefined }, claims(s.origin)))))).toBe('OK'); // the weak key also matches but is unusable; k1 fits
  });
});
