/**
 * JWKS stale-while-revalidate: once a key set is past `jwksMaxAgeMs`, a token whose key is already
 * in the cached set verifies at once with the cached keys while the set is re-read in the
 * background (single flight, bounded by `jwksTimeoutMs`, a failure keeps the old keys). Only an
 * unknown `kid` (cool-down permitting) or an empty cache waits for a fetch, and then for at most
 * one timeout. Everything runs against a real JWKS server on 127.0.0.1.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type VerifierOptions } from '../../src/inbound/index.js';
import { jwksServerPool, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signRaw, signToken, type TestKey } from '../helpers/tokens.js';

const TIMEOUT_MS = 1500;
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The outcome ('OK' or the error code) and the duration of one verification. */
async function timed(p: () => Promise<unknown>): Promise<{ code: string; ms: number }> {
  const t0 = performance.now();
  let code = 'OK';
  try {
    await p();
  } catch (e) {
    code = (e as { code?: string }).code ?? 'UNTYPED';
  }
  return { code, ms: performance.now() - t0 };
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
}

describe('JWKS stale-while-revalidate', () => {
  it('hanging endpoint, aged key set: 50 concurrent fresh tokens with a known kid all verify well under the timeout, with one background fetch', async () => {
    const s = await server();
    const v = verifierFor(s, { cacheSize: 0 });
    const tokens = await Promise.all(Array.from({ length: 51 }, (_, i) => signToken(k1, claims(s.origin, { sub: `u${i}` }))));
    expect((await timed(() => v.verify(req(tokens[50] as string)))).code).toBe('OK');
    expect(s.requests).toBe(1);
    s.mode = 'hang';
    await sleep(MAX_AGE_MS + 50); // the key set is now past its max age
    const started = performance.now();
    const results = await Promise.all(tokens.slice(0, 50).map((t) => timed(() => v.verify(req(t)))));
    const wall = performance.now() - started;
    const maxMs = Math.max(...results.map((r) => r.ms));
    console.log(`[jwks-swr] 50 concurrent, hanging endpoint, aged set: slowest ${maxMs.toFixed(1)} ms, all ${wall.toFixed(1)} ms (timeout ${TIMEOUT_MS} ms)`);
    expect(results.map((r) => r.code)).toEqual(Array(50).fill('OK'));
    expect(maxMs).toBeLessThan(TIMEOUT_MS / 3);
    await waitFor(() => s.requests >= 2, 500);
    expect(s.requests).toBe(2); // exactly one background refetch for all 50 callers
    // while the refetch still hangs, more known-kid verifications stay fast and start no other fetch
    const again = await timed(() => v.verify(req(tokens[7] as string)));
    expect(again.code).toBe('OK');
    expect(again.ms).toBeLessThan(TIMEOUT_MS / 3);
    expect(s.requests).toBe(2);
  });

  it('a token without kid is also served from an aged key set when one cached key fits', async () => {
    const s = await server();
    const v = verifierFor(s, { cacheSize: 0 });
    await v.verify(req(await signToken(k1, claims(s.origin))));
    s.mode = 'hang';
    await sleep(MAX_AGE_MS + 50);
    const r = await timed(async () => v.verify(req(await signRaw(k1, { kid: undefined }, claims(s.origin)))));
    expect(r.code).toBe('OK');
    expect(r.ms).toBeLessThan(TIMEOUT_MS / 3);
  });

  it('the background refresh picks up a rotated set: new kid verifies without another fetch, the retired key and its cached tokens stop passing', async () => {
    const s = await server([k1.publicJwk]);
    const v = verifierFor(s); // verified-token cache on
    const remembered = await signToken(k1, claims(s.origin, { sub: 'remembered' }));
    expect((await v.verify(req(remembered))).userId).toBe('remembered');
    s.keys = [k2.publicJwk]; // k1 retired, k2 published
    s.mode = 'slow';
    s.delayMs = 400;
    await sleep(MAX_AGE_MS + 50);
    // a fresh k1 token is verified at once with the stale set; the re-read runs in the background
    const fresh = await signToken(k1, claims(s.origin, { sub: 'fresh' }));
    const r = await timed(() => v.verify(req(fresh)));
    expect(r.code).toBe('OK');
    expect(r.ms).toBeLessThan(300);
    await waitFor(() => s.requests >= 2);
    await sleep(s.delayMs + 150); // let the slow answer land
    expect(s.requests).toBe(2);
    // the new key is known now: no further fetch
    const rotated = await signToken(k2, claims(s.origin, { sub: 'rotated' }));
    expect((await v.verify(req(rotated))).userId).toBe('rotated');
    expect(s.requests).toBe(2);
    // the set changed: the verified-token cache of that provider is void and k1 is gone
    expect((await timed(() => v.verify(req(remembered)))).code).toBe('TOKEN_SIGNATURE_INVALID');
    expect((await timed(() => v.verify(req(fresh)))).code).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('a failed background refresh keeps the old keys, and the next one waits for the cool-down', async () => {
    const s = await server();
    const v = verifierFor(s, { cacheSize: 0, jwksTimeoutMs: 300, jwksCooldownMs: 900 });
    const t = await signToken(k1, claims(s.origin));
    await v.verify(req(t));
    s.mode = 'hang';
    await sleep(MAX_AGE_MS + 50);
    expect((await timed(() => v.verify(req(t)))).code).toBe('OK'); // starts the background fetch
    await waitFor(() => s.requests >= 2, 500);
    expect(s.requests).toBe(2);
    await sleep(400); // the fetch timed out
    expect((await timed(() => v.verify(req(t)))).code).toBe('OK'); // old keys still serve; inside the cool-down
    expect(s.requests).toBe(2);
    await sleep(550); // cool-down over (900 ms after the attempt started)
    s.mode = 'ok';
    expect((await timed(() => v.verify(req(t)))).code).toBe('OK');
    await waitFor(() => s.requests >= 3, 500);
    expect(s.requests).toBe(3);
  });

  it('an unknown kid still waits for a fetch, at most one timeout, also when it joins a background refresh', async () => {
    const s = await server([k1.publicJwk]);
    const timeout = 800;
    const v = verifierFor(s, { cacheSize: 0, jwksTimeoutMs: timeout });
    await v.verify(req(await signToken(k1, claims(s.origin))));
    s.keys = [k1.publicJwk, k2.publicJwk];
    s.mode = 'hang';
    await sleep(250); // past the cool-down, set still fresh
    const unknown = await signToken(k2, claims(s.origin));
    const alone = await timed(() => v.verify(req(unknown)));
    expect(alone.code).toBe('TOKEN_SIGNATURE_INVALID');
    expect(alone.ms).toBeGreaterThanOrEqual(timeout - 50); // it did wait for the refetch
    expect(alone.ms).toBeLessThan(timeout + 600);
    expect(s.requests).toBe(2);

    // Aged set: a known-kid token starts the background refetch; an unknown kid arriving half-way
    // joins it and waits only for the rest of it, never for a second fetch.
    await sleep(MAX_AGE_MS + 50);
    const known = await timed(async () => v.verify(req(await signToken(k1, claims(s.origin)))));
    expect(known.code).toBe('OK');
    expect(known.ms).toBeLessThan(timeout / 2);
    await waitFor(() => s.requests >= 3, 500);
    await sleep(timeout / 2);
    const [joined, knownDuring] = await Promise.all([
      timed(() => v.verify(req(unknown))),
      timed(async () => v.verify(req(await signToken(k1, claims(s.origin))))),
    ]);
    expect(joined.code).toBe('TOKEN_SIGNATURE_INVALID');
    expect(joined.ms).toBeLessThan(timeout);
    expect(knownDuring.code).toBe('OK');
    expect(knownDuring.ms).toBeLessThan(timeout / 3);
    expect(s.requests).toBe(3);
    // once the endpoint answers again, the unknown kid verifies (after the cool-down)
    s.mode = 'ok';
    await sleep(250);
    expect((await timed(() => v.verify(req(unknown)))).code).toBe('OK');
  });

  it('an empty cache still waits for the first fetch', async () => {
    const s = await server();
    s.mode = 'slow';
    s.delayMs = 300;
    const v = verifierFor(s, { cacheSize: 0 });
    const r = await timed(async () => v.verify(req(await signToken(k1, claims(s.origin)))));
    expect(r.code).toBe('OK');
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(s.requests).toBe(1);
  });
});
