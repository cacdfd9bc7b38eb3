/**
 * Properties: whatever a client puts into Authorization (or the token), the verifier answers with an
 * inbound AgentIamError carrying a challenge, never a crash, and never echoes the input.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAgentIamError, isInboundCode } from '../../src/errors.js';
import { createVerifier, type Verifier } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { b64url, claims, createTestKey, signToken } from '../helpers/tokens.js';

let s: JwksServer;
let v: Verifier;
let good: string;
beforeAll(async () => {
  const key = await createTestKey('ES256');
  s = await startJwksServer([key.publicJwk]);
  v = createVerifier({ providers: [{ issuer: s.origin, jwksUri: s.url, audiences: ['api://test'] }], jwksCooldownMs: 100_000 });
  good = await signToken(key, claims(s.origin));
  await v.verify({ headers: { authorization: `Bearer ${good}` } });
});
afterAll(() => s.close());

async function check(authorization: string): Promise<void> {
  try {
    await v.verify({ headers: { authorization } });
  } catch (e) {
    expect(isAgentIamError(e)).toBe(true);
    const err = e as { code: Parameters<typeof isInboundCode>[0]; wwwAuthenticate?: string; message: string };
    expect(isInboundCode(err.code)).toBe(true);
    expect(err.wwwAuthenticate).toMatch(/^Bearer/);
    const token = authorization.replace(/^bearer\s+/i, '');
    if (token.length >= 8) expect(err.message).not.toContain(token);
    return;
  }
  // only the real token may pass
  expect(authorization.replace(/^bearer\s+/i, '').trim()).toBe(good);
}

describe('hostile Authorization values', () => {
  it('arbitrary header strings', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 300 }), (x) => check(x)), { numRuns: 300 });
  });

  it('Bearer + arbitrary three-part tokens with arbitrary JSON', async () => {
    const seg = fc.oneof(fc.json().map((j) => b64url(j)), fc.base64String().map((b) => b.replace(/=/g, '')), fc.constant(''));
    await fc.assert(
      fc.asyncProperty(seg, seg, seg, (h, p, sig) => check(`Bearer ${h}.${p}.${sig}`)),
      { numRuns: 300 },
    );
  });

  it('the real token with one segment mutated never passes', async () => {
    const [h, p, sig] = good.split('.') as [string, string, string];
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: p.length - 1 }), fc.constantFrom('A', 'B', '_', '-', 'z'), async (i, c) => {
        fc.pre(p[i] !== c);
        const mutated = `${h}.${p.slice(0, i)}${c}${p.slice(i + 1)}.${sig}`;
        await expect(v.verify({ headers: { authorization: `Bearer ${mutated}` } })).rejects.toMatchObject({});
      }),
      { numRuns: 100 },
    );
  });
});
