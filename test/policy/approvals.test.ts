import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import Keyv from 'keyv';
import KeyvRedis from '@keyv/redis';
import { createApprovals, type ApprovalRequestInput } from '../../src/policy/approvals.js';
import { memoryAudit } from '../../src/audit/json-lines.js';
import type { KeyValueStore } from '../../src/stores/store.js';
import { sha256Hex } from '../../src/lib/encoding.js';
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const req = (over: Partial<ApprovalRequestInput> = {}): ApprovalRequestInput => ({
  agentId: 'support-agent',
  userId: 'alice',
  tool: 'stripe',
  method: 'POST',
  path: '/v1/refunds',
  query: '?amount=100',
  bodySha256: EMPTY_SHA,
  ...over,
});

async function expectCode(p: Promise<unknown>, code: string): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    expect(e).toMatchObject({ code });
    return e as Record<string, unknown>;
  }
  throw new Error(`expected ${code}`);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('createApprovals: lifecycle', () => {
  it('pending → same id on repeat → approve → passes once → replay is a new pending approval', async () => {
    const audit = memoryAudit();
    const approvals = createApprovals({ audit });
    const first = await approvals.check(req());
    expect(first).toMatchObject({ status: 'pending', summary: { agentId: 'support-agent', userId: 'alice', tool: 'stripe', method: 'POST', path: '/v1/refunds' } });
    expect(first.id).toMatch(/^apr_[A-Za-z0-9_-]{22}$/);
    expect(JSON.stringify(first)).not.toContain('amount');
    const again = await approvals.check(req({ query: 'amount=100' })); // leading '?' does not matter
    expect(again).toEqual(first);

    const rec = await approvals.approve(first.id, { approver: 'boss@example.com' });
    expect(rec).toMatchObject({ id: first.id, status: 'approved', approver: 'boss@example.com' });
    expect(rec.decidedAt).toBeTypeOf('number');

    expect(await approvals.check(req())).toEqual({ status: 'approved', id: first.id });
    expect((await approvals.get(first.id))?.status).toBe('consumed');

    const replay = await approvals.check(req());
    expect(replay.status).toBe('pending');
    expect(replay.id).not.toBe(first.id);

    expect(audit.events.map((e) => [e.type, e.decision, e.approvalId])).toEqual([
      ['approval.request', 'approval', first.id],
      ['approval.approve', 'allow', first.id],
      ['approval.request', 'approval', replay.id],
    ]);
    expect(audit.events[1]).toMatchObject({ approver: 'boss@example.com', agentId: 'support-agent', userId: 'alice', tool: 'stripe', method: 'POST', path: '/v1/refunds' });
    expect(JSON.stringify(audit.events)).not.toContain('amount');
  });

  it('any other body, query, method, path, user, agent, tool or actor chain is a new approval', async () => {
    const approvals = createApprovals();
    const base = await approvals.check(req());
    await approvals.approve(base.id, { approver: 'boss', ttlSeconds: 60 });
    const others: Partial<ApprovalRequestInput>[] = [
      { bodySha256: await sha256Hex('{"amount":1000000}') },
      { query: '?amount=1000000' },
      { query: '' },
      { method: 'PUT' },
      { path: '/v1/refunds/x' },
      { userId: 'mallory' },
      { userId: undefined },
      { agentId: 'other-agent' },
      { tool: 'stripe2' },
      { actorChain: ['some-actor'] },
      { host: 'api.stripe.com' },
      { headers: { 'x-http-method-override': 'DELETE' } },
      { host: 'api.stripe.com', headers: { 'x-http-method-override': 'DELETE' } },
      { host: 'api.stripe.com', headers: { 'x-original-url': '/admin' } },
    ];
    const ids = new Set([base.id]);
    for (const o of others) {
      const c = await approvals.check(req(o));
      expect(c.status).toBe('pending');
      ids.add(c.id);
    }
    expect(ids.size).toBe(others.length + 1);
    // the approved one still passes, method case does not matter
    expect(await approvals.check(req({ method: 'post' }))).toEqual({ status: 'approved', id: base.id });
  });

  it('bound headers: each value is its own approval, names are case- and order-insensitive; requests without host or headers keep their binding', async () => {
    const keyv = new Keyv();
    const approvals = createApprovals({ store: keyv });
    const r = (headers?: Record<string, string>) => req({ host: 'api.example.com', method: 'GET', path: '/v2/items/7', query: '', ...(headers ? { headers } : {}) });
    const get = await approvals.check(r());
    await approvals.approve(get.id, { approver: 'boss', ttlSeconds: 60 });
    expect(await approvals.check(r())).toEqual({ status: 'approved', id: get.id });
    const del = await approvals.check(r({ 'x-http-method-override': 'DELETE' }));
    expect(del).toMatchObject({ status: 'pending', summary: { method: 'GET', host: 'api.example.com', headers: { 'x-http-method-override': 'DELETE' } } });
    expect(del.id).not.toBe(get.id);
    expect((await approvals.check(r({ 'x-http-method-override': 'PATCH' }))).id).not.toBe(del.id);
    const two = await approvals.check(r({ 'x-http-method-override': 'DELETE', 'x-original-url': '/a' }));
    expect((await approvals.check(r({ 'x-original-url': '/a', 'x-http-method-override': 'DELETE' }))).id).toBe(two.id);
    expect((await approvals.check(r({ 'x-original-url': '/b', 'x-http-method-override': 'DELETE' }))).id).not.toBe(two.id);
    // Earlier builds bound a request without host or headers to this key: pending and approved
    // approvals of those builds keep working.
    const old = await approvals.check(req());
    const oldBinding = await sha256Hex(JSON.stringify(['agent-iam:approval:v1', 'support-agent', 'alice', 'stripe', 'POST', '/v1/refunds', 'amount=100', EMPTY_SHA, []]));
    expect(await keyv.get(`agent-iam:v1:approval-binding:${oldBinding}`)).toBe(old.id);
  });

  it('self-approval: the requester, the agent and its actors cannot approve; allowSelfApproval relaxes only the requester', async () => {
    const audit = memoryAudit();
    const approvals = createApprovals({ audit });
    const p = await approvals.check(req({ actorChain: ['orchestrator'] }));
    for (const approver of ['alice', 'Alice', 'ＡＬＩＣＥ', 'support-agent', 'SUPPORT-AGENT', 'orchestrator']) {
      const e = await expectCode(approvals.approve(p.id, { approver }), 'POLICY_DENIED');
      expect(e, approver).toMatchObject({ status: 403, reason: 'self_approval' });
      expect(String(e.message)).not.toContain('amount');
    }
    expect((await approvals.get(p.id))?.status).toBe('pending');
    expect(audit.events.filter((e) => e.type === 'approval.approve')).toHaveLength(6);
    expect(audit.events.at(-1)).toMatchObject({ type: 'approval.approve', decision: 'deny', code: 'POLICY_DENIED', approver: 'orchestrator', approvalId: p.id, userId: 'alice' });
    // a request without a user: only the agent and its actors are parties
    const service = await approvals.check(req({ userId: undefined }));
    await expectCode(approvals.approve(service.id, { approver: 'support-agent' }), 'POLICY_DENIED');
    expect(await approvals.approve(service.id, { approver: 'alice' })).toMatchObject({ status: 'approved' });
    // someone else approves; the requester may always deny
    expect(await approvals.approve(p.id, { approver: 'boss' })).toMatchObject({ status: 'approved', approver: 'boss' });
    const q = await approvals.check(req({ path: '/v1/refunds/9' }));
    expect(await approvals.deny(q.id, { approver: 'alice' })).toMatchObject({ status: 'denied' });

    const solo = createApprovals({ allowSelfApproval: true });
    const s1 = await solo.check(req({ actorChain: ['orchestrator'] }));
    await expectCode(solo.approve(s1.id, { approver: 'support-agent' }), 'POLICY_DENIED');
    await expectCode(solo.approve(s1.id, { approver: 'orchestrator' }), 'POLICY_DENIED');
    expect(await solo.approve(s1.id, { approver: 'alice' })).toMatchObject({ status: 'approved', approver: 'alice' });
  });

  it('the record shows hashes of query and body and the author’s description, never the values; descriptions are bounded', async () => {
    const approvals = createApprovals();
    const body = await sha256Hex('{"amount":100,"card":"4242"}');
    const p = await approvals.check(req({ query: '?amount=100&token=QSECRET', bodySha256: body, host: 'API.Stripe.com', description: 'Refund 1 EUR to alice' }));
    expect(p).toMatchObject({
      status: 'pending',
      summary: { host: 'api.stripe.com', querySha256: await sha256Hex('amount=100&token=QSECRET'), bodySha256: body, description: 'Refund 1 EUR to alice' },
    });
    const listed = JSON.stringify(await approvals.list());
    expect(listed).not.toContain('QSECRET');
    expect(listed).toContain(body);
    // the description is not bound: the same request with another text is the same approval
    expect((await approvals.check(req({ query: '?amount=100&token=QSECRET', bodySha256: body, host: 'api.stripe.com', description: 'Something else' }))).id).toBe(p.id);
    expect((await approvals.get(p.id))?.summary.description).toBe('Refund 1 EUR to alice');
    // no query: the hash of the empty string
    expect((await approvals.check(req({ query: '', path: '/v1/x' })) as { summary: { querySha256?: string } }).summary.querySha256).toBe(EMPTY_SHA);
    await expectCode(approvals.check(req({ description: 'x'.repeat(501) })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ description: 'line\nbreak' })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ description: 5 as never })), 'REQUEST_INVALID');
  });

  it('ttlSeconds: passes repeatedly until the TTL ends, then needs a new approval', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const approvals = createApprovals();
    const p = await approvals.check(req());
    const rec = await approvals.approve(p.id, { approver: 'boss', ttlSeconds: 600 });
    expect(rec.expiresAt).toBe(Date.now() + 600_000);
    for (let i = 0; i < 3; i++) expect(await approvals.check(req())).toEqual({ status: 'approved', id: p.id });
    vi.setSystemTime(Date.now() + 599_000);
    expect((await approvals.check(req())).status).toBe('approved');
    vi.setSystemTime(Date.now() + 2_000);
    const next = await approvals.check(req());
    expect(next.status).toBe('pending');
    expect(next.id).not.toBe(p.id);
    expect((await approvals.get(p.id))?.status).toBe('expired');
  });

  it('pending approvals lapse after pendingTtlSeconds', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const approvals = createApprovals({ pendingTtlSeconds: 60 });
    const p = await approvals.check(req());
    vi.setSystemTime(Date.now() + 61_000);
    expect((await approvals.get(p.id))?.status).toBe('expired');
    await expectCode(approvals.approve(p.id, { approver: 'boss' }), 'REQUEST_INVALID');
    const n = await approvals.check(req());
    expect(n.status).toBe('pending');
    expect(n.id).not.toBe(p.id);
    // and records are gone from the store after the retention window
    vi.setSystemTime(Date.now() + 200_000);
    expect(await approvals.get(p.id)).toBeUndefined();
  });

  it('deny: the request fails (denied) until the record is dropped; denied cannot be approved', async () => {
    const audit = memoryAudit();
    const approvals = createApprovals({ audit });
    const p = await approvals.check(req());
    const rec = await approvals.deny(p.id, { approver: 'boss' });
    expect(rec).toMatchObject({ status: 'denied', approver: 'boss' });
    expect(await approvals.check(req())).toEqual({ status: 'denied', id: p.id });
    expect(await approvals.check(req())).toEqual({ status: 'denied', id: p.id });
    const err = await expectCode(approvals.approve(p.id, { approver: 'boss' }), 'REQUEST_INVALID');
    expect(err.status).toBe(400);
    await expectCode(approvals.deny(p.id, { approver: 'boss' }), 'REQUEST_INVALID');
    expect(audit.events.map((e) => e.type)).toEqual(['approval.request', 'approval.deny']);
    expect(audit.events[1]).toMatchObject({ decision: 'deny', approver: 'boss', approvalId: p.id });
  });

  it('an approved approval can be revoked by deny before it is used', async () => {
    const approvals = createApprovals();
    const p = await approvals.check(req());
    await approvals.approve(p.id, { approver: 'boss', ttlSeconds: 60 });
    await approvals.deny(p.id, { approver: 'boss' });
    expect(await approvals.check(req())).toEqual({ status: 'denied', id: p.id });
  });

  it('consumed or already approved approvals cannot be approved again; unknown ids are REQUEST_INVALID', async () => {
    const approvals = createApprovals();
    const p = await approvals.check(req());
    await approvals.approve(p.id, { approver: 'boss' });
    await expectCode(approvals.approve(p.id, { approver: 'boss' }), 'REQUEST_INVALID');
    await approvals.check(req()); // consumes
    await expectCode(approvals.approve(p.id, { approver: 'boss' }), 'REQUEST_INVALID');
    await expectCode(approvals.deny(p.id, { approver: 'boss' }), 'REQUEST_INVALID');
    await expectCode(approvals.approve('apr_AAAAAAAAAAAAAAAAAAAAAA', { approver: 'boss' }), 'REQUEST_INVALID');
    await expectCode(approvals.approve('../../etc', { approver: 'boss' }), 'REQUEST_INVALID');
    await expectCode(approvals.deny('nope', { approver: 'boss' }), 'REQUEST_INVALID');
    expect(await approvals.get('nope')).toBeUndefined();
  });

  it('bad arguments are REQUEST_INVALID', async () => {
    const approvals = createApprovals();
    const p = await approvals.check(req());
    await expectCode(approvals.approve(p.id, { approver: '' }), 'REQUEST_INVALID');
    await expectCode(approvals.approve(p.id, { approver: 'a\nb' }), 'REQUEST_INVALID');
    await expectCode(approvals.approve(p.id, { approver: 'a', ttlSeconds: -1 }), 'REQUEST_INVALID');
    await expectCode(approvals.approve(p.id, { approver: 'a', ttlSeconds: Number.NaN }), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ method: 'PO ST' })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ path: 'x' })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ agentId: '' })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ host: 'a.example/x' })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ headers: { 'X-HTTP-Method-Override': 'DELETE' } })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ headers: { 'x-original-url': '/a\n' } })), 'REQUEST_INVALID');
    await expectCode(approvals.check(req({ headers: ['x'] as never })), 'REQUEST_INVALID');
    expect((await approvals.get(p.id))?.status).toBe('pending');
  });

  it('concurrent checks of one request share one pending approval; one single-use approval passes once', async () => {
    const approvals = createApprovals();
    const results = await Promise.all(Array.from({ length: 20 }, () => approvals.check(req())));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    await approvals.approve(results[0]!.id, { approver: 'boss' });
    const after = await Promise.all(Array.from({ length: 20 }, () => approvals.check(req())));
    expect(after.filter((r) => r.status === 'approved')).toHaveLength(1);
    const pendingIds = new Set(after.filter((r) => r.status === 'pending').map((r) => r.id));
    expect(pendingIds.size).toBe(1);
  });

  it('list filters by status, oldest first', async () => {
    const approvals = createApprovals();
    const a = await approvals.check(req({ path: '/a' }));
    const b = await approvals.check(req({ path: '/b' }));
    const c = await approvals.check(req({ path: '/c' }));
    await approvals.approve(b.id, { approver: 'x' });
    await approvals.deny(c.id, { approver: 'x' });
    expect((await approvals.list()).map((r) => r.id)).toEqual([a.id, b.id, c.id]);
    expect((await approvals.list({ status: 'pending' })).map((r) => r.id)).toEqual([a.id]);
    expect((await approvals.list({ status: 'approved' })).map((r) => r.id)).toEqual([b.id]);
    expect((await approvals.list({ status: 'denied' })).map((r) => r.id)).toEqual([c.id]);
    const shown = JSON.stringify(await approvals.list());
    expect(shown).not.toContain('amount');
    expect(shown).not.toContain('binding');
  });

  it('options are validated at construction', () => {
    expect(() => createApprovals({ pendingTtlSeconds: 0 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'approvals.pendingTtlSeconds' }));
    expect(() => createApprovals({ store: 'redis://x' as never })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'approvals.store' }));
    expect(() => createApprovals({ audit: 42 as never })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => createApprovals({ allowSelfApproval: 'yes' as never })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'approvals.allowSelfApproval' }));
    expect(() => createApprovals({ allowSelfAproval: true } as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'approvals.allowSelfAproval' }));
  });
});

describe('createApprovals: fail closed on store failures', () => {
  const failing = (mode: 'throw' | 'hang', failOn: 'get' | 'set'): KeyValueStore => {
    const inner = new Map<string, unknown>();
    const fail = <T>(v: T): Promise<T> => (mode === 'throw' ? Promise.reject(new Error('ECONNRESET secret=hunter2')) : new Promise<T>(() => {}));
    return {
      get: async <T>(k: string) => (failOn === 'get' ? fail(undefined) : (inner.get(k) as T | undefined)),
      set: async (k: string, v: unknown) => {
        if (failOn === 'set') return fail(undefined);
        inner.set(k, v);
      },
      delete: async (k: string) => inner.delete(k),
    };
  };

  it.each([
    ['throw', 'get'],
    ['throw', 'set'],
    ['hang', 'get'],
    ['hang', 'set'],
  ] as const)('%s on %s → STORE_UNAVAILABLE, nothing secret in the error', async (mode, on) => {
    const approvals = createApprovals({ store: failing(mode, on), timeoutMs: 100 });
    const err = await expectCode(approvals.check(req()), 'STORE_UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(JSON.stringify(err)).not.toContain('hunter2');
    expect(String((err as unknown as Error).message)).not.toContain('hunter2');
    if (on === 'get') await expectCode(approvals.list(), 'STORE_UNAVAILABLE');
  });

  it('a Keyv whose adapter fails → STORE_UNAVAILABLE', async () => {
    const adapter = new Map<string, unknown>() as unknown as Record<string, unknown>;
    const keyv = new Keyv({
      store: {
        get: async () => {
          throw new Error('down');
        },
        set: async () => {
          throw new Error('down');
        },
        delete: async () => true,
        clear: async () => undefined,
        on: () => adapter,
      } as never,
    });
    const approvals = createApprovals({ store: keyv, timeoutMs: 200 });
    await expectCode(approvals.check(req()), 'STORE_UNAVAILABLE');
  });

  it('a tampered record is never trusted (STORE_UNAVAILABLE, never approved)', async () => {
    const keyv = new Keyv();
    const approvals = createApprovals({ store: keyv });
    const p = await approvals.check(req());
    const key = `agent-iam:v1:approval:${p.id}`;
    const stored = (await keyv.get(key)) as Record<string, unknown>;
    await keyv.set(key, { ...stored, status: 'approved', expiresAt: 'later' });
    await expectCode(approvals.check(req()), 'STORE_UNAVAILABLE');
    // a well-formed record under another binding does not approve this request
    const q = await approvals.check(req({ path: '/other' }));
    await approvals.approve(q.id, { approver: 'boss', ttlSeconds: 60 });
    const qStored = (await keyv.get(`agent-iam:v1:approval:${q.id}`)) as Record<string, unknown>;
    await keyv.set(key, { ...qStored, id: p.id });
    const c = await approvals.check(req());
    expect(c.status).toBe('pending');
    expect(c.id).not.toBe(p.id);
  });
});

describe.skipIf(!hasRedis)('createApprovals over a real Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = (await startRedis()) as RedisServer;
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('two instances on one store share approvals; single use holds across them', async () => {
    const k1 = new Keyv(new KeyvRedis(redis.url));
    const k2 = new Keyv(new KeyvRedis(redis.url));
    const a1 = createApprovals({ store: k1 });
    const a2 = createApprovals({ store: k2 });
    const p = await a1.check(req({ path: '/redis' }));
    expect(await a2.check(req({ path: '/redis' }))).toEqual(p);
    await a2.approve(p.id, { approver: 'boss' });
    expect(await a1.check(req({ path: '/redis' }))).toEqual({ status: 'approved', id: p.id });
    const again = await a2.check(req({ path: '/redis' }));
    expect(again.status).toBe('pending');
    expect((await a1.list()).map((r) => r.id)).toEqual([p.id, again.id]);
    await k1.disconnect();
    await k2.disconnect();
  });

  it('Redis down → STORE_UNAVAILABLE (fail closed)', async () => {
    const keyv = new Keyv(new KeyvRedis(redis.url));
    const approvals = createApprovals({ store: keyv, timeoutMs: 500 });
    const p = await approvals.check(req({ path: '/down' }));
    await approvals.approve(p.id, { approver: 'boss', ttlSeconds: 60 });
    await redis.kill();
    await expectCode(approvals.check(req({ path: '/down' })), 'STORE_UNAVAILABLE');
    await redis.restart();
    // a client that lost its server may never finish disconnecting: let it, without waiting for it
    void keyv.disconnect().catch(() => undefined);
  });
});
