/**
 * Memory: the SDK's in-process caches and default stores stay bounded under an endless stream of
 * unique tokens and users. For a bounded time (default 60 s) it drives, all at once:
 *   - the verifier's verified-token cache with unique valid tokens,
 *   - the JWKS caches with tokens naming unknown kids and unknown issuers,
 *   - the OAuth state store (startAuthorization for unique users; short state TTL),
 *   - the approval store (a new pending approval per request; short pending TTL),
 *   - the token manager's hot cache (unique users' API keys read once; store TTL-free data is
 *     reported separately: accounts are data, not a cache).
 * Heap is measured after a full GC once warmed up and at the end; the growth is printed, with the
 * growth per 10,000 operations.
 *
 *   node --expose-gc --import tsx bench/memory.ts [--seconds N]
 *   npx tsx bench/memory.ts --seconds 10          (GC is exposed at run time when the flag is missing)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createApprovals, createTokenManager, createVerifier } from '../src/index.js';
import { record } from './report.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}
const SECONDS = arg('seconds', 60);

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

// ---- a JWKS server and keys -------------------------------------------------------------------
const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const jwksServer = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
});
await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
const issuer = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`;

const verifier = createVerifier({
  providers: [{ issuer, jwksUri: `${issuer}/jwks`, audiences: ['api://bench'] }],
  jwksCooldownMs: 1000,
});
const tokens = createTokenManager({
  stateTtlSeconds: 2,
  connections: [
    { id: 'corp', authorizationEndpoint: 'http://127.0.0.1:9/authorize', tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c', clientSecret: 's', redirectUri: 'http://127.0.0.1:9/cb' },
  ],
});
const keys = createTokenManager({ cacheSize: 1000, connections: [{ id: 'kaggle', kind: 'apiKey' }] });
const approvals = createApprovals({ pendingTtlSeconds: 2 });

let n = 0;
const ops = { verified: 0, unknownKid: 0, unknownIssuer: 0, states: 0, approvals: 0, apiKeyReads: 0 };
const sign = (iss: string, kid: string): Promise<string> =>
  new SignJWT({ sub: `user-${n++}`, aud: 'api://bench', jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
    .setIssuedAt()
    .setIssuer(iss)
    .setExpirationTime('10m')
    .sign(privateKey);

async function round(): Promise<void> {
  const i = n;
  // unique valid tokens (each cached by the verifier)
  await verifier.verify({ headers: { authorization: `Bearer ${await sign(issuer, 'k1')}` } });
  ops.verified++;
  // unknown kid and unknown issuer (JWKS caches must not grow per kid or issuer)
  await verifier.verify({ headers: { authorization: `Bearer ${await sign(issuer, `kid-${i}`)}` } }).catch(() => ops.unknownKid++);
  await verifier.verify({ headers: { authorization: `Bearer ${await sign(`https://idp-${i}.example`, 'k1')}` } }).catch(() => ops.unknownIssuer++);
  // an abandoned OAuth state for a unique user
  await tokens.startAuthorization({ connection: 'corp', userId: `user-${i}` });
  ops.states++;
  // a pending approval for a unique request
  await approvals.check({ agentId: 'a', userId: `user-${i}`, tool: 't', method: 'POST', path: `/v1/refunds/${i}`, query: '', bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
  ops.approvals++;
}

async function runFor(ms: number): Promise<void> {
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (Date.now() < end) await round();
    }),
  );
}

// API keys: 2,000 users, read repeatedly (the hot cache holds 1,000)
for (let i = 0; i < 2000; i++) await keys.setApiKey({ connection: 'kaggle', userId: `k-${i}`, key: `key-${i}` });
const readKeys = async (): Promise<void> => {
  for (let i = 0; i < 2000; i++) {
    await keys.getAccessToken({ connection: 'kaggle', userId: `k-${(i * 7919) % 2000}` });
    ops.apiKeyReads++;
  }
};

console.log(`memory: ${SECONDS} s of unique tokens, unknown kids/issuers, abandoned OAuth states and pending approvals`);
const warm = Math.max(2000, SECONDS * 150);
await runFor(warm);
await readKeys();
await new Promise((r) => setTimeout(r, 2100)); // let the first states and approvals expire
const before = await heapAfterGc();
const opsBefore = ops.verified;
const started = Date.now();
const samples: string[] = [];
const sliceMs = Math.max(1000, (SECONDS * 1000 - warm - 2100) / 4);
while (Date.now() - started < SECONDS * 1000 - warm - 2100) {
  await runFor(Math.min(sliceMs, SECONDS * 1000 - warm - 2100 - (Date.now() - started)));
  await readKeys();
  samples.push(mb(await heapAfterGc()));
}
await new Promise((r) => setTimeout(r, 2100)); // states and approvals of the last slice expire
const after = await heapAfterGc();
const during = ops.verified - opsBefore;
console.log(`  ops: ${JSON.stringify(ops)}`);
console.log(`  heap after GC: warmed up ${mb(before)}; samples ${samples.join(', ')}; end ${mb(after)}`);
const growth = after - before;
console.log(`  growth ${mb(growth)} over ${during} rounds (${during * 5} operations) = ${((growth / Math.max(1, during * 5)) * 10_000 / 1024).toFixed(1)} KB per 10,000 operations`);
console.log(`  end / warmed-up heap: ${(after / before).toFixed(2)}x`);
const bounded = growth < 16 * 1024 * 1024;
record({ id: 'heap-end/warm', label: `memory: heap after GC, end / warmed up (${SECONDS} s of unique tokens, users, states, approvals)`, value: after / before, target: { op: '<=', value: 1.2 } });
console.log(bounded ? 'PASS: bounded (growth under 16 MB while the number of unique users and tokens kept rising)' : 'FAIL: heap keeps growing');
jwksServer.closeAllConnections();
jwksServer.close();
process.exitCode = bounded ? 0 : 1;
