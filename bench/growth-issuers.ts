/**
 * Cost growth (issue 13): verification cost with 1, 10 and 50 identity providers configured.
 *
 * Each provider has its own issuer and JWKS URI (the key sets come from an in-memory fetch, so the
 * bench measures verification, not the network). Tokens are spread over all configured providers.
 * Cost = CPU time of one `verifier.verify` (CPU, because WebCrypto runs on the thread pool), for:
 *   - a seen token (answered by the verified-token cache),
 *   - a new token (signature check, then cached): each window starts on a fresh verifier whose key
 *     sets are already loaded, and uses every token once.
 * Each figure is the ratio against 1 provider in the same run (median of interleaved rounds).
 * Target: no worse than linear, i.e. ratio ≤ the number of providers / 1.
 *
 * Run: npx tsx bench/growth-issuers.ts   (about 15 s)
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVerifier, type Verifier } from '../src/inbound/index.js';
import { median, record } from './report.js';

const SIZES = [1, 10, 50] as const;
const AUDIENCE = 'api://bench';
const TOKENS = 4000; // new tokens per size: more than one window can use
const WINDOW_MS = 120;
const ROUNDS = 7;

const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const jwksBody = JSON.stringify({ keys: [jwk] });
const issuerOf = (p: number): string => `https://idp-${p}.bench.example`;
const now = Math.floor(Date.now() / 1000);
const sign = (p: number, sub: string): Promise<string> =>
  new SignJWT({ scope: 'read write' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
    .setIssuer(issuerOf(p))
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);

function makeVerifier(n: number): Verifier {
  return createVerifier({
    providers: Array.from({ length: n }, (_, p) => ({ issuer: issuerOf(p), jwksUri: `${issuerOf(p)}/jwks`, audiences: [AUDIENCE], algorithms: ['ES256'] })),
    fetch: async () => new Response(jwksBody, { headers: { 'content-type': 'application/json' } }),
    cacheSize: 10_000,
  });
}
const request = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

interface Size {
  n: number;
  /** One token per provider: verified first by every fresh verifier (loads its key set). */
  warm: string[];
  /** Unique tokens, token i from provider i % n. */
  fresh: string[];
  /** 64 tokens over the providers, all verified once by `seenVerifier`. */
  seen: string[];
  seenVerifier: Verifier;
}

const sizes: Size[] = [];
for (const n of SIZES) {
  const warm = await Promise.all(Array.from({ length: n }, (_, p) => sign(p, `warm-${p}`)));
  const fresh: string[] = [];
  for (let i = 0; i < TOKENS; i++) fresh.push(await sign(i % n, `user-${i}`));
  const seen = await Promise.all(Array.from({ length: 64 }, (_, i) => sign(i % n, `seen-${i}`)));
  const seenVerifier = makeVerifier(n);
  for (const t of seen) await seenVerifier.verify(request(t));
  sizes.push({ n, warm, fresh, seen, seenVerifier });
}

/** CPU µs per call over one window of at most `limit` calls. */
async function window(fn: (i: number) => Promise<unknown>, limit: number): Promise<number> {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  while (performance.now() - start < WINDOW_MS && n < limit) {
    for (let k = 0; k < 20 && n < limit; k++) await fn(n++);
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

async function newTokenWindow(s: Size): Promise<number> {
  const v = makeVerifier(s.n);
  for (const t of s.warm) await v.verify(request(t)); // key sets loaded, outside the timing
  return window((i) => v.verify(request(s.fresh[i] as string)), s.fresh.length);
}
async function seenWindow(s: Size): Promise<number> {
  return window((i) => s.seenVerifier.verify(request(s.seen[i & 63] as string)), Infinity);
}

// warm-up
for (const s of sizes) {
  await newTokenWindow(s);
  await seenWindow(s);
}
const samples = new Map<number, { fresh: number[]; seen: number[] }>(sizes.map((s) => [s.n, { fresh: [], seen: [] }]));
for (let r = 0; r < ROUNDS; r++) {
  // interleaved, order reversed every other round, so that load from other processes hits all sizes alike
  const order = r % 2 === 0 ? sizes : [...sizes].reverse();
  for (const s of order) {
    const slot = samples.get(s.n)!;
    slot.fresh.push(await newTokenWindow(s));
    slot.seen.push(await seenWindow(s));
  }
}

const base = samples.get(SIZES[0])!;
const baseFresh = median(base.fresh);
const baseSeen = median(base.seen);
console.log(`verify with 1 → 50 identity providers configured (CPU µs per call, median of ${ROUNDS} interleaved windows)`);
console.log('| providers | new token | ratio | seen token | ratio | target |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const n of SIZES) {
  const s = samples.get(n)!;
  const f = median(s.fresh);
  const seen = median(s.seen);
  console.log(`| ${n} | ${f.toFixed(1)} µs | ${(f / baseFresh).toFixed(2)}x | ${seen.toFixed(2)} µs | ${(seen / baseSeen).toFixed(2)}x | ≤ ${n}x |`);
  record({ id: `new-token-us/${n}`, label: `verify a new token, ${n} provider(s) configured (CPU per call)`, unit: 'µs', value: f });
  record({ id: `seen-token-us/${n}`, label: `verify a seen token, ${n} provider(s) configured (CPU per call)`, unit: 'µs', value: seen });
  if (n === SIZES[0]) continue;
  record({ id: `new-token-${n}/1`, label: `verify a new token, ${n} / 1 provider(s) configured (CPU per call)`, value: f / baseFresh, target: { op: '<=', value: n } });
  record({ id: `seen-token-${n}/1`, label: `verify a seen token, ${n} / 1 provider(s) configured (CPU per call)`, value: seen / baseSeen, target: { op: '<=', value: n } });
}
