/** The default clock tolerance is 5 s (jose: 0, express-oauth2-jwt-bearer: 5); it was 30 s. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type ProviderOptions } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, nowSeconds, signToken, type TestKey } from '../helpers/tokens.js';

let jwks: JwksServer;
let key: TestKey;
beforeAll(async () => {
  key = await createTestKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
});
afterAll(() => jwks.close());

async function outcome(over: Record<string, unknown>, provider: Partial<ProviderOptions> = {}): Promise<string> {
  // cacheSize 0: every call checks the claims afresh
  const v = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'], ...provider }], cacheSize: 0 });
  const token = await signToken(key, claims(jwks.origin, over));
  try {
    await v.verify({ headers: { authorization: `Bearer ${token}` } });
    return 'ok';
  } catch (e) {
    return (e as { code: string }).code;
  }
}

describe('default clock tolerance', () => {
  it('a token 6 s past exp is refused by default', async () => {
    const now = nowSeconds();
    expect(await outcome({ iat: now - 60, exp: now - 6 })).toBe('TOKEN_EXPIRED');
  });

  it('nbf or iat 6 s ahead is refused by default', async () => {
    const now = nowSeconds();
    expect(await outcome({ nbf: now + 7 })).toBe('TOKEN_NOT_YET_VALID');
    expect(await outcome({ iat: now + 7 })).toBe('TOKEN_NOT_YET_VALID');
  });

  it('a skew of a few seconds still passes', async () => {
    const now = nowSeconds();
    expect(await outcome({ iat: now - 60, exp: now - 2 })).toBe('ok');
    expect(await outcome({ nbf: now + 2, iat: now + 2 })).toBe('ok');
  });

  it('clockTolerance set by the user still widens it', async () => {
    const now = nowSeconds();
    expect(await outcome({ iat: now - 60, exp: now - 6 }, { clockTolerance: 30 })).toBe('ok');
    expect(await outcome({ iat: now - 60, exp: now - 1 }, { clockTolerance: 0 })).toBe('TOKEN_EXPIRED');
  });
});
