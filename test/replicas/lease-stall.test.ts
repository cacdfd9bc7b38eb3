/**
 * A lease write that reaches a frozen store server (SIGSTOP) times out for its caller
 * (STORE_UNAVAILABLE), but the server still runs it when it wakes. Before the store layer took such
 * a lease back, nobody owned it, and every caller of that account in every replica waited for its
 * TTL (timeoutMs + 2 x storeTimeoutMs + 5 s: 16 s with the replicas suite's settings) before
 * anyone could refresh: the 16 s slowest call after a 5 s SIGSTOP of Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createClient } from 'redis';
import { createTokenManager, type Store, type TokenManager } from '../../src/index.js';
import { postgresStore } from '../../src/postgres/index.js';
import { redisStore } from '../../src/redis/index.js';
import { hasPostgres, startPostgres } from '../helpers/postgres.js';
import { hasRedis, startRedis } from '../helpers/redis.js';
import { connect, startIdp, type Setup } from '../tokens/helpers.js';
import { serverPids, type StoreKind } from './harness.js';

const STORE_TIMEOUT = 300;
const TIMEOUT = 1000;
const LEASE_TTL = TIMEOUT + 2 * STORE_TIMEOUT + 5000;

for (const kind of ['redis', 'postgres'] as const satisfies readonly StoreKind[]) {
  describe.skipIf(kind === 'redis' ? !hasRedis : !hasPostgres)(`a refresh lease written while ${kind} is frozen`, () => {
    let server: { url: string; port: number; stop(): Promise<void> };
    let s: Setup;
    let base: Store & { close(): Promise<void> };
    let freezeNextLease = false;
    let store: Store;
    beforeAll(async () => {
      server = kind === 'redis' ? (await startRedis())! : (await startPostgres())!;
      s = await startIdp({ accessTokenTtl: 1, refreshTokenRotation: true });
      base = kind === 'redis' ? redisStore({ url: server.url }) : postgresStore({ url: server.url, poolOptions: { max: 2 } });
      // The lease write of the next refresh goes to a server that is frozen until after the
      // caller has given up on it: what SIGSTOP does to a command in flight.
      store = Object.create(base) as Store;
      store.setIfAbsent = async (key, value, ttl) => {
        if (freezeNextLease && key.startsWith('agent-iam:v1:lease:')) {
          freezeNextLease = false;
          const pids = serverPids(kind, server.port);
          for (const pid of pids) process.kill(pid, 'SIGSTOP');
          setTimeout(() => pids.forEach((pid) => process.kill(pid, 'SIGCONT')), STORE_TIMEOUT + 200);
        }
        return base.setIfAbsent(key, value, ttl);
      };
    });
    afterAll(async () => {
      await base?.close();
      await s?.idp.close();
      await server?.stop();
    });

    const make = (): TokenManager => createTokenManager({ store, connections: [s.connection], storeTimeoutMs: STORE_TIMEOUT, timeoutMs: TIMEOUT, cacheSize: 0 });

    async function leases(): Promise<number> {
      if (kind === 'redis') {
        const raw = createClient({ url: server.url });
        await raw.connect();
        const n = (await raw.keys('agent-iam:v1:lease:*')).length;
        await raw.close();
        return n;
      }
      const raw = new pg.Client({ connectionString: server.url });
      await raw.connect();
      const { rows } = await raw.query(`SELECT count(*)::int AS n FROM agent_iam_store WHERE key LIKE 'agent-iam:v1:lease:%' AND (expires_at IS NULL OR expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint)`);
      await raw.end();
      return rows[0].n as number;
    }

    it(`is taken back when it lands late, so the next caller in another replica does not wait for its TTL (${LEASE_TTL} ms)`, async () => {
      const a = make();
      const b = make(); // another replica on the same store
      await connect(a, s.idp, 'alice');
      await new Promise((r) => setTimeout(r, 1100)); // the access token has expired: every caller needs the refresh
      freezeNextLease = true;
      await expect(a.getAccessToken({ connection: 'corp', userId: 'alice' })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await new Promise((r) => setTimeout(r, 500)); // the server is awake again and has run the lease write
      const left = await leases();
      const t0 = Date.now();
      await b.getAccessToken({ connection: 'corp', userId: 'alice' });
      const waited = Date.now() - t0;
      console.log(`[lease-stall:${kind}] leases left after the stall: ${left}; the next caller waited ${waited} ms (lease TTL ${LEASE_TTL} ms)`);
      expect(left).toBe(0);
      expect(waited).toBeLessThan(TIMEOUT + 4 * STORE_TIMEOUT);
    }, 30_000);
  });
}
