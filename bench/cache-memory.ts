/**
 * bench/cache-memory: the verifier's verified-token cache stays bounded under a flood of distinct
 * valid tokens and of distinct refused ones (issue 13).
 *
 *   1. per-entry cost: a verifier with `cacheSize` 10,000 is filled with 10,000 distinct valid
 *      tokens; heap growth after a full GC / entries (the token string, its frozen claims, scopes
 *      and the context fields the entry keeps);
 *   2. a flood of N distinct valid tokens (default 1,000,000) through a verifier with the default
 *      `cacheSize` (1000): entry count (never above the max) and heap growth after GC;
 *   3. a flood of N distinct refused tokens (forged payloads under a real signature, unknown issuers,
 *      expired): entry count unchanged, heap growth after GC.
 * Tokens are EdDSA (the cheapest to sign) with an RS256-sized payload; each is made, verified and
 * dropped, so the cache holds the only reference.
 *
 *   node --expose-gc --import tsx bench/cache-memory.ts [--tokens N]
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createVerifier, verifierCacheSize, type Verifier } from '../src/inbound/verifier.js';
import { record } from './report.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}
const FLOOD = arg('tokens', 1_000_000);
const PER_ENTRY = 10_000;
const IN_FLIGHT = 32;

let gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  setFlagsFromString('--expose_gc');
  gc = runInNewContext('gc') as () => void;
}
async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

const ISSUER = 'https://idp.bench.local/';
const AUDIENCE = 'https://api.bench.local';
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'EdDSA', use: 'sig' };
const jwksBody = JSON.stringify({ keys: [jwk] });
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const HEADER = b64({ alg: 'EdDSA', kid: 'k1', typ: 'at+jwt' });
const now = Math.floor(Date.now() / 1000);

/** A typical access token's claims (about the size of an Auth0 or Entra one), unique per `i`. */
function payload(i: number, overrides: Record<string, unknown> = {}): string {
  return b64({
    iss: ISSUER,
    sub: `auth0|user-${i}`,
    aud: [AUDIENCE, 'https://idp.bench.local/userinfo'],
    iat: now,
    exp: now + 3600,
    azp: 'Zx9bench0client0id0AbCdEfGh',
    scope: 'openid profile email tickets:read tickets:write',
    email: `user${i}@example.com`,
    email_verified: true,
    jti: `jti-${i}-${now}`,
    ...overrides,
  });
}
function signed(i: number, overrides?: Record<string, unknown>): string {
  const input = `${HEADER}.${payload(i, overrides)}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
}
const genuine = signed(0);
const genuineSignature = genuine.slice(genuine.lastIndexOf('.') + 1);

const make = (cacheSize?: number): Verifier =>
  createVerifier({
    providers: [{ issuer: ISSUER, jwksUri: `${ISSUER}jwks`, audiences: [AUDIENCE] }],
    fetch: async () => new Response(jwksBody, { headers: { 'content-type': 'application/json' } }),
    ...(cacheSize !== undefined ? { cacheSize } : {}),
  });

/** Verify `count` tokens made by `token(i)`, IN_FLIGHT at a time; returns [accepted, refused, largest cache size seen]. */
async function drive(verifier: Verifier, from: number, count: number, token: (i: number) => string): Promise<[number, number, number]> {
  let next = from;
  const end = from + count;
  let ok = 0;
  let refused = 0;
  let largest = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < end) {
        const i = next++;
        try {
          await verifier.verify({ headers: { authorization: `Bearer ${token(i)}` } });
          ok++;
        } catch {
          refused++;
        }
        if ((i & 1023) === 0) largest = Math.max(largest, verifierCacheSize(verifier));
      }
    }),
  );
  return [ok, refused, Math.max(largest, verifierCacheSize(verifier))];
}

console.log(`bench/cache-memory on Node ${process.version}: token length ${genuine.length} characters`);

// 1. per-entry cost
{
  const verifier = make(PER_ENTRY);
  await drive(verifier, 0, 1, signed); // load the key set
  const before = await heapAfterGc();
  await drive(verifier, 1, PER_ENTRY - 1, (i) => signed(i));
  const after = await heapAfterGc();
  const entries = verifierCacheSize(verifier);
  const perEntry = (after - before) / (entries - 1);
  console.log(`  per entry: ${entries} entries, heap +${mb(after - before)} after GC = ${perEntry.toFixed(0)} B per cached token (token ${genuine.length} chars)`);
  record({ id: 'per-entry', label: `verified-token cache: heap per cached token (EdDSA token of ${genuine.length} characters, typical claims)`, unit: 'B', value: perEntry, target: { op: '<=', value: 4096 } });
  if (entries !== PER_ENTRY) throw new Error(`expected ${PER_ENTRY} entries, have ${entries}`);
}

// 2. a flood of distinct valid tokens through the default cache size
const valid = make();
await drive(valid, 0, 10_000, signed); // warm: the cache is full from here on
const validBefore = await heapAfterGc();
const t0 = performance.now();
const [ok, bad, largest] = await drive(valid, 10_000, FLOOD, signed);
const validAfter = await heapAfterGc();
const seconds = (performance.now() - t0) / 1000;
console.log(
  `  ${FLOOD} distinct valid tokens (${(FLOOD / seconds).toFixed(0)}/s): ${ok} accepted, ${bad} refused; cache entries at most ${largest} (max 1000); heap ${mb(validBefore)} -> ${mb(validAfter)} after GC`,
);
if (bad > 0 || largest > 1000) throw new Error('valid flood: a token was refused or the cache passed its max');
record({ id: 'valid-flood/entries', label: `verified-token cache: most entries seen during ${FLOOD.toLocaleString('en')} distinct valid tokens (cacheSize 1000)`, unit: 'count', value: largest, target: { op: '<=', value: 1000 } });
record({ id: 'valid-flood/heap', label: `verified-token cache: heap growth after GC over ${FLOOD.toLocaleString('en')} distinct valid tokens`, unit: 'MB', value: (validAfter - validBefore) / 1024 / 1024, target: { op: '<=', value: 8 } });

// 3. a flood of distinct refused tokens: forged payloads (signature checked and failing), unknown issuers, expired
const refusing = make();
await drive(refusing, 0, 1, signed);
const entriesBefore = verifierCacheSize(refusing);
const refusedBefore = await heapAfterGc();
const forged = (i: number): string => {
  switch (i % 3) {
    case 0:
      return `${HEADER}.${payload(i)}.${genuineSignature}`;
    case 1:
      return `${HEADER}.${payload(i, { iss: `https://idp-${i}.bench.local/` })}.${genuineSignature}`;
    default:
      return `${HEADER}.${payload(i, { exp: now - 60, iat: now - 3600 })}.${genuineSignature}`;
  }
};
const [okR, refusedR, largestR] = await drive(refusing, 1, FLOOD, forged);
const refusedAfter = await heapAfterGc();
console.log(
  `  ${FLOOD} distinct refused tokens: ${okR} accepted, ${refusedR} refused; cache entries ${entriesBefore} -> ${verifierCacheSize(refusing)} (most seen ${largestR}); heap ${mb(refusedBefore)} -> ${mb(refusedAfter)} after GC`,
);
if (okR > 0 || largestR > entriesBefore) throw new Error('refused flood: a forged token was accepted or stored');
record({ id: 'refused-flood/entries', label: `verified-token cache: entries added by ${FLOOD.toLocaleString('en')} distinct refused tokens`, unit: 'count', value: largestR - entriesBefore, target: { op: '<=', value: 0 } });
record({ id: 'refused-flood/heap', label: `verified-token cache: heap growth after GC over ${FLOOD.toLocaleString('en')} distinct refused tokens`, unit: 'MB', value: (refusedAfter - refusedBefore) / 1024 / 1024, target: { op: '<=', value: 8 } });
