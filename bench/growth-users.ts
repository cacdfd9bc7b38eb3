/**
 * Cost growth (issue 13): users with a connected account in the in-memory store, 100 → 100,000.
 *
 * For each size a fresh token manager over the default in-memory store holds one OAuth account per
 * user (an unexpired access token and a refresh token, as `completeAuthorization` stores them, with
 * the per-user account index). Costs, each against 100 users in the same run:
 *   - `getAccessToken` of one user served by the hot cache (the same user again and again);
 *   - `getAccessToken` read from the store (`cacheSize: 0`: store read and JSON parse), users picked
 *     at random among all of them;
 *   - heap held by the accounts (after a full GC, before any read), also given per user.
 * Target: no worse than linear: a per-call ratio ≤ the ratio of users, and the heap of N users
 * ≤ N / 100 times the heap of 100 users (equivalently, bytes per user no higher than at 100 users).
 *
 *   node --expose-gc --import tsx bench/growth-users.ts   (about 30 s)
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTokenManager, type TokenManager } from '../src/index.js';
import { createKeyValueStore, type Store } from '../src/stores/store.js';
import { accountKey, indexKey, type AccountRecord } from '../src/tokens/accounts.js';
import { median, record } from './report.js';

const SIZES = [100, 1000, 10_000, 100_000] as const;
const ROUNDS = 7;
const WINDOW_MS = 100;

let gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  setFlagsFromString('--expose_gc');
  gc = runInNewContext('gc') as () => void;
}
async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

const connection = {
  id: 'corp',
  authorizationEndpoint: 'http://127.0.0.1:9/authorize',
  tokenEndpoint: 'http://127.0.0.1:9/token',
  clientId: 'c',
  clientSecret: 's',
  redirectUri: 'http://127.0.0.1:9/cb',
};
const userId = (i: number): string => `user-${i}@example.com`;

/** What `completeAuthorization` stores for a user: the account record and the index entry. */
async function seed(store: Store, n: number): Promise<void> {
  const t = Date.now();
  for (let i = 0; i < n; i++) {
    const rec: AccountRecord = {
      v: 1,
      connection: 'corp',
      ownerType: 'user',
      ownerId: userId(i),
      kind: 'oauth2',
      status: 'active',
      scopes: ['openid', 'read', 'write'],
      accessToken: `at_${i.toString(36).padStart(8, '0')}${'a'.repeat(32)}`,
      refreshToken: `rt_${i.toString(36).padStart(8, '0')}${'b'.repeat(56)}`,
      tokenType: 'bearer',
      expiresAt: t + 3600_000,
      issuer: 'http://127.0.0.1:9',
      generation: 1,
      createdAt: t,
      updatedAt: t,
    };
    await store.set(accountKey('corp', 'user', rec.ownerId), rec);
    await store.indexAdd(indexKey('user', rec.ownerId), 'corp');
  }
}

/** Mean ns per awaited call over one window. */
async function window(fn: (i: number) => Promise<unknown>): Promise<number> {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < WINDOW_MS) {
    for (let k = 0; k < 200; k++) await fn(n++);
    now = performance.now();
  }
  return ((now - start) * 1e6) / n;
}

interface Size {
  n: number;
  heapBytes: number;
  cached: TokenManager;
  uncached: TokenManager;
  picks: string[];
}
const sizes: Size[] = [];
for (const n of SIZES) {
  const before = await heapAfterGc();
  const store = createKeyValueStore();
  await seed(store, n);
  const heapBytes = (await heapAfterGc()) - before;
  const cached = createTokenManager({ store, connections: [connection] });
  const uncached = createTokenManager({ store, connections: [connection], cacheSize: 0 });
  // 1,024 users picked at random among the n (the same sequence for every size)
  let x = 12345;
  const picks = Array.from({ length: 1024 }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return userId(x % n);
  });
  sizes.push({ n, heapBytes, cached, uncached, picks });
  console.log(`  seeded ${n} users: ${(heapBytes / 1024 / 1024).toFixed(2)} MB of heap, ${(heapBytes / n).toFixed(0)} B per user`);
}

const hot = (s: Size) => window(() => s.cached.getAccessToken({ connection: 'corp', userId: userId(0) }));
const read = (s: Size) => window((i) => s.uncached.getAccessToken({ connection: 'corp', userId: s.picks[i & 1023] as string }));

for (const s of sizes) {
  // sanity: every size answers with the seeded token
  const r = await s.uncached.getAccessToken({ connection: 'corp', userId: userId(s.n - 1) });
  if (!r.accessToken.startsWith(`at_${(s.n - 1).toString(36).padStart(8, '0')}`)) throw new Error('wrong token');
  await hot(s);
  await read(s);
}
const samples = new Map<number, { hot: number[]; read: number[] }>(sizes.map((s) => [s.n, { hot: [], read: [] }]));
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? sizes : [...sizes].reverse();
  for (const s of order) {
    samples.get(s.n)!.hot.push(await hot(s));
    samples.get(s.n)!.read.push(await read(s));
  }
}

const base = sizes[0] as Size;
const baseHot = median(samples.get(base.n)!.hot);
const baseRead = median(samples.get(base.n)!.read);
console.log(`\nusers with a connected account, memory store (ns per awaited getAccessToken, median of ${ROUNDS} interleaved windows; heap after GC)`);
console.log('| users | hot cache | ratio | store read | ratio | heap | per user | heap ratio | target |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const s of sizes) {
  const h = median(samples.get(s.n)!.hot);
  const rd = median(samples.get(s.n)!.read);
  const work = s.n / base.n;
  console.log(
    `| ${s.n} | ${h.toFixed(0)} ns | ${(h / baseHot).toFixed(2)}x | ${rd.toFixed(0)} ns | ${(rd / baseRead).toFixed(2)}x | ${(s.heapBytes / 1024 / 1024).toFixed(2)} MB | ${(s.heapBytes / s.n).toFixed(0)} B | ${(s.heapBytes / base.heapBytes).toFixed(0)}x | ≤ ${work}x |`,
  );
  record({ id: `heap-per-user/${s.n}`, label: `heap per user with a connected account, ${s.n.toLocaleString('en-US')} users (memory store)`, unit: 'B', value: s.heapBytes / s.n });
  if (s === base) continue;
  const label = `${s.n.toLocaleString('en-US')} / ${base.n} users in the memory store`;
  record({ id: `hot-${s.n}/${base.n}`, label: `\`getAccessToken\` from the hot cache, ${label} (per call)`, value: h / baseHot, target: { op: '<=', value: work } });
  record({ id: `read-${s.n}/${base.n}`, label: `\`getAccessToken\` read from the store, random user, ${label} (per call)`, value: rd / baseRead, target: { op: '<=', value: work } });
  record({ id: `heap-${s.n}/${base.n}`, label: `heap held by the accounts, ${label}`, value: s.heapBytes / base.heapBytes, target: { op: '<=', value: work } });
}
