/**
 * Properties the inbound tests (test/inbound/hostile-input.test.ts) do not cover yet: segments of
 * random bytes (invalid UTF-8 included), random JOSE headers and random claim values that carry a
 * VALID signature (so parsing reaches every claim check), and sizes around the length cap. The
 * verifier must answer with an inbound AgentIamError or a sane context: never a crash, never a
 * plain Error, never a context whose user id is not a clean string.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAgentIamError, isInboundCode, type AgentIamErrorCode } from '../../src/errors.js';
import { createVerifier, type Verifier } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { b64url, createTestKey, nowSeconds, signRaw, type TestKey } from '../helpers/tokens.js';

let server: JwksServer;
let key: TestKey;
let v: Verifier;
const MAX = 4096;

beforeAll(async () => {
  key = await createTestKey('ES256', 'k-hostile');
  server = await startJwksServer([key.publicJwk]);
  v = createVerifier({
    providers: [{ issuer: server.origin, jwksUri: server.url, audiences: ['api://test'], allowedDomains: ['example.com'] }],
    maxTokenLength: MAX,
    jwksCooldownMs: 100_000,
    cacheSize: 64,
  });
});
afterAll(() => server.close());

const seen: Record<string, number> = {};
/** Verify; a rejection must be a typed inbound error, an acceptance a sane context. */
async function check(token: string): Promise<'ok' | AgentIamErrorCode> {
  try {
    const ctx = await v.verify({ headers: { authorization: `Bearer ${token}` } });
    expect(typeof ctx.userId).toBe('string');
    expect(ctx.userId!.length).toBeGreaterThan(0);
    expect(/[\u0000-\u001f\u007f]/.test(ctx.userId!)).toBe(false);
    expect(ctx.domain).toBe('example.com');
    expect(Object.isFrozen(ctx)).toBe(true);
    seen.ok = (seen.ok ?? 0) + 1;
    return 'ok';
  } catch (e) {
    if (!isAgentIamError(e)) throw new Error(`not an AgentIamError: ${String(e)}`);
    expect(isInboundCode(e.code), e.code).toBe(true);
    expect(e.wwwAuthenticate).toMatch(/^Bearer/);
    if (token.length >= 16) expect(e.message).not.toContain(token.slice(-16));
    seen[e.code] = (seen[e.code] ?? 0) + 1;
    return e.code;
  }
}

const bytesSeg = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('base64url'));
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', 'a\nb', 'x\u0000y', '\u202e', 'ab\ud800', '__proto__', 'constructor', 'toString', 'a'.repeat(5000)),
);
/** Mostly the valid value, sometimes anything: so that most tokens reach the later checks. */
const mostly = <T,>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: anyJson, weight: 1 });
const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), hostileString, fc.constantFrom(null, true, 1e308, -1, 0, Number.MAX_SAFE_INTEGER + 2));

describe('hostile tokens (properties)', () => {
  it('segments of random bytes, including invalid UTF-8 and empty segments', async () => {
    await fc.assert(
      fc.asyncProperty(bytesSeg, bytesSeg, bytesSeg, fc.constantFrom('.', '..', ''), async (h, p, s, extra) => {
        expect(await check(`${h}.${p}.${s}${extra === '' ? '' : extra + s}`)).not.toBe('ok');
      }),
      { numRuns: 300 },
    );
  });

  it('random JOSE headers with a valid ES256 signature: typed rejections (embedded jwk, jku, x5u never trusted)', async () => {
    const header = fc.record(
      {
        alg: mostly(fc.oneof(fc.constantFrom('ES256', 'es256', 'none', 'HS256', 'RS256', 'ES256 ', ''))),
        kid: mostly(fc.oneof(fc.constant('k-hostile'))),
        typ: fc.oneof(fc.constantFrom('JWT', 'at+jwt', 'application/at+jwt'), anyJson),
        crit: fc.oneof(fc.constant(['exp']), fc.array(hostileString, { maxLength: 3 }), anyJson),
        b64: fc.oneof(fc.constant(false), anyJson),
        jku: fc.constantFrom('http://127.0.0.1:1/jwks', 'https://evil.example/jwks'),
        jwk: fc.constant(key.publicJwk),
        x5u: fc.constant('https://evil.example/cert'),
      },
      { requiredKeys: [] },
    );
    const payload = { iss: server.origin, sub: 'alice', aud: 'api://test', email: 'alice@example.com', exp: nowSeconds() + 300 };
    await fc.assert(
      fc.asyncProperty(header, async (h) => {
        const token = await signRaw(key, h as Record<string, unknown>, payload);
        await check(token);
      }),
      { numRuns: 300 },
    );
  });

  it('random claim values with a valid signature: typed rejections, or a clean user id', async () => {
    const now = nowSeconds();
    const claimsArb = fc.record(
      {
        iss: mostly(fc.oneof(fc.constant(server.origin))),
        sub: mostly(fc.oneof(fc.constantFrom('alice', 'bob'))),
        aud: mostly(fc.oneof(fc.constantFrom('api://test', ['x', 'api://test']))),
        exp: mostly(fc.oneof(fc.constant(now + 300), fc.integer({ min: now - 1000, max: now + 1000 }))),
        nbf: fc.oneof(fc.integer({ min: now - 100, max: now + 100 }), anyJson),
        iat: fc.oneof(fc.integer({ min: now - 100, max: now + 100 }), anyJson),
        email: mostly(fc.oneof(fc.constantFrom('alice@example.com', 'alice@EXAMPLE.com', 'a@example.com.evil.org', 'a@evil.org'))),
        email_verified: fc.oneof(fc.boolean(), anyJson),
        scope: anyJson,
        scp: anyJson,
        act: fc.oneof(fc.constant({ sub: 'agent-1', act: { sub: 'agent-2' } }), anyJson, fc.constant(JSON.parse('{"sub":"a","act":'.repeat(40) + '{}' + '}'.repeat(40)))),
      },
      { requiredKeys: ['iss', 'aud'] },
    );
    await fc.assert(
      fc.asyncProperty(claimsArb, async (c) => {
        const token = await signRaw(key, { typ: 'at+jwt' }, c);
        await check(token);
      }),
      { numRuns: 500 },
    );
  });

  it('sizes around the length cap: typed TOKEN_MALFORMED above it, never a crash', async () => {
    const payload = (pad: number): Record<string, unknown> => ({ iss: server.origin, sub: 'alice', aud: 'api://test', email: 'alice@example.com', exp: nowSeconds() + 300, pad: 'x'.repeat(pad) });
    const small = await signRaw(key, {}, payload(0));
    for (const target of [MAX - 1, MAX, MAX + 1, MAX * 4, 1_000_000]) {
      const pad = Math.max(0, Math.floor(((target - small.length) * 3) / 4));
      const token = await signRaw(key, {}, payload(pad));
      const got = await check(token);
      if (token.length > MAX) expect(got, `length ${token.length}`).toBe('TOKEN_MALFORMED');
    }
    expect(await check('A'.repeat(10_000_000))).toBe('TOKEN_MALFORMED');
    console.log(`[hostile-tokens] outcomes ${JSON.stringify(seen)}`);
  });
});
