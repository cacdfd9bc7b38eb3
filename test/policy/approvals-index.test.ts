// The list index of createApprovals: creating an approval costs the same with 0 or 2,000 pending
// approvals, and creators sharing one store (two processes on one Redis) never lose an entry.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import Keyv from 'keyv';
import { redisStore } from '../../src/redis/index.js';
import { createApprovals, type ApprovalRequestInput } from '../../src/policy/approvals.js';
import { createKeyValueStore, type Store } from '../../src/stores/store.js';
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

/** The exact in-memory store, recording the size of every value it is given to write. */
function recordingStore(): Store & { writes: number[]; calls: number; failWhen?: (op: string, key: string) => boolean } {
  const inner = createKeyValueStore();
  const out = {
    writes: [] as number[],
    calls: 0,
    failWhen: undefined as ((op: string, key: string) => boolean) | undefined,
  } as Store & { writes: number[]; calls: number; failWhen?: (op: string, key: string) => boolean };
  const ops = ['get', 'set', 'delete', 'getVersioned', 'setIfAbsent', 'compareAndSet', 'deleteIfOwner', 'consume', 'indexAdd', 'indexMembers', 'indexRemove'] as const;
  for (const op of ops) {
    (out as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
      out.calls++;
      if (out.failWhen?.(op, String(args[0])) === true) throw new Error('injected failure');
      if (op === 'set' || op === 'setIfAbsent') out.writes.push(JSON.stringify(args[1]).length);
      if (op === 'compareAndSet') out.writes.push(JSON.stringify(args[2]).length);
      if (op === 'indexAdd') out.writes.push(String(args[1]).length);
      return (inner[op] as (...a: unknown[]) => Promise<unknown>)(...args);
    };
  }
  (out as { atomic: boolean }).atomic = true;
  return out;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('approvals list index: creation cost does not grow with the number of approvals', () => {
  it('creating 2,000 approvals: store calls and bytes written per creation do not grow with the number of approvals', async () => {
    // (How long each creation takes, first 200 against last 200, is measured in
    // test/reliability/approvals-index-cost.test.ts: the unit project has no timed assertions.)
    const store = recordingStore();
    const approvals = createApprovals({ store });
    for (let i = 0; i < 20; i++) await approvals.check(req(`/warm/${i}`));

    const calls: number[] = [];
    const bytes: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const before = store.writes.length;
      const callsBefore = store.calls;
      const c = await approvals.check(req(`/p/${i}`));
      calls.push(store.calls - callsBefore);
      expect(c.status).toBe('pending');
      bytes.push(store.writes.slice(before).reduce((a, b) => a + b, 0));
    }
    // Deterministic: what a creation writes never depends on how many approvals exist.
    const maxFirst = Math.max(...bytes.slice(0, 200));
    const maxLast = Math.max(...bytes.slice(-200));
    expect(maxLast).toBeLessThanOrEqual(maxFirst * 1.2);
    expect(Math.max(...bytes)).toBeLessThan(8_000);
    // The work of a creation, counted rather than timed (a timed assertion fails on a busy machine):
    // the same number of store calls for the 2,000th approval as for the first.
    expect(Math.max(...calls.slice(-200))).toBeLessThanOrEqual(Math.max(...calls.slice(0, 200)));

    const listed = await approvals.list();
    expect(listed).toHaveLength(2020);
    expect(listed.map((r) => r.summary.path).slice(-2)).toEqual(['/p/1998', '/p/1999']);
  });

  it('entries leave the list when their retention ends', async () => {
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

  it('an index write that fails makes check fail closed, and the retried request is listed', async () => {
    const store = recordingStore();
    const approvals = createApprovals({ store });
    await approvals.check(req('/f/0'));
    store.failWhen = (op) => op === 'indexAdd';
    await expect(approvals.check(req('/f/1'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.failWhen = undefined;
    const again = await approvals.check(req('/f/1')); // nothing was bound: a new approval, listed
    expect(again.status).toBe('pending');
    await approvals.check(req('/f/2'));
    const other = createApprovals({ store });
    expect((await other.list()).map((r) => r.summary.path)).toEqual(['/f/0', '/f/1', '/f/2']);
  });

  it('a malformed index record on a Keyv store is STORE_UNAVAILABLE, never trusted', async () => {
    const keyv = new Keyv();
    const approvals = createApprovals({ store: keyv });
    await approvals.check(req('/m/0'));
    await keyv.set('agent-iam:v1:approval-list', { agentIamIndex: 1, m: 'nonsense' });
    await expect(approvals.list()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await keyv.set('agent-iam:v1:approval-list', [['../etc/passwd', 0]]);
    await expect(approvals.list()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('ids in the index that are not approval ids are never read', async () => {
    const store = recordingStore();
    const approvals = createApprovals({ store });
    const one = await approvals.check(req('/i/0'));
    await store.indexAdd('agent-iam:v1:approval-list', '../../etc/passwd', 60_000);
    expect((await approvals.list()).map((r) => r.id)).toEqual([one.id]);
  });
});

describe.skipIf(!hasRedis)('approvals list index over a real Redis (agent-iam/redis)', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = (await startRedis()) as RedisServer;
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('two createApprovals instances on one Redis creating concurrently: every approval shows up in list()', async () => {
    const k1 = redisStore({ url: redis.url });
    const k2 = redisStore({ url: redis.url });
    const k3 = redisStore({ url: redis.url });
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
      await Promise.all([k1.close(), k2.close(), k3.close()]);
    }
  });
});
