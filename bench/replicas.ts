// The multi-process suite's sustained-load run, longer than CI's 10 s: 8 forked replicas × 100 users,
// access tokens expiring every 3 s, refresh-token rotation with reuse detection at the identity
// provider, on one Redis and one PostgreSQL started here. Prints lost accounts, rejected refreshes and
// refreshes at the server against the ideal (one per account per expiry).
// Run: npx tsx bench/replicas.ts [--seconds 60]   (about 2 × seconds plus start-up)
import { hasPostgres, startPostgres } from '../test/helpers/postgres.js';
import { hasRedis, startRedis } from '../test/helpers/redis.js';
import { runTokenLoad, startReplicas, type StoreKind } from '../test/replicas/harness.js';
import { record } from './report.js';

const at = process.argv.indexOf('--seconds');
const seconds = at === -1 ? 60 : Number(process.argv[at + 1]);

async function one(kind: StoreKind): Promise<void> {
  const server = kind === 'redis' ? await startRedis() : await startPostgres();
  if (server === undefined) return void console.log(`${kind}: no server binary, skipped`);
  const r = await startReplicas({ store: kind, url: server.url, processes: 8, users: 100, accessTokenTtl: 3, refreshSkewSeconds: 1 });
  try {
    const res = await runTokenLoad(r, seconds * 1000);
    record({ id: `${kind}/lost`, label: `${kind}: 8 replicas, ${seconds} s of rotating refresh tokens: accounts lost`, unit: 'count', value: res.lost.length, target: { op: '<=', value: 0 } });
    console.log(
      `| ${kind} | ${seconds} s | ${res.calls} | ${res.lost.length} | ${Object.values(res.refreshErrors).reduce((a, b) => a + b, 0)} | ${res.refreshesAtServer} | ${res.maxTokensPerAccount} (ideal ≤ ${res.idealMaxPerAccount}) | ${res.maxLatencyMs} ms |`,
    );
  } finally {
    await r.close();
    await server.stop();
  }
}

console.log('| store | duration | calls | accounts lost | rejected refreshes | refreshes at the server | tokens per account, max | slowest call |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
if (hasRedis) await one('redis');
if (hasPostgres) await one('postgres');
