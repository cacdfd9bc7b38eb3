// The list index of createApprovals: creating an approval costs the same with 0 or 2,000 pending
// approvals, and creators sharing one store (two processes on one Redis) never lose an entry.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import Keyv from 'keyv';
import KeyvRedis from '@keyv/redis';
import { createApprovals, type ApprovalRequestInput } from '../../src/policy/approvals.js';
import type { KeyValueStore } from '../../src/stores/store.js';
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const req = (path: string): ApprovalRequestInput => ({
  agentId: 'support-agent',
  userId: 'alice',
  tool: 'stripe',
  method: 'POST',
  path,
  query: '',
  bodySha256: EMPTY_SHA,
});

/** A Map-backed store that records the size of every value written (honours TTLs on read). */
function recordingStore(): KeyValueStore & { writes: number[]; map: Map<string, { v: unknown; until: number }>; failSetWhen?: (key: string) => boolean } {
  const map = new Map<string, { v: unknown; until: number }>();
  const store = {
    writes: [] as number[],
    map,
    failSetWhen: undefined as ((key: string) => boolean) | undefined,
    async get<T>(key: string): Promise<T | undefined> {
      const e = map.get(key);
      if (e === undefined || e.until <= Date.now()) return undefined;
      return structuredClone(e.v) as T;
    },
    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      if (store.failSetWhen?.(key) === true) throw new Error('injected failure');
      store.writes.push(JSON.stringify(value).length);
      map.set(key, { v: structuredClone(value), until: ttlMs === undefined ? Infinity : Date.now() + ttlMs });
    },
    async delete(key: string): Promise<boolean> {
      return map.delete(key);
    },
  };
  return store;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

afterEach(() => {
  vi.useRealTimers();
});

describe('approvals list index: creation cost does not grow with the number of approvals', () => {
  it('creating 2,000 approvals: bytes written per creation are bounded and the last 200 cost < 3x the first 200', async () => {
    const store = recordingStore();
    const approvals = createApprovals({ store });
    // warm-up: JIT, and the writer's one-time registration in the shared registry
    for (let i = 0; i < 20; i++) await approvals.check(req(`/warm/${i}`));

    const times: number[] = [];
    const bytes: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const before = store.writes.length;
      const t = performance.now();
      const c = await approvals.check(req(`/p/${i}`));
      times.push(performance.now() - t);
      expect(c.status).toBe('pending');
      bytes.push(store.writes.slice(before).reduce((a, b) => a + b, 0));
    }
    // Deterministic: what a creation writes never depends on how many approvals exist.
    const maxFirst = Math.max(...bytes.slice(0, 200));
    const maxLast = Math.max(...bytes.slice(-200));
    expect(maxLast).toBeLessThanOrEqual(maxFirst * 1.2);
    expect(Math.max(...bytes)).toBeLessThan(8_000);
    // Timing, with a generous factor (medians, so a GC pause or a busy CPU does not decide it).
    const first = median(times.slice(0, 200));
    const last = median(times.slice(-200));
    expect(last).toBeLessThan(first * 3);

    const listed = await approvals.list();
    expect(listed).toHaveLength(2020);
    expect(listed.map((r) => r.summary.path).slice(-2)).toEqual(['/p/1998', '/p/1999']);
  });

  it('entries leave the list when their retention ends, across many chunks', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const approvals = createApprovals({ pendingTtlSeconds: 60 });
    for (let i = 0; i < 150; i++) await approvals.check(req(`/old/${i}`));
    vi.setSystemTime(Date.now() + 90_000); // old ones expired, still listed as expired
    for (let i = 0; i < 10; i++) await approvals.check(req(`/new/${i}`));
    expect((await approvals.list({ status: 'expired' })).length).toBe(150);
    expect((await approvals.list({ status: 'pending' })).length).toBe(10);
    vi.setSystemTime(Date.now() + 60_000); // old ones past their retention (2 x pendingTtl)
    const all = await approvals.list();
    expect(all.map((r) => r.summary.path)).toEqual(Array.from({ length: 10 }, (_, i) => `/new/${i}`));
  });

  it('instances sharing one store list each other’s approvals, also when created concurrently', async () => {
    const keyv = new Keyv();
    const a = createApprovals({ store: keyv });
    const b = createApprovals({ store: keyv });
    const created = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a : b).check(req(`/c/${i}`))),
    );
    const ids = new Set(created.map((c) => c.id));
    expect(ids.size).toBe(300);
    const reader = createApprovals({ store: keyv });
    for (const x of [a, b, reader]) {
      const listed = (await x.list()).map((r) => r.id);
      expect(new Set(listed)).toEqual(ids);
    }
  });

  it('a registry entry lost to a concurrent overwrite is repaired by the writer', async () => {
    const store = recordingStore();
    const a = createApprovals({ store });
    const reader = createApprovals({ store });
    await a.check(req('/r/0'));
    // what a racing writer with a stale read would do: write the registry without us
    await store.set('agent-iam:v1:approval-writers', [], 60_000);
    expect(await reader.list()).toEqual([]);
    for (let i = 1; i <= 64; i++) await a.check(req(`/r/${i}`)); // the next chunk rollover re-checks
    expect((await reader.list()).map((r) => r.summary.path)).toEqual(Array.from({ length: 65 }, (_, i) => `/r/${i}`));
  });

  it('an index write that fails makes check fail closed; the entry is written with the next one', async () => {
    const store = recordingStore();
    const approvals = createApprovals({ store });
    await approvals.check(req('/f/0'));
    store.failSetWhen = (key) => key.includes('approval-chunk');
    await expect(approvals.check(req('/f/1'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.failSetWhen = undefined;
    const again = await approvals.check(req('/f/1')); // the record and its binding were written
    expect(again.status).toBe('pending');
    await approvals.check(req('/f/2'));
    const other = createApprovals({ store });
    expect((await other.list()).map((r) => r.summary.path)).toEqual(['/f/0', '/f/1', '/f/2']);
  });

  it('approvals indexed by an earlier build (one shared index record) are still listed', async () => {
    const keyv = new Keyv();
    const old = await createApprovals({ store: keyv }).check(req('/legacy'));
    // as an earlier build leaves it: no writer registry, the single record names the approval
    await keyv.delete('agent-iam:v1:approval-writers');
    const b = createApprovals({ store: keyv });
    const fresh = await b.check(req('/fresh'));
    expect((await b.list()).map((r) => r.id)).toEqual([fresh.id]);
    await keyv.set('agent-iam:v1:approval-index', [[old.id, Date.now() + 60_000], ['apr_bogus', Date.now() + 60_000]]);
    expect((await b.list()).map((r) => r.id)).toEqual([old.id, fresh.id]);
  });

  it('a malformed index record is STORE_UNAVAILABLE, never trusted', async () => {
    const store = recordingStore();
    const approvals = createApprovals({ store });
    await approvals.check(req('/m/0'));
    const chunk = [...store.map.keys()].find((k) => k.includes('approval-chunk'))!;
    await store.set(chunk, { v: 1, e: [['../etc/passwd', 0]] });
    await expect(approvals.list()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await store.set('agent-iam:v1:approval-writers', 'nonsense');
    await expect(approvals.list()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});

describe.skipIf(!hasRedis)('approvals list index over a real Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = (await startRedis()) as RedisServer;
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('two createApprovals instances on one Redis creating concurrently: every approval shows up in list()', async () => {
    const k1 = new Keyv(new KeyvRedis(redis.url));
    const k2 = new Keyv(new KeyvRedis(redis.url));
    const k3 = new Keyv(new KeyvRedis(redis.url));
    try {
      const a1 = createApprovals({ store: k1 });
      const a2 = createApprovals({ store: k2 });
      // both start at the same moment (registering at once), then 20 in flight each
      const run = async (a: typeof a1, tag: string): Promise<string[]> => {
        const ids: string[] = [];
        for (let batch = 0; batch < 10; batch++) {
          const got = await Promise.all(Array.from({ length: 20 }, (_, i) => a.check(req(`/${tag}/${batch}/${i}`))));
          ids.push(...got.map((g) => g.id));
        }
        return ids;
      };
      const [ids1, ids2] = await Promise.all([run(a1, 'one'), run(a2, 'two')]);
      const all = new Set([...ids1, ...ids2]);
      expect(all.size).toBe(400);
      const a3 = createApprovals({ store: k3 });
      for (const a of [a1, a2, a3]) expect(new Set((await a.list()).map((r) => r.id))).toEqual(all);
      expect((await a3.list({ status: 'pending' })).length).toBe(400);
    } finally {
      await Promise.all([k1.disconnect(), k2.disconnect(), k3.disconnect()]);
    }
  });
});
