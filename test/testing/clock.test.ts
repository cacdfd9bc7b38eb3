/**
 * The clock seam: with `installTestClock`, expiries move with the test's clock, not with real time,
 * so the unit suite does not sleep. And `createTestContext` builds a context as the verifier would.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createKeyValueStore, createVerifier, runWithContext, currentContext } from '../../src/index.js';
import { createTestContext, installTestClock, type TestClock } from '../../src/testing/index.js';
import { rawTokenOf } from '../../src/context.js';
import { startJwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken } from '../helpers/tokens.js';

let clock: TestClock | undefined;
afterEach(() => {
  clock?.restore();
  clock = undefined;
});

describe('installTestClock', () => {
  it('a memory store entry expires when the clock passes its TTL, and not before', async () => {
    clock = installTestClock(1_000_000);
    const store = createKeyValueStore();
    await store.set('k', 'v', 5_000);
    clock.advance(4_999);
    expect(await store.get('k')).toBe('v');
    clock.advance(2);
    expect(await store.get('k')).toBeUndefined();
  });

  it('the verifier judges exp by the installed clock', async () => {
    const key = await createTestKey('ES256');
    const jwks = await startJwksServer([key.publicJwk]);
    try {
      const issuer = 'https://idp.clock.test';
      const verifier = createVerifier({ providers: [{ issuer, jwksUri: jwks.url, audiences: ['api://test'], clockTolerance: 0 }] });
      const token = await signToken(key, claims(issuer, { exp: Math.floor(Date.now() / 1000) + 60 }));
      await expect(verifier.verify({ headers: { authorization: `Bearer ${token}` } })).resolves.toMatchObject({ userId: 'user-1' });
      clock = installTestClock(Date.now() + 61_000);
      await expect(verifier.verify({ headers: { authorization: `Bearer ${token}` } })).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
      clock.restore();
      await expect(verifier.verify({ headers: { authorization: `Bearer ${token}` } })).resolves.toMatchObject({ userId: 'user-1' });
    } finally {
      await jwks.close();
    }
  });

  it('refuses a backwards or non-finite advance', () => {
    clock = installTestClock(0);
    expect(() => clock?.advance(-1)).toThrow(RangeError);
    expect(() => clock?.advance(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(0);
  });
});

describe('createTestContext', () => {
  it('builds a frozen, authenticated context whose token is not a property', async () => {
    const ctx = createTestContext({ userId: 'alice@example.com', email: 'Alice@Example.COM', scopes: ['a', 'b'], token: 'raw.jwt.value' });
    expect(ctx).toMatchObject({ userId: 'alice@example.com', subject: 'alice@example.com', authenticated: true, scopes: ['a', 'b'], domain: 'example.com' });
    expect(ctx.claims).toMatchObject({ scope: 'a b', email: 'Alice@Example.COM' });
    expect(Object.isFrozen(ctx)).toBe(true);
    expect(JSON.stringify(ctx)).not.toContain('raw.jwt.value');
    expect(rawTokenOf(ctx)).toBe('raw.jwt.value');
    await runWithContext(ctx, async () => expect(currentContext()).toBe(ctx));
  });
});
