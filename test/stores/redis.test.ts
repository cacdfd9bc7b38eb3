// The secure store over a real redis-server (started by the test on a free loopback port).
import KeyvRedis, { createClient } from '@keyv/redis';
import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../../src/stores/store.js';
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const SECRET = 'ghr_RedisSecretRefreshToken_9876543210';
const TIMEOUT_MS = 400;

describe.skipIf(!hasRedis)('secure store over Redis (@keyv/redis)', () => {
  let redis: RedisServer;
  let adapter: KeyvRedis<unknown>;
  let store: KeyValueStore;
  const errors: unknown[] = [];

  beforeAll(async () => {
    redis = (await startRedis()) as RedisServer;
    adapter = new KeyvRedis(redis.url);
    const keyv = new Keyv(adapter);
    keyv.on('error', (e: unknown) => errors.push(e));
    store = createSecureStore(createKeyValueStore(keyv, { timeoutMs: TIMEOUT_MS }), await createEncryptor(generateEncryptionKey()));
  });

  afterAll(async () => {
    await adapter?.disconnect().catch(() => {});
    await redis?.stop();
  });

  async function rawDump(): Promise<Record<string, string>> {
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const out: Record<string, string> = {};
      for (const key of await client.keys('*')) out[key] = String(await client.get(key));
      return out;
    } finally {
      await client.close();
    }
  }

  it('round-trips values and keeps no plaintext secret in Redis', async () => {
    const key = storeKey('account', 'github', 'user', 'alice@example.com');
    await store.set(key, { accessToken: SECRET, refreshToken: `${SECRET}-r` });
    expect(await store.get(key)).toEqual({ accessToken: SECRET, refreshToken: `${SECRET}-r` });
    const dump = await rawDump();
    const keys = Object.keys(dump);
    expect(keys.some((k) => k.includes('agent-iam:v1:account:github:user:alice%40example.com'))).toBe(true);
    const text = JSON.stringify(dump);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('accessToken');
    expect(text).toContain('A256GCM');
  });

  it('honours the TTL in Redis (fractional and past TTLs included)', async () => {
    await store.set('fraction', { a: 1 }, 150.5); // Redis refuses a fractional PX: rounded up
    await store.set('past', { a: 1 }, -1);
    await store.set('ttl', { a: 1 }, 100);
    expect(await store.get('ttl')).toEqual({ a: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(await store.get('ttl')).toBeUndefined();
    expect(await store.get('past')).toBeUndefined();
    expect(await store.get('fraction')).toBeUndefined();
  });

  it('leaves one whole record when concurrent writers race on one key', async () => {
    const values = Array.from({ length: 50 }, (_, i) => ({ writer: i, blob: String(i % 10).repeat(20_000) }));
    await Promise.all(values.map((v) => store.set('race', v)));
    const got = await store.get<{ writer: number; blob: string }>('race');
    expect(got).toEqual(values[got?.writer ?? -1]);
  });

  it('settles every in-flight call, each with a value or STORE_UNAVAILABLE, when Redis dies mid-burst', async () => {
    await store.set('burst', { n: 1 });
    const started = Date.now();
    const burst = (n: number): Array<Promise<unknown>> =>
      Array.from({ length: n }, (_, i) => (i % 2 === 0 ? store.get('burst') : store.set(`burst:${i}`, { i })));
    const before = Promise.allSettled(burst(100)); // handlers attached now, before any call can fail
    const killed = redis.kill();
    const during = Promise.allSettled(burst(100));
    await killed;
    const after = Promise.allSettled(burst(100));
    const results = [...(await before), ...(await during), ...(await after)];
    expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThanOrEqual(100);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      else expect([undefined, { n: 1 }]).toContainEqual(r.value);
    }
    await redis.restart();
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && !(await store.set('back', 1).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 100));
  });

  it('fails fast with STORE_UNAVAILABLE when Redis dies, stays up, and recovers after a restart', async () => {
    await store.set('before', { ok: true });
    await redis.kill();

    for (const op of [() => store.get('before'), () => store.set('during', { x: SECRET }), () => store.delete('before')]) {
      const started = Date.now();
      const err = await op().then(
        () => 'no error',
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503 });
      expect(['timeout', 'error']).toContain((err as { reason: string }).reason);
      expect(JSON.stringify(err)).not.toContain(SECRET);
      expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 500);
    }
    // Never a silent "no value": a get on a dead store is an error, not undefined.
    await expect(store.get('never-written')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });

    await redis.restart();
    const deadline = Date.now() + 8000;
    let recovered = false;
    while (Date.now() < deadline) {
      try {
        await store.set('after', { ok: 2 });
        recovered = true;
        break;
      } catch (e) {
        expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(recovered).toBe(true);
    expect(await store.get('after')).toEqual({ ok: 2 });
    // The restarted server keeps nothing (no persistence): a clean miss, not an error.
    expect(await store.get('before')).toBeUndefined();
    expect(errors.length).toBeGreaterThan(0); // the adapter did report errors, to a listener, not a crash
  });
});
