// The Redis store (agent-iam/redis) against a real redis-server on loopback: the whole store
// contract with node-redis (from a url, and your own client) and ioredis, each across two
// independent connections, then what is specific to Redis. Killing and restarting the server is in
// test/reliability/redis-store-down.test.ts.
import { createClient } from 'redis';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { redisStore, type RedisStore } from '../../src/redis/index.js';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createKeyValueStore, storeKey, type Store } from '../../src/stores/store.js';
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js';
import { describeStoreContract } from './contract.js';

const SECRET = 'gho_RedisStoreSecretAccessToken_445566';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const wrap = (s: RedisStore, timeoutMs = 5000): Store => createKeyValueStore(s, { timeoutMs });
const uid = (): string => randomUUID().replace(/-/g, '');
type NodeClient = ReturnType<typeof createClient>;

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

const encryptor = await createEncryptor(generateEncryptionKey());

describe.skipIf(!hasRedis)('agent-iam/redis', () => {
  let server: RedisServer;
  let raw: NodeClient; // direct commands, to look at what is in Redis
  let fromUrl: RedisStore; // owns its node-redis client
  let fromUrlPeer: RedisStore;
  let nodeA: NodeClient; // yours, handed over unconnected: the store connects it
  let nodeB: NodeClient; // yours, connected by you
  let ioA: Redis;
  let ioB: Redis;
  const stores: Record<string, { a: Store; b: Store }> = {};
  let secure: { a: Store; b: Store; plain: Store };
  const toClose: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    server = (await startRedis()) as RedisServer;
    raw = createClient({ url: server.url });
    raw.on('error', () => {});
    await raw.connect();
    fromUrl = redisStore({ url: server.url });
    fromUrlPeer = redisStore({ url: server.url, clientOptions: { name: 'peer' } });
    nodeA = createClient({ url: server.url });
    nodeB = createClient({ url: server.url });
    await nodeB.connect();
    ioA = new Redis(server.url);
    ioB = new Redis(server.url, { lazyConnect: true });
    toClose.push(() => fromUrl.close(), () => fromUrlPeer.close(), () => nodeA.close(), () => nodeB.close(), () => ioA.quit(), () => ioB.quit());
    stores.url = { a: wrap(fromUrl), b: wrap(fromUrlPeer) };
    stores.node = { a: wrap(redisStore({ client: nodeA })), b: wrap(redisStore({ client: nodeB })) };
    stores.io = { a: wrap(redisStore({ client: ioA })), b: wrap(redisStore({ client: ioB })) };
    const plain = stores.node.a;
    secure = { a: createSecureStore(plain, encryptor), b: createSecureStore(stores.io.b, encryptor), plain };
  });

  afterAll(async () => {
    for (const c of toClose) await c().catch(() => {});
    await raw?.close().catch(() => {});
    await server?.stop();
  });

  describeStoreContract('Redis, node-redis created from a url', () => ({ store: () => stores.url!.a, peer: () => stores.url!.b, exact: true, serverClock: true }));
  describeStoreContract('Redis, your node-redis client', () => ({ store: () => stores.node!.a, peer: () => stores.node!.b, exact: true, serverClock: true }));
  describeStoreContract('Redis, your ioredis client', () => ({ store: () => stores.io!.a, peer: () => stores.io!.b, exact: true, serverClock: true }));
  describeStoreContract('Redis, node-redis and ioredis on one server', () => ({ store: () => stores.node!.b, peer: () => stores.io!.a, exact: true, serverClock: true }));
  describeStoreContract('Redis, encrypted', () => ({ store: () => secure.a, peer: () => secure.b, exact: true, plain: secure.plain, serverClock: true }));

  describe('data in Redis', () => {
    it('keys are exactly the callers\' keys: a hash { v: JSON text, n: version }, TTL as the key\'s expiry', async () => {
      const store = stores.url!.a;
      const key = storeKey('account', 'github', `user:${uid()}`);
      await store.set(key, { n: 1, s: 'é' }, 60_000);
      expect(await raw.type(key)).toBe('hash');
      const hash = await raw.hGetAll(key);
      expect(Object.keys(hash).sort()).toEqual(['n', 'v']);
      expect(hash.v).toBe(JSON.stringify({ n: 1, s: 'é' }));
      expect(hash.n).toBe((await store.getVersioned(key))?.version);
      const pttl = await raw.pTTL(key);
      expect(pttl).toBeGreaterThan(55_000);
      expect(pttl).toBeLessThanOrEqual(60_000);
      await store.set(key, { n: 2 }); // no TTL: persisted
      expect(await raw.pTTL(key)).toBe(-1);
      expect(await store.compareAndSet(key, hash.n!, { n: 3 })).toBe(false);
      expect(await raw.keys(`*${key.slice(-32)}*`)).toEqual([key]);
    });

    it('a prefix is prepended to every key; indexes live at key + "#index"', async () => {
      const prefix = `app-${uid()}:`;
      const store = wrap(redisStore({ client: nodeB, prefix }));
      await store.set('agent-iam:v1:a', 1);
      await store.setIfAbsent('agent-iam:v1:b', 'owner', 10_000);
      await store.indexAdd('agent-iam:v1:a', 'm1', 60_000); // same key as a value: no collision
      expect((await raw.keys(`${prefix}*`)).sort()).toEqual([`${prefix}agent-iam:v1:a`, `${prefix}agent-iam:v1:a#index`, `${prefix}agent-iam:v1:b`]);
      expect(await raw.type(`${prefix}agent-iam:v1:a#index`)).toBe('zset');
      expect(await store.get('agent-iam:v1:a')).toBe(1);
      expect(await store.indexMembers('agent-iam:v1:a')).toEqual(['m1']);
      expect(await store.delete('agent-iam:v1:a')).toBe(true); // the value only
      expect(await store.indexMembers('agent-iam:v1:a')).toEqual(['m1']);
      // without the prefix nothing is there
      expect(await stores.node!.b.get('agent-iam:v1:b')).toBeUndefined();
      expect(await store.get('agent-iam:v1:b')).toBe('owner');
    });

    it('an index expires with its last member, on the server clock', async () => {
      const store = stores.io!.a;
      const key = `agent-iam:v1:idx:${uid()}`;
      await store.indexAdd(key, 'a', 60_000);
      const t1 = await raw.pTTL(`${key}#index`);
      expect(t1).toBeGreaterThan(55_000);
      await store.indexAdd(key, 'forever');
      expect(await raw.pTTL(`${key}#index`)).toBe(-1);
      expect(await store.indexRemove(key, 'forever')).toBe(true);
      expect(await raw.pTTL(`${key}#index`)).toBeGreaterThan(55_000);
      // scores are expiry times in ms from Redis' own TIME
      const [sec] = (await raw.time()) as unknown as [number | string];
      const score = Number(await raw.zScore(`${key}#index`, 'a'));
      expect(Math.abs(score - (Number(sec) * 1000 + 60_000))).toBeLessThan(5_000);
      await store.indexAdd(key, 'short', 30);
      // Redis' clock, not ours: wait for the member to expire there (polled, never a fixed sleep).
      await vi.waitFor(async () => expect(await store.indexMembers(key)).toEqual(['a']), { timeout: 5_000, interval: 10 });
      expect(await raw.zScore(`${key}#index`, 'short')).not.toBeNull(); // still in the set...
      expect(await store.indexRemove(key, 'short')).toBe(false); // ...was there, but expired
      expect(await store.indexRemove(key, 'a')).toBe(true);
      expect(await raw.exists(`${key}#index`)).toBe(0); // emptied: gone
    });

    it('values are plain JSON text, so an encrypted record shows no plaintext', async () => {
      const key = storeKey('account', 'github', `user-${uid()}`);
      await secure.a.set(key, { accessToken: SECRET, refreshToken: `${SECRET}-r` }, 60_000);
      expect(await secure.b.get(key)).toEqual({ accessToken: SECRET, refreshToken: `${SECRET}-r` });
      const hash = await raw.hGetAll(key);
      const record = JSON.parse(hash.v!) as Record<string, unknown>;
      expect(record.alg).toBe('A256GCM');
      const dump = JSON.stringify(hash);
      expect(dump).not.toContain(SECRET);
      expect(dump).not.toContain('accessToken');
      // lease owners stay plaintext JSON (deleteIfOwner compares them on the server)
      const lease = storeKey('lease', uid());
      expect(await secure.plain.setIfAbsent(lease, 'owner-a', 10_000)).toBe(true);
      expect(await raw.hGet(lease, 'v')).toBe('"owner-a"');
    });

    it('a corrupt value or a key of another type reads as STORE_UNAVAILABLE malformed, without echoing it', async () => {
      const store = stores.node!.a;
      const bad = `agent-iam:v1:bad:${uid()}`;
      await raw.hSet(bad, { v: `{not json ${SECRET}`, n: 'x' });
      for (const op of [() => store.get(bad), () => store.getVersioned(bad), () => store.consume(bad)]) {
        const e = await op().catch((x: unknown) => x);
        expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'malformed' });
        expect(errorText(e)).not.toContain(SECRET);
      }
      const noVersion = `agent-iam:v1:bad:${uid()}`;
      await raw.hSet(noVersion, { v: '1' });
      await expect(store.getVersioned(noVersion)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'malformed' });
      const str = `agent-iam:v1:str:${uid()}`;
      await raw.set(str, JSON.stringify(SECRET)); // e.g. left by @keyv/redis
      for (const op of [() => store.get(str), () => store.set(str, 1), () => store.compareAndSet(str, 'v', 1), () => store.deleteIfOwner(str, 'o')]) {
        const e = await op().catch((x: unknown) => x);
        expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'malformed' });
        expect(errorText(e)).not.toContain(SECRET);
      }
    });

    it('refuses values JSON cannot represent', async () => {
      const key = `agent-iam:v1:x:${uid()}`;
      await expect(stores.io!.a.set(key, 1n)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'not_serializable' });
      await expect(stores.io!.a.setIfAbsent(key, undefined)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'not_serializable' });
      expect(await raw.exists(key)).toBe(0);
    });

    it('re-sends a script with EVAL when the server forgot it (SCRIPT FLUSH, restart, failover)', async () => {
      const key = `agent-iam:v1:flush:${uid()}`;
      for (const s of [stores.url!.a, stores.io!.a]) {
        await raw.scriptFlush();
        expect(await s.setIfAbsent(key, 'a')).toBe(true);
        expect(await s.consume(key)).toBe('a');
      }
    });
  });

  describe('clients', () => {
    it('from { url }: connects on first use, and close() closes the client it created', async () => {
      const name = `agent-iam-${uid()}`;
      const store = redisStore({ url: server.url, clientOptions: { name } });
      const clientNames = async (): Promise<string> => String(await raw.sendCommand(['CLIENT', 'LIST']));
      expect(await clientNames()).not.toContain(name); // nothing before first use
      const kv = wrap(store);
      await kv.set('agent-iam:v1:url', 1);
      expect(await clientNames()).toContain(`name=${name}`);
      await store.close();
      await expect(kv.get('agent-iam:v1:url')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await eventually(async () => expect(await clientNames()).not.toContain(name), 2000);
      await store.close(); // twice is fine
    });

    it('your client: used as it is, and close() leaves it open', async () => {
      const n = createClient({ url: server.url }); // not connected: the store connects it
      const io = new Redis(server.url, { lazyConnect: true });
      try {
        for (const client of [n, io] as const) {
          const store = redisStore({ client });
          const kv = wrap(store);
          const key = `agent-iam:v1:own:${uid()}`;
          expect(await kv.setIfAbsent(key, 'x')).toBe(true);
          await store.close();
          // still usable, by you and by the store
          expect(await kv.get(key)).toBe('x');
        }
        expect(n.isOpen).toBe(true);
        expect(await n.ping()).toBe('PONG');
        expect(io.status).toBe('ready');
        expect(await io.ping()).toBe('PONG');
        // the store always listens for 'error', so an 'error' event never crashes the process
        expect(n.listenerCount('error')).toBeGreaterThanOrEqual(1);
        expect(io.listenerCount('error')).toBeGreaterThanOrEqual(1);
      } finally {
        await n.close().catch(() => {});
        await io.quit().catch(() => {});
      }
    });

    it('a client you closed yourself is not reopened', async () => {
      const n = createClient({ url: server.url });
      await n.connect();
      const kv = wrap(redisStore({ client: n }));
      await kv.set('agent-iam:v1:closed', 1);
      await n.close();
      await expect(kv.get('agent-iam:v1:closed')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'error' });
      expect(n.isOpen).toBe(false);
    });

    it('checks its options at construction (CONFIG_INVALID naming the field, never echoing a URL)', () => {
      const cases: Array<[unknown, string]> = [
        [{}, 'url'],
        [{ url: 'http://user:pw-SECRET@h:6379' }, 'url'],
        [{ url: 'redis://h', client: nodeB }, 'client'],
        [{ client: nodeB, clientOptions: {} }, 'clientOptions'],
        [{ client: {} }, 'client'],
        [{ client: nodeB, prefix: 1 }, 'prefix'],
        [{ client: nodeB, extra: true }, '(root)'],
      ];
      for (const [options, field] of cases) {
        let error: unknown;
        try {
          redisStore(options as never);
        } catch (e) {
          error = e;
        }
        expect(error, JSON.stringify(options)).toMatchObject({ code: 'CONFIG_INVALID' });
        if (field !== '(root)') expect((error as { field?: string }).field).toBe(field);
        expect(errorText(error)).not.toContain('pw-SECRET');
      }
    });

    it('a client error never carries command arguments (values, tokens) onward', async () => {
      // What Redis answers to a renamed/disabled command, and what ioredis attaches to its errors.
      const reply = Object.assign(new Error(`ERR unknown command 'EVALSHA', with args beginning with: 'abc' '1' 'k' '${SECRET}'`), {
        command: { name: 'evalsha', args: ['abc', '1', 'k', SECRET] },
      });
      const fake = { sendCommand: async () => Promise.reject(reply) };
      const kv = wrap(redisStore({ client: fake }));
      const e = await kv.set('agent-iam:v1:k', SECRET).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'error' });
      expect((e as Error).message).toContain('ERR');
      expect(errorText(e)).not.toContain(SECRET);
      const io = { call: async () => Promise.reject(reply) };
      const e2 = await wrap(redisStore({ client: io })).get('agent-iam:v1:k').catch((x: unknown) => x);
      expect(e2).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'error' });
      expect(errorText(e2)).not.toContain(SECRET);
    });

    it('without the "redis" package, a url store fails with CONFIG_INVALID naming it', async () => {
      for (const factory of [
        () => {
          throw Object.assign(new Error("Cannot find package 'redis'"), { code: 'ERR_MODULE_NOT_FOUND' });
        },
        () => ({}), // something else under that name
      ]) {
        vi.resetModules();
        vi.doMock('redis', factory);
        try {
          const fresh = await import('../../src/redis/index.js');
          const store = fresh.redisStore({ url: server.url });
          const e = await store.get('agent-iam:v1:k').catch((x: unknown) => x);
          expect(e).toMatchObject({ code: 'CONFIG_INVALID', field: 'store' });
          expect((e as Error).message).toContain('"redis" package (npm install redis)');
          // through the wrapper too (an AgentIamError passes unchanged)
          await expect(createKeyValueStore(store).set('agent-iam:v1:k', 1)).rejects.toMatchObject({ code: 'CONFIG_INVALID', field: 'store' });
          // a client of your own needs no package
          const mine = fresh.redisStore({ client: nodeB });
          await mine.set('agent-iam:v1:own-no-pkg', 1);
          expect(await mine.get('agent-iam:v1:own-no-pkg')).toBe(1);
        } finally {
          vi.doUnmock('redis');
          vi.resetModules();
        }
      }
    });
  });
});
