// Token manager over real stores: memory (encrypted), Redis (two managers = two processes sharing
// one store), PostgreSQL; raw dumps hold no token in plain text.
import KeyvRedis, { createClient } from '@keyv/redis';
import KeyvPostgres from '@keyv/postgres';
import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEncryptionKey } from '../../src/stores/encryption.js';
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js';
import { ContainedPgClient, hasPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { testClock } from '../helpers/clock.js';
import { connect, expectCode, manager, startIdp, type Setup } from './helpers.js';
import type { TokenManager } from '../../src/index.js';

let s: Setup;
beforeAll(async () => {
  s = await startIdp();
});
afterAll(async () => {
  await s?.idp.close();
});

interface PgModule {
  Client: new (o: { connectionString: string }) => { connect(): Promise<void>; query(sql: string): Promise<{ rows: unknown[] }>; end(): Promise<void> };
}

const API_KEY = 'kaggle_ApiKey_0123456789abcdef';

/** Connect alice by OAuth and give bob an API key; returns the plaintext secrets we know of. */
async function populate(tokens: TokenManager): Promise<string[]> {
  await connect(tokens, s.idp, 'alice');
  await tokens.setApiKey({ connection: 'corp', userId: 'bob', key: API_KEY });
  await tokens.startAuthorization({ connection: 'corp', userId: 'carol' }); // a pending state (PKCE verifier)
  const t = await tokens.getAccessToken({ connection: 'corp', userId: 'alice' });
  expect((await tokens.getAccessToken({ connection: 'corp', userId: 'bob' })).accessToken).toBe(API_KEY);
  return [t.accessToken, API_KEY, s.clientSecret];
}

function assertAllEncrypted(values: string[], secrets: string[]): void {
  expect(values.length).toBeGreaterThanOrEqual(5); // 2 accounts, 2 index records, 1 state
  const text = values.join('\n');
  for (const secret of secrets) expect(text).not.toContain(secret);
  for (const field of ['refreshToken', 'accessToken', 'verifier', 'alice']) expect(text).not.toContain(field);
  // Index records hold connection ids only (plaintext by design, so the store can add to them atomically).
  for (const v of values) if (!v.includes('agentIamIndex')) expect(v).toContain('A256GCM');
}

describe('memory store with encryption', () => {
  it('holds no token, key or verifier in plain text; another key cannot read it (typed error)', async () => {
    const map = new Map<string, unknown>();
    const store = new Keyv({ store: map });
    const tokens = manager(s, { store, encryptionKey: generateEncryptionKey() });
    const secrets = await populate(tokens);
    assertAllEncrypted([...map.values()].map((v) => (typeof v === 'string' ? v : JSON.stringify(v))), secrets);
    const other = manager(s, { store, encryptionKey: generateEncryptionKey() });
    const e = await expectCode(other.getAccessToken({ connection: 'corp', userId: 'alice' }), 'STORE_UNAVAILABLE');
    for (const secret of secrets) expect(JSON.stringify(e) + String(e)).not.toContain(secret);
    // the key rotated in (new key first, old key second) still reads old records
    const oldKey = generateEncryptionKey();
    const a = manager(s, { store: new Keyv({ store: map }), encryptionKey: oldKey });
    await a.setApiKey({ connection: 'corp', userId: 'dora', key: API_KEY });
    const rotated = manager(s, { store: new Keyv({ store: map }), encryptionKey: [generateEncryptionKey(), oldKey] });
    expect((await rotated.getAccessToken({ connection: 'corp', userId: 'dora' })).accessToken).toBe(API_KEY);
  });

  it('setApiKey, listAccounts and revoke', async () => {
    const events: Array<{ type: string; decision: string }> = [];
    const tokens = manager(s, { encryptionKey: generateEncryptionKey(), audit: (e) => void events.push(e) });
    await connect(tokens, s.idp, 'erin');
    await tokens.setApiKey({ connection: 'corp', orgId: 'acme', key: API_KEY });
    const list = await tokens.listAccounts({ userId: 'erin', orgId: 'acme' });
    expect(list.map((a) => [a.kind, a.userId ?? a.orgId])).toEqual([['oauth2', 'erin'], ['apiKey', 'acme']]);
    expect(JSON.stringify(list)).not.toContain(API_KEY);
    const before = s.idp.stats.token.refresh_token ?? 0;
    const revoked = await tokens.revoke({ connection: 'corp', userId: 'erin' });
    expect(revoked?.status).toBe('revoked');
    expect(events.find((e) => e.type === 'token.revoke')?.decision).toBe('allow');
    const err = await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'erin' }), 'CONSENT_REQUIRED');
    expect(err.authorizationUrl).toBeTruthy();
    expect(s.idp.stats.token.refresh_token ?? 0).toBe(before);
  });

  it('revocation reaches the server: the revoked refresh token no longer works there', async () => {
    const store = new Keyv();
    const tokens = manager(s, { store, refreshSkewSeconds: 3600, cacheSize: 0 });
    await connect(tokens, s.idp, 'fay');
    // Keep a copy of the record (as an attacker with an old backup would) and restore it after revoking.
    const key = [...(store.opts.store as Map<string, unknown>).keys()].find((k) => k.includes(':account:'));
    const backup = (store.opts.store as Map<string, unknown>).get(key as string);
    await tokens.revoke({ connection: 'corp', userId: 'fay' });
    (store.opts.store as Map<string, unknown>).set(key as string, backup);
    await expectCode(tokens.getAccessToken({ connection: 'corp', userId: 'fay' }), 'CONSENT_REQUIRED');
  });
});

describe.skipIf(!hasRedis)('Redis store (two token managers = two processes)', () => {
  let redis: RedisServer;
  const adapters: KeyvRedis<unknown>[] = [];
  beforeAll(async () => {
    redis = (await startRedis()) as RedisServer;
  });
  afterAll(async () => {
    for (const a of adapters) await a.disconnect().catch(() => {});
    await redis?.stop();
  });
  const keyv = (): Keyv => {
    const a = new KeyvRedis(redis.url);
    adapters.push(a);
    return new Keyv(a);
  };

  it('refresh concurrently on one account without losing it; raw dump holds no token', async () => {
    const key = generateEncryptionKey();
    const a = manager(s, { store: keyv(), encryptionKey: key, refreshSkewSeconds: 3600, cacheSize: 0 });
    const b = manager(s, { store: keyv(), encryptionKey: key, refreshSkewSeconds: 3600, cacheSize: 0 });
    await connect(a, s.idp, 'alice');
    s.idp.resetStats();
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all([
        ...Array.from({ length: 25 }, () => a.getAccessToken({ connection: 'corp', userId: 'alice' })),
        ...Array.from({ length: 25 }, () => b.getAccessToken({ connection: 'corp', userId: 'alice' })),
      ]);
      expect(results.every((r) => r.accessToken.length > 0)).toBe(true);
    }
    // rotation on every use: a lost rotated refresh token would have turned the account into needs_consent.
    expect((await b.getAccount({ connection: 'corp', userId: 'alice' }))?.status).toBe('active');
    // skew > lifetime: every round each manager must refresh, one after the other (store lock)
    expect(s.idp.stats.token.refresh_token).toBeLessThanOrEqual(6);
    const last = await a.getAccessToken({ connection: 'corp', userId: 'alice' });
    const secrets = [last.accessToken, s.clientSecret];
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const values: string[] = [];
      for (const k of await client.keys('*agent-iam*')) {
        const v = await client.get(k);
        if (v !== null && !k.includes(':lease:') && !k.includes(':account-index:')) values.push(v);
      }
      const text = values.join('\n');
      for (const secret of secrets) expect(text).not.toContain(secret);
      expect(text).not.toContain('refreshToken');
      for (const v of values) expect(v).toContain('A256GCM');
    } finally {
      await client.close();
    }
  });

  it('two managers on one expiring account: exactly one refresh at the server, both get the new token', async () => {
    const short = await startIdp({ accessTokenTtl: 2 });
    try {
      const key = generateEncryptionKey();
      const a = manager(short, { store: keyv(), encryptionKey: key, refreshSkewSeconds: 1 });
      const b = manager(short, { store: keyv(), encryptionKey: key, refreshSkewSeconds: 1 });
      const clock = testClock(); // the managers' clock; the IdP and Redis keep real time
      await connect(a, short.idp, 'bob');
      clock.advance(1100); // now inside the skew
      short.idp.resetStats();
      const results = await Promise.all([
        ...Array.from({ length: 100 }, () => a.getAccessToken({ connection: 'corp', userId: 'bob' })),
        ...Array.from({ length: 100 }, () => b.getAccessToken({ connection: 'corp', userId: 'bob' })),
      ]);
      expect(short.idp.stats.token.refresh_token).toBe(1);
      expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    } finally {
      await short.idp.close();
    }
  });
});

describe.skipIf(!hasPostgres)('PostgreSQL store', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = (await startPostgres()) as PostgresServer;
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('stores accounts encrypted; the raw table holds no token in plain text', async () => {
    // ContainedPgClient: @keyv/postgres's pool has no 'error' listener; stopping the server must not crash the run.
    const adapter = new KeyvPostgres({ uri: server.url, Client: ContainedPgClient } as ConstructorParameters<typeof KeyvPostgres>[0]);
    const tokens = manager(s, { store: new Keyv({ store: adapter }), encryptionKey: generateEncryptionKey() });
    try {
      const secrets = await populate(tokens);
      // pg (a dependency of @keyv/postgres) is imported by a computed name so its typings are not needed.
      const pgName = 'pg';
      const pg = ((await import(pgName)) as { default: PgModule }).default;
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        const rows = (await client.query('SELECT key, value FROM keyv')).rows as Array<{ key: string; value: string }>;
        assertAllEncrypted(rows.map((r) => String(r.value)), secrets);
      } finally {
        await client.end();
      }
    } finally {
      await adapter.disconnect().catch(() => {});
    }
  });
});
