/**
 * Regression: the test IdP's in-memory storage must not forget live entries. oidc-provider's default
 * adapter keeps 1,000 entries per provider; with ~7 entries per consent, refresh tokens of early
 * users vanished beyond ~150 users (bench/load-toolfetch found it at 1,000 users).
 */
import { describe, expect, it } from 'vitest';
import { createUnboundedMemoryAdapter } from '../../src/testing/memory-adapter.js';

interface Adapter {
  upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void>;
  find(id: string): Promise<Record<string, unknown> | undefined>;
  revokeByGrantId(grantId: string): Promise<void>;
  findByUid(uid: string): Promise<Record<string, unknown> | undefined>;
}

describe('test IdP storage', () => {
  it('keeps 20,000 live refresh tokens, drops expired ones, revokes by grant', async () => {
    const factory = createUnboundedMemoryAdapter();
    const rt = factory('RefreshToken') as Adapter;
    const session = factory('Session') as Adapter;
    for (let i = 0; i < 20_000; i++) await rt.upsert(`rt${i}`, { grantId: `g${i % 100}` }, 3600);
    await session.upsert('s1', { uid: 'u1' }, 3600);
    expect(await rt.find('rt0')).toEqual({ grantId: 'g0' });
    expect(await rt.find('rt19999')).toBeDefined();
    expect(await session.findByUid('u1')).toEqual({ uid: 'u1' });
    await rt.upsert('short', {}, -1);
    expect(await rt.find('short')).toBeUndefined();
    await rt.revokeByGrantId('g0');
    expect(await rt.find('rt0')).toBeUndefined();
    expect(await rt.find('rt100')).toBeUndefined();
    expect(await rt.find('rt1')).toBeDefined();
  });
});
