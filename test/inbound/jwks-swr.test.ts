/**
 * JWKS stale-while-revalidate: once a key set is past `jwksMaxAgeMs`, a token whose key is already
 * in the cached set verifies at once with the cached keys while the set is re-read in the
 * background (single flight, bounded by `jwksTimeoutMs`, a failure keeps the old keys). Only an
 * unknown `kid` (cool-down permitting) or an empty cache waits for a fetch, and then for that one
 * fetch only. Everything runs against a real JWKS server on 127.0.0.1.
 *
 * No clock is read here: max ages and cool-downs move with the test clock, and "did not wait for the
 * fetch" is shown by order, not by speed. The server holds a fetch unanswered (`hang`) until the
 * test releases or drops it, and the fetch timeout is longer than the test's, so a verification
 * that waited for a held fetch could not settle before the test says so. How fast the cached path
 * is under concurrent load is measured in test/reliability/jwks-faults.test.ts.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier, type VerifierOptions } from '../../src/inbound/index.js';
import { testClock } from '../helpers/clock.js';
import { jwksServerPool, trackedFetch, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signRaw, signToken, type TestKey } from '../helpers/tokens.js';

/** Longer than the 30 s test timeout: a held fetch ends only when the test releases or drops it. */
const TIMEOUT_MS = 60_000;
const MAX_AGE_MS = 1000;

let k1: TestKey;
let k2: TestKey;
const pool = jwksServerPool();

beforeAll(async () => {
  [k1, k2] = await Promise.all([createTestKey('ES256', 'swr-1'), createTestKey('ES256', 'swr-2')]);
});
afterEach(() => pool.closeAll());

function server(keys = [k1.publicJwk]): Promise<JwksServer> {
  return pool.start(keys);
}

function verifierFor(s: JwksServer, extra: Partial<VerifierOptions> = {}) {
  return createVerifier({
    providers: [{ issuer: s.origin, jwksUri: s.url, audiences: ['api://test'] }],
    jwksTimeoutMs: TIMEOUT_MS,
    jwksMaxAgeMs: MAX_AGE_MS,
    jwksCooldownMs: 200,
    ...extra,
  });
}

const req = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** The outcome of one verification: 'OK' or the error code. */
async function codeOf(p: () => Promise<unknown>): Promise<string> {
  try {
    await p();
    return 'OK';
  } catch (e) {
    return (e as { code?: string }).code ?? 'UNTYPED';
  }
}

/** A verification under way: `done` turns true once it has settled, `code` is its outcome. */
function track(p: () => Promise<unknown>): { readonly done: boolean; code: Promise<string> } {
  let done = false;
  const code = codeOf(p).finally(() => void (done = true));
  return {
    get done() {
      return done;
    },
    code,
  };
}

describe('JWKS stale-while-revalidate', () => {
  it('hanging endpoint, aged key set: 50 concurrent fresh tokens with a known kid all verify while the one background fetch is unanswered', async () => {
    const clock = testClock();
    const s = await server();
    const v = verifierFor(s, { cacheSize: 0 });
    const tokens = await Promise.all(Array.from({ length: 51 }, (_, i) => signToken(k1, claims(s.origin, { sub: `u${i}` }))));
    expect(await codeOf(() => v.verify(req(tokens[50] as string)))).toBe('OK');
    expect(s.requests).toBe(1);
    s.mode = 'hang';
    clock.advance(MAX_AGE_MS + 50); // the key set is now past its max age
    const results = await Promise.all(tokens.slice(0, 50).map((t) => codeOf(() => v.verify(req(t)))));
    expect(results).toEqual(Array(50).fill('OK'));
    await vi.waitFor(() => expect(s.held).toBe(1));
    expect(s.requests).toBe(2); // exactly one background refetch for all 50 callers
    // while the refetch still hangs, more known-kid verifications pass and start no other fetch
    expect(await codeOf(() => v.verify(req(tokens[7] as string)))).toBe('OK');
    expect(s.held).toBe(1); // never answered: nothing above waited for it
    expect(s.requests).toBe(2);
  });

  it('a token without kid is also served from an aged key set when one cached key fits', async () => {
    const clock = testClock();
    const s = await server();
    const v = verifierFor(s, { cacheSize: 0 });
    await v.verify(req(await signToken(k1, claims(s.origin))));
    s.mode = 'hang';
    clock.advance(MAX_AGE_MS + 50);
    expect(await codeOf(async () => v.verify(req(await signRaw(k1, { kid: undefined }, claims(s.origin)))))).toBe('OK');
    await vi.waitFor(() => expect(s.held).toBe(1)); // the re-read it started is still unanswered
    expect(s.requests).toBe(2);
  });

  it('the background refresh picks up a rotated set: new kid verifies without another fetch, the retired key and its cached tokens stop passing', async () => {
    const clock = testClock();
    const s = await server([k1.publicJwk]);
    const fetches = trackedFetch();
    const v = verifierFor(s, { fetch: fetches.fetch }); // verified-token cache on
    const remembered = await signToken(k1, claims(s.origin, { sub: 'remembered' }));
    expect((await v.verify(req(remembered))).userId).toBe('remembered');
    s.keys = [k2.publicJwk]; // k1 retired, k2 published
    s.mode = 'hang';
    clock.advance(MAX_AGE_MS + 50);
    // a fresh k1 token is verified at once with the stale set; the re-read runs in the background
    const fresh = await signToken(k1, claims(s.origin, { sub: 'fresh' }));
    expect(await codeOf(() => v.verify(req(fresh)))).toBe('OK');
    await vi.waitFor(() => expect(s.held).toBe(1)); // ...and is still unanswered
    expect(s.requests).toBe(2);
    s.mode = 'ok';
    s.release(); // the answer lands
    await vi.waitFor(() => expect(fetches.ended).toBe(2), { interval: 5 });
    expect(s.requests).toBe(2);
    // the new key is known now: no further fetch
    const rotated = await signToken(k2, claims(s.origin, { sub: 'rotated' }));
    expect((await v.verify(req(rotated))).userId).toBe('rotated');
    expect(s.requests).toBe(2);
    // the set changed: the verified-token cache of that provider is void and k1 is gone
    expect(await codeOf(() => v.verify(req(remembered)))).toBe('TOKEN_SIGNATURE_INVALID');
    expect(await codeOf(() => v.verify(req(fresh)))).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('a failed background refresh keeps the old keys, and the next one waits for the cool-down', async () => {
    const clock = testClock();
    const s = await server();
    const fetches = trackedFetch();
    // A real 300 ms fetch timeout: the background fetch fails by timing out.
    const v = verifierFor(s, { cacheSize: 0, jwksTimeoutMs: 300, jwksCooldownMs: 900, fetch: fetches.fetch });
    const t = await signToken(k1, claims(s.origin));
    await v.verify(req(t));
    s.mode = 'hang';
    clock.advance(MAX_AGE_MS + 50);
    expect(await codeOf(() => v.verify(req(t)))).toBe('OK'); // starts the background fetch
    await vi.waitFor(() => expect(s.requests).toBe(2));
    await vi.waitFor(() => expect(fetches.ended).toBe(2), { interval: 5 }); // the fetch timed out...
    await vi.waitFor(() => expect(s.abandoned).toBe(1)); // ...unanswered: the client gave up on it
    expect(await codeOf(() => v.verify(req(t)))).toBe('OK'); // old keys still serve; inside the cool-down
    expect(s.requests).toBe(2);
    clock.advance(899); // 1 ms before the cool-down ends (900 ms after the attempt started)
    expect(await codeOf(() => v.verify(req(t)))).toBe('OK');
    expect(s.requests).toBe(2);
    clock.advance(1); // cool-down over
    s.mode = 'ok';
    expect(await codeOf(() => v.verify(req(t)))).toBe('OK');
    await vi.waitFor(() => expect(s.requests).toBe(3));
  });

  it('an unknown kid still waits for a fetch, that one only, also when it joins a background refresh', async () => {
    const clock = testClock();
    const s = await server([k1.publicJwk]);
    const v = verifierFor(s, { cacheSize: 0 });
    await v.verify(req(await signToken(k1, claims(s.origin))));
    s.keys = [k1.publicJwk, k2.publicJwk];
    s.mode = 'hang';
    clock.advance(250); // past the cool-down, set still fresh
    const unknown = await signToken(k2, claims(s.origin));
    const alone = track(() => v.verify(req(unknown)));
    await vi.waitFor(() => expect(s.held).toBe(1));
    expect(s.requests).toBe(2);
    expect(alone.done).toBe(false); // it waits for the refetch...
    s.drop(); // ...which fails
    expect(await alone.code).toBe('TOKEN_SIGNATURE_INVALID'); // ...and then not for another one
    expect(s.requests).toBe(2);

    // Aged set: a known-kid token starts the background refetch; an unknown kid arriving meanwhile
    // joins it and waits for it, never for a second fetch, while known kids still pass at once.
    clock.advance(MAX_AGE_MS + 50);
    expect(await codeOf(async () => v.verify(req(await signToken(k1, claims(s.origin)))))).toBe('OK');
    await vi.waitFor(() => expect(s.held).toBe(1));
    expect(s.requests).toBe(3);
    const joined = track(() => v.verify(req(unknown)));
    expect(await codeOf(async () => v.verify(req(await signToken(k1, claims(s.origin)))))).toBe('OK');
    expect(joined.done).toBe(false); // waiting for the background refetch
    expect(s.requests).toBe(3);
    s.drop();
    expect(await joined.code).toBe('TOKEN_SIGNATURE_INVALID');
    expect(s.requests).toBe(3);
    // once the endpoint answers again, the unknown kid verifies (after the cool-down)
    s.mode = 'ok';
    clock.advance(250);
    expect(await codeOf(() => v.verify(req(unknown)))).toBe('OK');
  });

  it('an empty cache still waits for the first fetch', async () => {
    const s = await server();
    s.mode = 'hang';
    const v = verifierFor(s, { cacheSize: 0 });
    const first = track(async () => v.verify(req(await signToken(k1, claims(s.origin)))));
    await vi.waitFor(() => expect(s.held).toBe(1));
    expect(first.done).toBe(false);
    s.mode = 'ok';
    s.release();
    expect(await first.code).toBe('OK');
    expect(s.requests).toBe(1);
  });
});
