// The secure store over a real PostgreSQL server (initdb'd by the test into a temp dir, on loopback).
import KeyvPostgres from '@keyv/postgres';
import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../../src/stores/store.js';
import { connectPg, ContainedPgClient, hasPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';

const SECRET = 'xoxb-PostgresSecretBotToken-1122334455';

const TABLE = 'agent_iam_store_test';

describe.skipIf(!hasPostgres)('secure store over PostgreSQL (@keyv/postgres)', () => {
  let server: PostgresServer;
  let adapter: KeyvPostgres;
  let store: KeyValueStore;

  beforeAll(async () => {
    server = (await startPostgres()) as PostgresServer;
    adapter = new KeyvPostgres({ uri: server.url, table: TABLE, connectionTimeoutMillis: 500, Client: ContainedPgClient });
    store = createSecureStore(createKeyValueStore(new Keyv(adapter), { timeoutMs: 1000 }), await createEncryptor(generateEncryptionKey()));
  });

  afterAll(async () => {
    await adapter?.disconnect().catch(() => {});
    await server?.stop();
  });

  async function rawRows(): Promise<Array<{ key: string; value: string }>> {
    const client = await connectPg(server.url);
    try {
      return (await client.query<{ key: string; value: string }>(`SELECT key, value FROM ${TABLE}`)).rows;
    } finally {
      await client.end();
    }
  }

  it('round-trips values and keeps no plaintext secret in the table', async () => {
    const key = storeKey('account', 'slack', 'org', 'T0123');
    await store.set(key, { accessToken: SECRET, kind: 'oauth2' });
    expect(await store.get(key)).toEqual({ accessToken: SECRET, kind: 'oauth2' });
    expect(await store.get(storeKey('account', 'slack', 'org', 'other'))).toBeUndefined();
    const rows = await rawRows();
    expect(rows.some((r) => r.key.includes('agent-iam:v1:account:slack:org:T0123'))).toBe(true);
    const text = JSON.stringify(rows);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('accessToken');
    expect(text).toContain('A256GCM');
  });

  it('fits long user ids into the 255-character key column', async () => {
    const key = storeKey('account', 'github', 'user', `${'long-user-id-'.repeat(40)}@example.com`);
    await store.set(key, { ok: true });
    expect(await store.get(key)).toEqual({ ok: true });
  });

  it('leaves one whole record when concurrent writers race on one key', async () => {
    const values = Array.from({ length: 30 }, (_, i) => ({ writer: i, blob: String(i % 10).repeat(10_000) }));
    await Promise.all(values.map((v) => store.set('race', v)));
    const got = await store.get<{ writer: number; blob: string }>('race');
    expect(got).toEqual(values[got?.writer ?? -1]);
    expect(await store.delete('race')).toBe(true);
    expect(await store.delete('race')).toBe(false);
  });

  it('turns a tampered row into a typed error', async () => {
    await store.set('tamper', { accessToken: SECRET });
    const client = await connectPg(server.url);
    try {
      // Edit the ciphertext inside the stored row, as someone with write access to the table could.
      const { rows } = await client.query<{ key: string; value: string }>(`SELECT key, value FROM ${TABLE} WHERE key LIKE '%tamper'`);
      expect(rows).toHaveLength(1);
      const row = rows[0] as { key: string; value: string };
      const stored = JSON.parse(row.value) as { value: { ct: string } };
      const ct = stored.value.ct;
      stored.value.ct = (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1);
      await client.query(`UPDATE ${TABLE} SET value = $1 WHERE key = $2`, [JSON.stringify(stored), row.key]);
    } finally {
      await client.end();
    }
    await expect(store.get('tamper')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'undecryptable' });
  });
});
