// The secure store over a real redis-server (started by the test on a free loopback port). Killing
// Redis under it is in test/reliability/keyv-redis-down.test.ts.
import KeyvRedis, { createClient } from '@keyv/redis';
import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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
    // Redis' clock, not ours: poll until the TTLs have run out there (never a fixed sleep).
    await vi.waitFor(
      async () => {
        expect(await store.get('ttl')).toBeUndefined();
        expect(await store.get('past')).toBeUndefined();
        expect(await store.get('fraction')).toBeUndefined();
      },
      { timeout: 5_000, interval: 20 },
    );
  });

  it('leaves one whole record when concurrent writers race on one key', async () => {
    const values = Array.from({ length: 50 }, (_, i) => ({ writer: i, blob: String(i % 10).repeat(20_000) }));
    await Promise.all(values.map((v) => store.set('race', v)));
    const got = await store.get<{ writer: number; blob: string }>('race');
    expect(got).toEqual(values[got?.writer ?? -1]);
  });
});
