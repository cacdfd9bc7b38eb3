// Moved from test/stores/redis.test.ts (the unit project has no fault injection, no sleeps over
// 50 ms and no timed assertions): the secure store over @keyv/redis while redis-server is killed
// mid-burst and restarted. Every call settles, failures are STORE_UNAVAILABLE within a bound, and
// it recovers.
import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createKeyValueStore, type KeyValueStore } from '../../src/stores/store.js';
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
    const whileDown: unknown[] = [];
    while (Date.now() < deadline) {
      try {
        await store.set('after', { ok: 2 });
        recovered = true;
        break;
      } catch (e) {
        whileDown.push(e);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const e of whileDown) expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(recovered).toBe(true);
    expect(await store.get('after')).toEqual({ ok: 2 });
    // The restarted server keeps nothing (no persistence): a clean miss, not an error.
    expect(await store.get('before')).toBeUndefined();
    expect(errors.length).toBeGreaterThan(0); // the adapter did report errors, to a listener, not a crash
  });
});
