// Shared stores on real servers: what the hot path of a request costs on `redisStore` /
// `postgresStore` (atomic) against the plain Keyv adapters (`@keyv/redis` / `@keyv/postgres`) on the
// same server, measured in the same run. Target: the atomic store at most 1.2x the Keyv adapter.
//
//   - getAccessToken, cached: the token manager's in-process cache (no store call; both sides equal)
//   - getAccessToken, served from the store (cacheSize 0): one versioned read + decrypt, encrypted
//   - approval check of an approved request (ttlSeconds): binding read + record read
//   - one store read (getVersioned), to tell the store's own cost from the SDK's
//
// Starts its own redis-server and PostgreSQL on free 127.0.0.1 ports (as the tests do) and skips a
// server whose binaries are missing. Both sides run in alternating batches, median of rounds (the
// machine may be shared).
// Run: npm run bench stores-shared   or   npx tsx bench/stores-shared.ts [--rounds N]   (about 40 s)
import KeyvPostgres from '@keyv/postgres';
import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import { createApprovals, createKeyValueStore, createTokenManager, generateEncryptionKey, type Approvals, type ApprovalRequestInput, type ConnectionConfig, type KeyValueStore, type TokenManager } from '../src/index.js';
import { postgresStore } from '../src/postgres/index.js';
import { redisStore } from '../src/redis/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../src/testing/index.js';
import { ContainedPgClient, hasPostgres, startPostgres } from '../test/helpers/postgres.js';
import { hasRedis, startRedis } from '../test/helpers/redis.js';
import { fmt } from './timing.js';
import { record } from './report.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
const TARGET = 1.2;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}
const ROUNDS = arg('rounds', 7);
const ROUND_MS = arg('ms', 600);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * Both sides in one loop, batch by batch in alternating order, for about `ms` (after a warm-up):
 * mean ns per call of each. On a shared machine the load changes by the second; alternating
 * batches lets a change hit both sides alike instead of whichever happened to be running.
 */
async function measurePair(fa: () => unknown, fb: () => unknown, ms: number, batch: number): Promise<[number, number]> {
  for (let j = 0; j < batch; j++) {
    await fa();
    await fb();
  }
  const spent = [0, 0];
  const calls = [0, 0];
  const fns = [fa, fb];
  const end = performance.now() + ms;
  for (let round = 0; performance.now() < end; round++) {
    for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const f = fns[i]!;
      const t0 = performance.now();
      for (let j = 0; j < batch; j++) await f();
      spent[i]! += performance.now() - t0;
      calls[i]! += batch;
    }
  }
  return [(spent[0]! * 1e6) / calls[0]!, (spent[1]! * 1e6) / calls[1]!];
}

/** One side of a comparison: a store and everything the hot path builds on it. */
interface Side {
  name: string;
  /** What the token manager and approvals are given. */
  store: Keyv | KeyValueStore;
}

interface Built {
  cached: TokenManager;
  uncached: TokenManager;
  approvals: Approvals;
  request: ApprovalRequestInput;
  read: () => Promise<unknown>;
  user: string;
}

async function build(idp: TestIdentityProvider, connection: ConnectionConfig, side: Side, tag: string): Promise<Built> {
  const encryptionKey = generateEncryptionKey();
  // One manager writes the account; both read it from the same store (the same encryption key).
  const cached = createTokenManager({ store: side.store, encryptionKey, connections: [connection] });
  const uncached = createTokenManager({ store: side.store, encryptionKey, connections: [connection], cacheSize: 0 });
  const user = `bench-${tag}`; // same length on both sides: same key size
  const { url } = await cached.startAuthorization({ connection: 'corp', userId: user });
  await cached.completeAuthorization(await idp.authorize(url, { userId: user }));

  const approvals = createApprovals({ store: side.store });
  const request: ApprovalRequestInput = { agentId: 'refund-agent', userId: user, tool: 'payments', method: 'POST', path: '/v1/refunds', query: '', bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' };
  const first = await approvals.check(request);
  await approvals.approve(first.id, { approver: 'human@example.com', ttlSeconds: 3600 });
  if ((await approvals.check(request)).status !== 'approved') throw new Error(`${side.name}: the approval did not pass`);

  const kv = createKeyValueStore(side.store);
  const key = `agent-iam:v1:account:corp:user:${user}`;
  if ((await kv.getVersioned(key)) === undefined) throw new Error(`${side.name}: no account record at ${key}`);
  return { cached, uncached, approvals, request, read: () => kv.getVersioned(key), user };
}

interface Row {
  what: string;
  atomic: number;
  keyv: number;
  /** True when this row is the hot path held to the target. */
  target: boolean;
}

async function compare(server: string, idp: TestIdentityProvider, connection: ConnectionConfig, atomic: Side, keyv: Side): Promise<Row[]> {
  const a = await build(idp, connection, atomic, 'a');
  const k = await build(idp, connection, keyv, 'k');
  const ref = (b: Built) => ({ connection: 'corp', userId: b.user });
  const cases: Array<{ what: string; target: boolean; run: (b: Built) => () => unknown; batch: number }> = [
    { what: 'getAccessToken, cached (no store call)', target: false, run: (b) => () => b.cached.getAccessToken(ref(b)), batch: 500 },
    { what: 'getAccessToken, from the store (read + decrypt)', target: true, run: (b) => () => b.uncached.getAccessToken(ref(b)), batch: 20 },
    { what: 'approval check, approved request (2 reads)', target: true, run: (b) => () => b.approvals.check(b.request), batch: 20 },
    { what: 'one store read (getVersioned)', target: false, run: (b) => b.read, batch: 20 },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    const fa = c.run(a);
    const fk = c.run(k);
    const ra: number[] = [];
    const rk: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const [na, nk] = await measurePair(fa, fk, ROUND_MS, c.batch);
      ra.push(na);
      rk.push(nk);
    }
    rows.push({ what: c.what, atomic: median(ra), keyv: median(rk), target: c.target });
  }
  console.log(`\n${server}: ${atomic.name} vs ${keyv.name} (median of ${ROUNDS} rounds of alternating batches, mean per awaited call)\n`);
  console.log(`| operation | ${atomic.name} | ${keyv.name} (baseline) | ratio |`);
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) {
    const ratio = r.atomic / r.keyv;
    const mark = r.target ? (ratio <= TARGET ? ` (target <= ${TARGET}x: met)` : ` (target <= ${TARGET}x: MISSED)`) : '';
    console.log(`| ${r.what} | ${fmt(r.atomic)} | ${fmt(r.keyv)} | ${ratio.toFixed(2)}x${mark} |`);
    if (r.target) {
      record({ id: `${server}/${r.what.startsWith('approval') ? 'approval-check' : 'get-access-token-from-store'}`, label: `${server}: ${r.what}, ${atomic.name} / ${keyv.name}`, value: ratio, target: { op: '<=', value: TARGET } });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  if (!hasRedis && !hasPostgres) {
    console.log('skipped: neither redis-server nor PostgreSQL (initdb, postgres under /usr/lib/postgresql/*/bin) is installed');
    return;
  }
  const idp = await createTestIdentityProvider({ accessTokenTtl: 3600 });
  try {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
    const connection = { id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'read'] };

    if (!hasRedis) console.log('\nRedis: skipped (redis-server not found; apt-get install redis-server)');
    else {
      const server = await startRedis();
      if (server === undefined) throw new Error('redis-server did not start');
      try {
        const atomic = redisStore({ url: server.url });
        const adapter = new KeyvRedis(server.url);
        try {
          await compare(`Redis ${server.url}`, idp, connection, { name: 'redisStore', store: atomic }, { name: '@keyv/redis', store: new Keyv(adapter) });
        } finally {
          await atomic.close();
          await adapter.disconnect().catch(() => {});
        }
      } finally {
        await server.stop();
      }
    }

    if (!hasPostgres) console.log('\nPostgreSQL: skipped (initdb and postgres not found under /usr/lib/postgresql/*/bin or on PATH)');
    else {
      const server = await startPostgres();
      if (server === undefined) throw new Error('postgres did not start');
      try {
        const atomic = postgresStore({ url: server.url });
        const adapter = new KeyvPostgres({ uri: server.url, Client: ContainedPgClient });
        try {
          await compare(`PostgreSQL ${server.url}`, idp, connection, { name: 'postgresStore', store: atomic }, { name: '@keyv/postgres', store: new Keyv(adapter) });
        } finally {
          await atomic.close();
          await adapter.disconnect().catch(() => {});
        }
      } finally {
        await server.stop();
      }
    }
  } finally {
    await idp.close();
  }
}

await main();
