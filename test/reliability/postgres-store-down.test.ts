// Moved from test/stores/contract-postgres.test.ts and test/stores/postgres.test.ts (the unit
// project has no fault injection, no sleeps over 50 ms and no timed assertions): PostgreSQL stopped
// under the agent-iam/postgres store and under the secure store over @keyv/postgres. Every call
// fails with STORE_UNAVAILABLE, bounded, and the process does not crash.
import KeyvPostgres from '@keyv/postgres';
import Keyv from 'keyv';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresStore } from '../../src/postgres/index.js';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createKeyValueStore, type KeyValueStore } from '../../src/stores/store.js';
import { ContainedPgClient, hasPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!hasPostgres)('agent-iam/postgres', () => {
  it('fails with STORE_UNAVAILABLE, bounded, when the server is gone, and the process does not crash', async () => {
    const own = (await startPostgres()) as PostgresServer;
    const userPool = new pg.Pool({ connectionString: own.url, max: 4, connectionTimeoutMillis: 500 });
    const fromUrl = postgresStore({ url: own.url, poolOptions: { connectionTimeoutMillis: 500 } });
    const fromPool = postgresStore({ pool: userPool });
    const stores = [createKeyValueStore(fromUrl, { timeoutMs: 1000 }), createKeyValueStore(fromPool, { timeoutMs: 1000 })];
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      for (const s of stores) {
        // Several idle connections in each pool: each emits 'error' when the server goes away.
        await Promise.all(Array.from({ length: 4 }, (_, i) => s.set(`k${i}`, i)));
        expect(await s.get('k1')).toBe(1);
      }
      await own.stop();
      await sleep(300); // let the idle connections report their errors
      for (const s of stores) {
        const started = Date.now();
        await expect(s.get('k1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await expect(s.set('k1', 2)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await expect(s.setIfAbsent('k9', 'x', 1000)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await expect(s.consume('k1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await expect(s.indexMembers('i')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        expect(Date.now() - started).toBeLessThan(4000);
      }
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await fromUrl.close();
      await userPool.end().catch(() => {});
      await own.stop();
    }
  });
});

describe.skipIf(!hasPostgres)('secure store over PostgreSQL (@keyv/postgres)', () => {
  let server: PostgresServer;
  let adapter: KeyvPostgres;
  let store: KeyValueStore;

  beforeAll(async () => {
    server = (await startPostgres()) as PostgresServer;
    adapter = new KeyvPostgres({ uri: server.url, table: 'agent_iam_store_test', connectionTimeoutMillis: 500, Client: ContainedPgClient });
    store = createSecureStore(createKeyValueStore(new Keyv(adapter), { timeoutMs: 1000 }), await createEncryptor(generateEncryptionKey()));
    await store.set('before', { a: 1 }); // connected and the table exists before the server goes
  });

  afterAll(async () => {
    await adapter?.disconnect().catch(() => {});
    await server?.stop();
  });

  it('fails with STORE_UNAVAILABLE (bounded) when the server is gone', async () => {
    await server.stop();
    const started = Date.now();
    await expect(store.get('anything')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(store.set('anything', { a: 1 })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
