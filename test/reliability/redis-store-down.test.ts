// Moved from test/stores/contract-redis.test.ts (the unit project has no fault injection, no sleeps
// over 50 ms and no timed assertions): the Redis store (agent-iam/redis) while its redis-server is
// killed, stopped and restarted. Every operation fails with STORE_UNAVAILABLE within the store
// timeout, nothing crashes, and it works again after the restart, with all three clients.
import { createClient } from 'redis';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisStore, type RedisStore } from '../../src/redis/index.js';
import { createKeyValueStore, type Store } from '../../src/stores/store.js';
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const SECRET = 'gho_RedisStoreSecretAccessToken_445566';
const TIMEOUT_MS = 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const wrap = (s: RedisStore, timeoutMs = 5000): Store => createKeyValueStore(s, { timeoutMs });
const uid = (): string => randomUUID().replace(/-/g, '');

/** Poll `fn` until it resolves (the server is back), at most `ms`. */
async function eventually<T>(fn: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(50);
    }
  }
}

/** Every enumerable and non-enumerable string reachable from an error (message, cause chain, fields). */
function errorText(e: unknown, depth = 0): string {
  if (depth > 4 || typeof e !== 'object' || e === null) return String(e);
  let out = '';
  for (const name of Object.getOwnPropertyNames(e)) {
    const v = (e as Record<string, unknown>)[name];
    out += ` ${name}=` + (typeof v === 'object' && v !== null ? errorText(v, depth + 1) : String(v));
  }
  return out;
}

describe.skipIf(!hasRedis)('agent-iam/redis', () => {
  describe('server down', () => {
    let down: RedisServer;
    beforeAll(async () => {
      down = (await startRedis()) as RedisServer;
    });
    afterAll(async () => {
      await down?.stop();
    });

    /** Every operation fails with STORE_UNAVAILABLE within the timeout, none hangs. */
    async function expectAllUnavailable(kv: Store): Promise<Array<string | undefined>> {
      const key = `agent-iam:v1:down:${uid()}`;
      const ops: Array<() => Promise<unknown>> = [
        () => kv.get(key),
        () => kv.set(key, SECRET, 1000),
        () => kv.delete(key),
        () => kv.getVersioned(key),
        () => kv.setIfAbsent(key, 'o', 1000),
        () => kv.compareAndSet(key, 'v', 1),
        () => kv.deleteIfOwner(key, 'o'),
        () => kv.consume(key),
        () => kv.indexAdd(key, 'm', 1000),
        () => kv.indexMembers(key),
        () => kv.indexRemove(key, 'm'),
      ];
      const t0 = Date.now();
      const errors = await Promise.all(ops.map((op) => op().then(() => 'resolved', (e: unknown) => e)));
      expect(Date.now() - t0).toBeLessThan(TIMEOUT_MS + 400);
      for (const e of errors) {
        expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE' });
        expect(errorText(e)).not.toContain(SECRET);
      }
      return errors.map((e) => (e as { reason?: string }).reason);
    }

    async function works(kv: Store): Promise<void> {
      const key = `agent-iam:v1:up:${uid()}`;
      expect(await kv.setIfAbsent(key, 'o', 10_000)).toBe(true); // a script, after the restart emptied the cache
      expect(await kv.get(key)).toBe('o');
      expect(await kv.deleteIfOwner(key, 'o')).toBe(true);
    }

    it('kill / stop, then restart: STORE_UNAVAILABLE while down, no crash, works again (all three clients)', async () => {
      const owned = redisStore({ url: down.url });
      const n = createClient({ url: down.url }); // no 'error' listener of yours: the store's must be enough
      const io = new Redis(down.url, { maxRetriesPerRequest: 1 });
      const kvs = [wrap(owned, TIMEOUT_MS), wrap(redisStore({ client: n }), TIMEOUT_MS), wrap(redisStore({ client: io }), TIMEOUT_MS)];
      try {
        for (const kv of kvs) await works(kv);
        for (const stop of [() => down.kill(), () => down.stop()]) {
          const stored = `agent-iam:v1:kept:${uid()}`;
          await kvs[0]!.set(stored, 1);
          await stop();
          await sleep(50);
          const reasons = await Promise.all(kvs.map(expectAllUnavailable));
          // node-redis from a url (disableOfflineQueue): fails at once, nothing queues up
          expect(reasons[0]!.every((r) => r === 'error')).toBe(true);
          await down.restart();
          for (const kv of kvs) await eventually(() => works(kv));
          expect(await kvs[1]!.get(stored)).toBeUndefined(); // a fresh server (no persistence)
        }
      } finally {
        await owned.close();
        await n.close().catch(() => {});
        io.disconnect();
      }
    });

    it('a url store whose server is down from the start fails fast, then connects when it is up', async () => {
      await down.stop();
      const owned = redisStore({ url: down.url });
      const kv = wrap(owned, TIMEOUT_MS);
      try {
        const t0 = Date.now();
        await expect(kv.get('agent-iam:v1:k')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'error' });
        expect(Date.now() - t0).toBeLessThan(TIMEOUT_MS);
        // many calls while down: each fails at once (no offline queue piling up)
        const results = await Promise.all(Array.from({ length: 200 }, () => kv.get('agent-iam:v1:k').catch((e: { reason?: string }) => e.reason)));
        expect(results.every((r) => r === 'error')).toBe(true);
        await down.restart();
        await eventually(() => works(kv));
        // closing while the server is down (reconnecting) returns promptly
        await down.kill();
        await expect(kv.get('agent-iam:v1:k')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        const t1 = Date.now();
        await owned.close();
        expect(Date.now() - t1).toBeLessThan(1000);
        await down.restart();
        await sleep(300);
        await expect(kv.get('agent-iam:v1:k')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' }); // closed: stays closed
      } finally {
        await owned.close();
      }
    });
  });
});
