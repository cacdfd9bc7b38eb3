/**
 * JWKS faults while verifications are in flight: the key endpoint goes down, answers garbage,
 * slows down, hangs, and rotates keys, while concurrent callers keep verifying many distinct tokens
 * (the verified-token cache is off, so every call goes through the JWKS cache). Valid tokens keep
 * verifying from the cached keys; a token with a new kid verifies after one refetch; no call takes
 * longer than the JWKS timeout (plus scheduling slack on a loaded machine), and every failure is
 * a typed inbound error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAgentIamError } from '../../src/errors.js';
import { createVerifier, type Verifier } from '../../src/inbound/index.js';
import { startJwksServer, type JwksMode, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken, type TestKey } from '../helpers/tokens.js';

const TIMEOUT_MS = 1500;
/** Slack for timers and a CPU shared by parallel test workers. */
const SLACK_MS = 1000; // < TIMEOUT_MS: a call that waits for two fetches in a row fails the bound

interface PhaseResult {
  calls: number;
  ok: number;
  codes: Record<string, number>;
  untyped: number;
  maxMs: number;
}

/** `workers` concurrent callers verify tokens (round robin) for `ms` milliseconds. */
async function traffic(v: Verifier, tokens: string[], ms: number, workers = 16): Promise<PhaseResult> {
  const r: PhaseResult = { calls: 0, ok: 0, codes: {}, untyped: 0, maxMs: 0 };
  const end = Date.now() + ms;
  let i = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (Date.now() < end) {
        const token = tokens[i++ % tokens.length]!;
        const t0 = performance.now();
        try {
          await v.verify({ headers: { authorization: `Bearer ${token}` } });
          r.ok++;
        } catch (e) {
          if (isAgentIamError(e)) r.codes[e.code] = (r.codes[e.code] ?? 0) + 1;
          else r.untyped++;
        }
        r.maxMs = Math.max(r.maxMs, performance.now() - t0);
        r.calls++;
        await new Promise((res) => setImmediate(res));
      }
    }),
  );
  return r;
}

let server: JwksServer;
let oldKey: TestKey;
let newKey: TestKey;
let oldTokens: string[];
let newTokens: string[];

beforeAll(async () => {
  oldKey = await createTestKey('ES256', 'old');
  newKey = await createTestKey('ES256', 'new');
  server = await startJwksServer([oldKey.publicJwk]);
  oldTokens = await Promise.all(Array.from({ length: 64 }, (_, i) => signToken(oldKey, claims(server.origin, { sub: `u${i}` }))));
  newTokens = await Promise.all(Array.from({ length: 64 }, (_, i) => signToken(newKey, claims(server.origin, { sub: `n${i}` }))));
});
afterAll(() => server.close());

function verifier(maxAgeMs: number, cooldownMs: number): Verifier {
  return createVerifier({
    providers: [{ issuer: server.origin, jwksUri: server.url, audiences: ['api://test'] }],
    cacheSize: 0,
    jwksTimeoutMs: TIMEOUT_MS,
    jwksMaxAgeMs: maxAgeMs,
    jwksCooldownMs: cooldownMs,
  });
}

describe('JWKS faults under concurrent verification', () => {
  it('down, garbage, slow and hanging key endpoint past max age: cached keys keep serving, latency bounded by the timeout', async () => {
    server.keys = [oldKey.publicJwk];
    server.mode = 'ok';
    server.delayMs = 200;
    const v = verifier(1000, 100); // keys go stale after 1 s: every phase below tries to refetch
    const warm = await traffic(v, oldTokens, 200);
    expect(warm.ok).toBe(warm.calls);

    const report: Record<string, PhaseResult & { fetches: number }> = {};
    for (const mode of ['down', 'garbage', 'slow', 'hang', 'huge', 'redirect', 'ok'] as JwksMode[]) {
      server.mode = mode;
      const before = server.requests;
      const r = await traffic(v, oldTokens, 1300); // longer than max age: a refetch is due mid-phase
      report[mode] = { ...r, fetches: server.requests - before };
      // Stale keys serve at once (stale-while-revalidate), so the background fetch of the hang phase
      // outlives it: let it time out, else it would cover the next phase, which then starts no fetch.
      if (mode === 'hang') await new Promise((res) => setTimeout(res, TIMEOUT_MS + 100));
    }
    console.log(`[jwks-faults] ${JSON.stringify(report)}`);
    for (const [mode, r] of Object.entries(report)) {
      expect({ mode, ok: r.ok, untyped: r.untyped, codes: r.codes }).toEqual({ mode, ok: r.calls, untyped: 0, codes: {} });
      expect(r.maxMs, `${mode}: slowest verification`).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      if (mode !== 'ok') expect(r.fetches, `${mode}: refetch attempts (bounded by the cool-down)`).toBeGreaterThanOrEqual(1);
      // single flight + cool-down: a failing endpoint is not hammered by hundreds of callers
      expect(r.fetches, `${mode}: refetch attempts`).toBeLessThanOrEqual(Math.ceil(1300 / 100) + 2);
      expect(r.calls).toBeGreaterThan(20);
    }
  }, 30_000);

  it('rotation mid-traffic: new-kid tokens verify after one refetch shared by all concurrent callers; old ones never stop', async () => {
    server.keys = [oldKey.publicJwk];
    server.mode = 'ok';
    const v = verifier(600_000, 200);
    expect((await traffic(v, oldTokens, 200)).codes).toEqual({});
    // Inside the cool-down after a fetch, an unknown kid fails at once by design (no refetch storm);
    // the rotation below comes after it.
    await new Promise((r) => setTimeout(r, 250));
    const before = server.requests;
    server.keys = [newKey.publicJwk, oldKey.publicJwk];
    // old and new tokens interleaved, all at once
    const mixed = oldTokens.flatMap((t, i) => [t, newTokens[i]!]);
    const r = await traffic(v, mixed, 800, 32);
    console.log(`[jwks-rotation] ${JSON.stringify({ ...r, fetches: server.requests - before })}`);
    expect(r.codes).toEqual({});
    expect(r.untyped).toBe(0);
    expect(r.ok).toBe(r.calls);
    expect(server.requests - before).toBe(1);
  }, 30_000);

  it('rotation while the key endpoint hangs: new-kid tokens fail typed and bounded, old ones keep verifying; new ones pass after recovery', async () => {
    server.keys = [oldKey.publicJwk];
    server.mode = 'ok';
    const v = verifier(600_000, 150);
    expect((await traffic(v, oldTokens, 100)).ok).toBeGreaterThan(0);
    server.keys = [newKey.publicJwk, oldKey.publicJwk];
    server.mode = 'hang';
    const [oldR, newR] = await Promise.all([traffic(v, oldTokens, 1000, 8), traffic(v, newTokens, 1000, 8)]);
    console.log(`[jwks-rotation-hang] ${JSON.stringify({ old: oldR, new: newR })}`);
    expect(oldR.codes).toEqual({});
    expect(oldR.ok).toBe(oldR.calls);
    expect(newR.ok).toBe(0);
    expect(Object.keys(newR.codes)).toEqual(['TOKEN_SIGNATURE_INVALID']);
    expect(newR.untyped).toBe(0);
    expect(Math.max(oldR.maxMs, newR.maxMs)).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    server.mode = 'ok';
    await new Promise((r) => setTimeout(r, 200)); // the cool-down
    const after = await traffic(v, newTokens, 300, 8);
    expect(after.codes).toEqual({});
    expect(after.ok).toBe(after.calls);
  }, 30_000);
});
