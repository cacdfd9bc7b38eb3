// The PostgreSQL store (agent-iam/postgres) against a real server initdb'd into a temp dir on
// loopback: the whole store contract across two pools, then what is specific to PostgreSQL.
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postgresStore, type PostgresPool, type PostgresStore } from '../../src/postgres/index.js';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createKeyValueStore, storeKey, type Store } from '../../src/stores/store.js';
import { connectPg, hasPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { describeStoreContract } from './contract.js';

const SECRET = 'gho_PostgresStoreSecretAccessToken_998877';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A fresh table base name, so a test sees tables being created. */
const freshTable = (): string => `t_${randomUUID().replace(/-/g, '').slice(0, 20)}`;

describe.skipIf(!hasPostgres)('agent-iam/postgres', () => {
  let server: PostgresServer;
  let raw: PostgresStore; // the store itself, unwrapped
  let peerRaw: PostgresStore; // a second store on its own pool: another "process"
  let peer: Store;
  let client: pg.Client; // direct SQL, to look at the tables
  const toClose: Array<{ close(): Promise<void> } | { end(): Promise<void> }> = [];

  beforeAll(async () => {
    server = (await startPostgres()) as PostgresServer;
    raw = postgresStore({ url: server.url });
    peerRaw = postgresStore({ url: server.url, poolOptions: { max: 4 } });
    peer = createKeyValueStore(peerRaw, { timeoutMs: 5000 });
    client = await connectPg(server.url);
  });

  afterAll(async () => {
    for (const c of toClose) await ('close' in c ? c.close() : c.end()).catch(() => {});
    await raw?.close();
    await peerRaw?.close();
    await client?.end().catch(() => {});
    await server?.stop();
  });

  describeStoreContract('PostgreSQL', () => ({ store: () => raw, peer: () => peer, exact: true, serverClock: true }));

  const encryptor = createEncryptor(generateEncryptionKey());
  let secure: Store | undefined;
  let securePeer: Store | undefined;
  describeStoreContract('encrypted PostgreSQL', () => {
    return {
      store: () => secure!,
      peer: () => securePeer!,
      exact: true,
      plain: raw,
      serverClock: true,
    };
  });
  beforeAll(async () => {
    secure = createSecureStore(createKeyValueStore(raw), await encryptor);
    securePeer = createSecureStore(peer, await encryptor);
  });

  async function tableExists(name: string): Promise<boolean> {
    const { rows } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [name]);
    return rows[0]?.ok === true;
  }

  it('creates its tables on first use, with the documented columns', async () => {
    const table = freshTable();
    const store = postgresStore({ url: server.url, table });
    toClose.push(store);
    expect(await tableExists(table)).toBe(false); // nothing happens at construction
    await store.set('k', { a: 1 }, 60_000);
    expect(await tableExists(table)).toBe(true);
    expect(await tableExists(`${table}_index`)).toBe(true);
    const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(
      `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name IN ($1, $2) ORDER BY table_name, ordinal_position`,
      [table, `${table}_index`],
    );
    expect(rows.map((r) => `${r.table_name.slice(table.length) || '.'}:${r.column_name}:${r.data_type}:${r.is_nullable}`)).toEqual([
      '.:key:text:NO',
      '.:value:text:NO',
      '.:version:text:NO',
      '.:expires_at:bigint:YES',
      '_index:key:text:NO',
      '_index:member:text:NO',
      '_index:expires_at:bigint:YES',
    ]);
    const raw = await client.query<{ key: string; value: string }>(`SELECT key, value FROM "${table}"`);
    expect(raw.rows).toEqual([{ key: 'k', value: '{"a":1}' }]);
  });

  it('creates the tables once when many stores start at the same moment', async () => {
    for (let round = 0; round < 3; round++) {
      const table = freshTable();
      const stores = Array.from({ length: 8 }, () => postgresStore({ url: server.url, table, poolOptions: { max: 2 } }));
      toClose.push(...stores);
      // Every store runs its first statement concurrently; without the advisory lock some of these
      // CREATE TABLE IF NOT EXISTS fail with a unique violation on pg_type.
      const results = await Promise.allSettled(stores.map((s, i) => s.setIfAbsent('once', `store-${i}`, 60_000)));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(results.filter((r) => r.status === 'fulfilled' && r.value === true)).toHaveLength(1);
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('works from the caller\'s own pg.Pool, attaches an error listener to it, and close() leaves it open', async () => {
    const pool = new pg.Pool({ connectionString: server.url, max: 2 });
    toClose.push(pool);
    expect(pool.listenerCount('error')).toBe(0);
    const typed: PostgresPool = pool; // a pg.Pool fits the structural type
    const store = postgresStore({ pool: typed });
    const again = postgresStore({ pool, table: 'agent_iam_other' });
    expect(pool.listenerCount('error')).toBe(1); // once per pool, however many stores
    expect(store.atomic).toBe(true);
    await store.set('own-pool', 'yes');
    expect(await peer.get('own-pool')).toBe('yes'); // same default table as the url stores
    await again.set('own-pool', 'other');
    expect(await store.get('own-pool')).toBe('yes');
    await store.close();
    await again.close();
    expect((await pool.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n).toBe(1);
    expect(await store.get('own-pool')).toBe('yes'); // still usable: the pool is the caller's
    await pool.end();
  });

  it('close() ends the pool it created from a url', async () => {
    const app = `agent-iam-close-${randomUUID().slice(0, 8)}`;
    const store = postgresStore({ url: server.url, poolOptions: { application_name: app } });
    await Promise.all([store.get('a'), store.get('b'), store.get('c')]);
    const count = async (): Promise<number> =>
      Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [app])).rows[0]?.n);
    expect(await count()).toBeGreaterThan(0);
    await store.close();
    await store.close(); // idempotent
    for (let i = 0; i < 50 && (await count()) > 0; i++) await sleep(20);
    expect(await count()).toBe(0);
    await expect(store.get('a')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(createKeyValueStore(store).set('a', 1)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('close() before first use never opens a connection', async () => {
    const store = postgresStore({ url: 'postgresql://nobody@127.0.0.1:1/none' });
    await store.close();
    await expect(store.get('x')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('validates its options at construction; the table name is an identifier, never raw SQL', () => {
    const bad = ['', 'Agent', 'bad-name', '1abc', 'a'.repeat(42), 'x; DROP TABLE agent_iam_store; --', 'x"y', 'public.store', 'ü'];
    for (const table of bad) {
      let error: unknown;
      try {
        postgresStore({ url: server.url, table });
      } catch (e) {
        error = e;
      }
      expect(error, table).toMatchObject({ code: 'CONFIG_INVALID', field: 'table' });
      if (table.length > 3) expect((error as Error).message).not.toContain(table);
    }
    expect(() => postgresStore({ url: server.url, table: 'a'.repeat(41) })).not.toThrow();
    expect(() => postgresStore({} as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'url' }));
    expect(() => postgresStore({ url: server.url, pool: new pg.Pool() } as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'pool' }));
    expect(() => postgresStore({ pool: {} as PostgresPool })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'pool' }));
    expect(() => postgresStore({ url: '' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'url' }));
    expect(() => postgresStore({ url: server.url, tabel: 'x' } as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    const pool = new pg.Pool();
    expect(() => postgresStore({ pool, poolOptions: { max: 1 } } as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'poolOptions' }));
    void pool.end();
  });

  it('accepts a table name that is an SQL keyword (identifiers are quoted)', async () => {
    const store = postgresStore({ url: server.url, table: 'user' });
    toClose.push(store);
    await store.set('k', 1);
    expect(await store.get('k')).toBe(1);
    expect(await tableExists('"user"')).toBe(true);
  });

  it('keeps no plaintext in the table for a record written through createSecureStore', async () => {
    const table = freshTable();
    const store = postgresStore({ url: server.url, table });
    toClose.push(store);
    const secureStore = createSecureStore(createKeyValueStore(store), await encryptor);
    const key = storeKey('account', 'github', 'user', 'alice');
    await secureStore.set(key, { accessToken: SECRET, kind: 'oauth2' }, 60_000);
    expect(await secureStore.get(key)).toEqual({ accessToken: SECRET, kind: 'oauth2' });
    expect(await secureStore.compareAndSet(key, (await secureStore.getVersioned(key))!.version, { accessToken: SECRET, n: 2 })).toBe(true);
    const { rows } = await client.query(`SELECT * FROM "${table}"`);
    expect(rows).toHaveLength(1);
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(SECRET);
    expect(dump).not.toContain('accessToken');
    expect(dump).toContain('A256GCM');
    expect(rows[0]?.key).toBe(key);
  });

  it('treats a row past expires_at (database clock) as absent for every operation', async () => {
    const key = `expired-${randomUUID()}`;
    await client.query(
      `INSERT INTO agent_iam_store (key, value, version, expires_at) VALUES ($1, '"owner"', 'v1', (extract(epoch from clock_timestamp()) * 1000)::bigint - 1)`,
      [key],
    );
    expect(await raw.get(key)).toBeUndefined();
    expect(await raw.getVersioned(key)).toBeUndefined();
    expect(await raw.consume(key)).toBeUndefined();
    expect(await raw.deleteIfOwner(key, 'owner')).toBe(false);
    expect(await raw.compareAndSet(key, 'v1', 'new')).toBe(false);
    expect(await raw.delete(key)).toBe(false);
    expect((await client.query('SELECT 1 FROM agent_iam_store WHERE key = $1', [key])).rowCount).toBe(0); // delete removed it
    await client.query(`INSERT INTO agent_iam_store (key, value, version, expires_at) VALUES ($1, '"owner"', 'v1', 0)`, [key]);
    expect(await raw.setIfAbsent(key, 'taker', 60_000)).toBe(true);
    expect(await peer.get(key)).toBe('taker');
    await client.query(`INSERT INTO agent_iam_store_index (key, member, expires_at) VALUES ($1, 'gone', 0)`, [key]);
    expect(await raw.indexMembers(key)).toEqual([]);
    expect(await raw.indexRemove(key, 'gone')).toBe(false);
  });

  it('a corrupt row is STORE_UNAVAILABLE (malformed), and the message never holds the value', async () => {
    const key = `corrupt-${randomUUID()}`;
    await client.query(`INSERT INTO agent_iam_store (key, value, version) VALUES ($1, $2, 'v')`, [key, `{${SECRET}`]);
    for (const read of [() => raw.get(key), () => raw.getVersioned(key), () => peer.get(key)]) {
      const error = await read().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'malformed' });
      expect(String((error as Error).message)).not.toContain(SECRET);
      expect(JSON.stringify(error)).not.toContain(SECRET);
    }
  });

  it('ranks index ties by member, and limit keeps the members expiring last', async () => {
    const key = `ties-${randomUUID()}`;
    for (const m of ['b', 'a', 'c']) await raw.indexAdd(key, m);
    await raw.indexAdd(key, 'soon', 60_000);
    expect(await raw.indexMembers(key)).toEqual(['soon', 'a', 'b', 'c']);
    expect(await raw.indexMembers(key, 2)).toEqual(['b', 'c']);
    expect(await raw.indexMembers(key, 10)).toEqual(['soon', 'a', 'b', 'c']);
    expect(await raw.indexMembers(key, 0)).toEqual([]);
  });

  it('cleans expired rows up as writes come in, in bounded batches', async () => {
    const table = freshTable();
    const store = postgresStore({ url: server.url, table });
    toClose.push(store);
    await store.set('live', 'kept'); // creates the tables
    // 2500 abandoned OAuth states and index members, long expired.
    await client.query(`INSERT INTO "${table}" (key, value, version, expires_at) SELECT 'state:' || i, '"s"', 'v', 1 FROM generate_series(1, 2500) i`);
    await client.query(`INSERT INTO "${table}_index" (key, member, expires_at) SELECT 'idx', 'm' || i, 1 FROM generate_series(1, 2500) i`);
    const expired = async (t: string): Promise<number> => Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM "${t}" WHERE expires_at <= 1000`)).rows[0]?.n);
    const batches: number[] = [];
    for (let i = 0; i < 12 && ((await expired(table)) > 0 || (await expired(`${table}_index`)) > 0); i++) {
      for (let w = 0; w < 256; w++) await store.set(`w:${w}`, w, 60_000);
      await sleep(30);
      batches.push(await expired(table));
    }
    expect(await expired(table)).toBe(0);
    expect(await expired(`${table}_index`)).toBe(0);
    expect(batches[0]).toBeGreaterThanOrEqual(2500 - 2 * 1000); // bounded: at most 1000 per run
    expect(await store.get('live')).toBe('kept');
    expect(await store.get('w:1')).toBe(1);
  });

  it('says CONFIG_INVALID when the pg package is missing', async () => {
    vi.resetModules();
    vi.doMock('pg', () => {
      throw new Error("Cannot find package 'pg'");
    });
    try {
      const mod = (await import('../../src/postgres/index.js')) as typeof import('../../src/postgres/index.js');
      const store = mod.postgresStore({ url: server.url });
      await expect(store.get('x')).rejects.toMatchObject({ code: 'CONFIG_INVALID', field: 'store', message: expect.stringContaining('npm install pg') });
      await expect(createKeyValueStore(store).get('x')).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    } finally {
      vi.doUnmock('pg');
      vi.resetModules();
    }
  });
});
