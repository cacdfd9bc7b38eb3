// Options typos are refused (issue 14, item 6): createTokenManager, the stores, the test identity
// provider and createAgentIam name the unknown key instead of ignoring it.
import { describe, expect, it } from 'vitest';
import { createKeyValueStore, createTokenManager } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { postgresStore } from '../../src/postgres/index.js';
import { createTestIdentityProvider } from '../../src/testing/index.js';
import { expectCode } from './helpers.js';

describe('unknown option keys', () => {
  it('createTokenManager: refreshSkew (for refreshSkewSeconds) is CONFIG_INVALID naming it', async () => {
    const e = await expectCode(() => createTokenManager({ connections: [{ id: 'a', issuer: 'https://idp.example.com' }], refreshSkew: 10 } as never), 'CONFIG_INVALID');
    expect(e.field).toBe('refreshSkew');
  });

  it('the Redis, PostgreSQL and Keyv stores, and the test identity provider', async () => {
    expect((await expectCode(() => redisStore({ url: 'redis://127.0.0.1:1', prefx: 'x' } as never), 'CONFIG_INVALID')).field).toBe('prefx');
    expect((await expectCode(() => postgresStore({ url: 'postgres://127.0.0.1:1/x', tabel: 'x' } as never), 'CONFIG_INVALID')).field).toBe('tabel');
    expect((await expectCode(() => createKeyValueStore(new Map() as never, { timeout: 5 } as never), 'CONFIG_INVALID')).field).toBe('store.timeout');
    expect((await expectCode(createTestIdentityProvider({ accesTokenTtl: 5 } as never), 'CONFIG_INVALID')).field).toBe('accesTokenTtl');
  });
});
