/**
 * Approver rules (issue 15, item 1): who may decide an approval. Holders of a scope or group, named
 * users, the requester only when the rule opts in; never the agent or its actors, never a token
 * without an end user (client credentials) or a delegated token (`act`), never the same person twice
 * for a rule needing two approvers. Checked on every decision: the service, the JSON routes, toolFetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovalRoutes } from '../../src/http/approval-routes.js';
import type { AgentContext } from '../../src/context.js';
import { createVerifier, type Verifier } from '../../src/inbound/verifier.js';
import { createToolFetch } from '../../src/outbound/index.js';
import { createApprovals, type ApprovalRequestInput } from '../../src/policy/approvals.js';
import { approverFromContext, isClientToken } from '../../src/policy/approvers.js';
import { createTokenManager } from '../../src/tokens/token-manager.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { startUpstream, type Upstream } from '../outbound/upstream.js';
import { userContext } from '../outbound/helpers.js';

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const AUD = 'https://agent.example.com';
const req = (over: Partial<ApprovalRequestInput> = {}): ApprovalRequestInput => ({
  agentId: 'support-agent', userId: 'alice', tool: 'stripe', method: 'POST', path: '/v1/refunds', query: '', bodySha256: EMPTY_SHA, ...over,
});

async function refusal(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('expected a refusal');
}

let idp: TestIdentityProvider;
let verifier: Verifier;
beforeAll(async () => {
  idp = await createTestIdentityProvider({ resources: { [AUD]: { scopes: ['approvals:admin', 'read'] } } });
  verifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [AUD] }] });
});
afterAll(async () => {
  await idp?.close();
});

/** A context verified from a real token of the test identity provider. */
async function signedIn(userId: string, o: { scopes?: string[]; groups?: string[]; claims?: Record<string, unknown>; act?: Record<string, unknown> } = {}): Promise<AgentContext> {
  const claims = { ...(o.groups !== undefined ? { groups: o.groups } : {}), ...(o.claims ?? {}) };
  const token = await idp.tokenFor({ userId, audience: AUD, scopes: o.scopes ?? [], claims, ...(o.act !== undefined ? { act: o.act } : {}) });
  return verifier.verify({ headers: { authorization: `Bearer ${token}` } });
}

describe('approver rules in the approvals service', () => {
  it('scopes, groups and users qualify; anyone else is refused (not_an_approver) and the approval stays pending', async () => {
    const approvals = createApprovals();
    const rule = { approvedBy: { scopes: ['approvals:admin'], groups: ['finance'], users: ['carol@example.com'] } };
    const outsider = approverFromContext(await signedIn('dave', { scopes: ['read'], groups: ['eng'] }));
    for (const approver of [outsider, 'dave', { userId: 'dave', groups: ['finance-team'] }]) {
      const p = await approvals.check(req({ rule, path: `/v1/refunds/${Math.random()}` }));
      const e = await refusal(approvals.approve(p.id, { approver }));
      expect(e).toMatchObject({ code: 'POLICY_DENIED', status: 403, reason: 'not_an_approver' });
      expect(await approvals.mayDecide(p.id, approver)).toBe(false);
      expect((await approvals.get(p.id))?.status).toBe('pending');
      // not an approver: may not deny either
      expect(await refusal(approvals.deny(p.id, { approver }))).toMatchObject({ code: 'POLICY_DENIED', reason: 'not_an_approver' });
    }
    const byScope = approverFromContext(await signedIn('erin', { scopes: ['approvals:admin'] }));
    const byGroup = approverFromContext(await signedIn('frank', { groups: ['finance'] }));
    for (const approver of [byScope, byGroup, 'carol@example.com', 'CAROL@example.com']) {
      const p = await approvals.check(req({ rule, path: `/v1/refunds/${Math.random()}` }));
      expect(await approvals.mayDecide(p.id, approver)).toBe(true);
      expect(await approvals.approve(p.id, { approver })).toMatchObject({ status: 'approved', approvedBy: rule.approvedBy });
    }
    // a plain string names a user, never scopes or groups: it cannot pass a scope or group rule
    const p = await approvals.check(req({ rule: { approvedBy: { scopes: ['approvals:admin'] } } }));
    expect(await refusal(approvals.approve(p.id, { approver: 'erin' }))).toMatchObject({ reason: 'not_an_approver' });
  });

  it('the requester approves only when the rule opts in (requester: true); the agent and its actors never', async () => {
    const approvals = createApprovals({ allowSelfApproval: true }); // the service-wide switch does not override a rule
    const strict = await approvals.check(req({ rule: { approvedBy: { groups: ['finance'] } } }));
    const alice = approverFromContext(await signedIn('alice', { groups: ['finance'] }));
    expect(await refusal(approvals.approve(strict.id, { approver: alice }))).toMatchObject({ code: 'POLICY_DENIED', reason: 'self_approval' });
    // the requester may always withdraw their request
    expect(await approvals.deny(strict.id, { approver: alice, reason: 'changed my mind' })).toMatchObject({ status: 'denied', reason: 'changed my mind' });

    const self = await approvals.check(req({ rule: { approvedBy: { requester: true } }, actorChain: ['orchestrator'] }));
    for (const approver of ['support-agent', 'orchestrator', { userId: 'SUPPORT-AGENT', groups: ['finance'] }, 'bob']) {
      const e = await refusal(approvals.approve(self.id, { approver }));
      expect(e.code).toBe('POLICY_DENIED');
    }
    expect(await approvals.approve(self.id, { approver: approverFromContext(await signedIn('alice')) })).toMatchObject({ status: 'approved', approver: 'alice' });
  });

  it('never a token without an end user (client credentials) or a delegated token (act), whatever scopes it holds', async () => {
    const approvals = createApprovals();
    const rule = { approvedBy: { scopes: ['approvals:admin'] } };
    // a real client-credentials token from the identity provider: sub is the client id
    const client = await idp.registerClient({ grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'client_secret_basic' });
    const tokens = createTokenManager({ connections: [{ id: 'idp', issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string }] });
    const cc = await tokens.clientCredentials({ connection: 'idp', scopes: ['approvals:admin'], resource: AUD });
    const service = await verifier.verify({ headers: { authorization: `Bearer ${cc.accessToken}` } });
    expect(service.scopes).toContain('approvals:admin');
    expect(isClientToken(service.claims)).toBe(true);
    const delegated = await signedIn('erin', { scopes: ['approvals:admin'], act: { sub: 'some-agent' } });
    const looksLikeApp = [
      { claims: { gty: 'client-credentials' } },
      { claims: { idtyp: 'app' } },
      { claims: { preferred_username: 'service-account-bot' } },
    ];
    const contexts = [service, delegated, ...(await Promise.all(looksLikeApp.map((o) => signedIn('svc', { scopes: ['approvals:admin'], ...o }))))];
    for (const ctx of contexts) {
      const approver = approverFromContext(ctx);
      expect(approver.kind).not.toBe('user');
      const p = await approvals.check(req({ rule }));
      expect(await refusal(approvals.approve(p.id, { approver }))).toMatchObject({ code: 'POLICY_DENIED', reason: 'approver_not_a_user' });
      expect(await refusal(approvals.deny(p.id, { approver }))).toMatchObject({ code: 'POLICY_DENIED', reason: 'approver_not_a_user' });
      expect(await approvals.mayDecide(p.id, approver)).toBe(false);
    }
    // an approver object that says what it is is believed only in the stricter direction
    const p = await approvals.check(req({ rule }));
    expect(await refusal(approvals.approve(p.id, { approver: { userId: 'erin', scopes: ['approvals:admin'], kind: 'client' } }))).toMatchObject({ reason: 'approver_not_a_user' });
  });

  it('approvers: 2 needs two distinct people (not the same one twice, in any spelling); the stricter TTL holds', async () => {
    const approvals = createApprovals();
    const rule = { approvedBy: { groups: ['finance'] }, approvers: 2 };
    const p = await approvals.check(req({ rule }));
    const erin = { userId: 'erin', groups: ['finance'] };
    const first = await approvals.approve(p.id, { approver: erin, ttlSeconds: 600 });
    expect(first).toMatchObject({ status: 'pending', approversRequired: 2, approvals: [{ approver: 'erin' }] });
    expect(await approvals.check(req({ rule }))).toMatchObject({ status: 'pending', id: p.id });
    for (const again of [erin, { userId: 'ERIN', groups: ['finance'] }, { userId: 'ｅｒｉｎ', groups: ['finance'] }]) {
      expect(await refusal(approvals.approve(p.id, { approver: again }))).toMatchObject({ code: 'POLICY_DENIED', reason: 'same_approver' });
    }
    const done = await approvals.approve(p.id, { approver: { userId: 'frank', groups: ['finance'] }, ttlSeconds: 60 });
    expect(done).toMatchObject({ status: 'approved', approver: 'frank', approvals: [{ approver: 'erin' }, { approver: 'frank' }] });
    expect(done.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000); // the shorter of 600 s and 60 s
    expect(await approvals.check(req({ rule }))).toEqual({ status: 'approved', id: p.id });
    expect(await approvals.check(req({ rule }))).toEqual({ status: 'approved', id: p.id }); // TTL: reusable

    // one approver asking for single use makes it single use
    const q = await approvals.check(req({ rule, path: '/v1/refunds/2' }));
    await approvals.approve(q.id, { approver: erin, ttlSeconds: 600 });
    await approvals.approve(q.id, { approver: { userId: 'frank', groups: ['finance'] } });
    expect(await approvals.check(req({ rule, path: '/v1/refunds/2' }))).toEqual({ status: 'approved', id: q.id });
    expect((await approvals.check(req({ rule, path: '/v1/refunds/2' }))).status).toBe('pending');
  });

  it('the rule is part of the binding: the same request under another rule is another approval', async () => {
    const approvals = createApprovals();
    const a = await approvals.check(req({ rule: { approvedBy: { groups: ['finance'] } } }));
    const b = await approvals.check(req({ rule: { approvedBy: { groups: ['finance'] }, approvers: 2 } }));
    const c = await approvals.check(req());
    const d = await approvals.check(req({ rule: { approvedBy: { groups: ['finance'] }, approvers: 1 } }));
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);
    expect(d.id).toBe(a.id); // approvers: 1 is the default
  });
});

describe('approver rules from policies, through toolFetch and the JSON routes', () => {
  let up: Upstream;
  beforeAll(async () => {
    up = await startUpstream();
  });
  afterAll(() => up?.close());

  it('the approval carries the rule of the policy that asked for it; only its approvers see or decide it in the routes', async () => {
    const approvals = createApprovals();
    const toolFetch = createToolFetch({
      agent: { id: 'refund-agent' },
      tools: [{ name: 'payments', baseUrl: up.origin, auth: { type: 'none' } }],
      policies: [
        { agent: 'refund-agent', tool: 'payments' },
        { agent: 'refund-agent', tool: 'payments', effect: 'approval', capabilities: [{ method: 'POST', path: '/v1/refunds' }], approvedBy: { groups: ['finance'] }, approvers: 2 },
      ],
      approvals,
    });
    const e = await refusal(toolFetch(`${up.origin}/v1/refunds`, { method: 'POST', body: '{}', context: userContext('alice') }));
    expect(e.code).toBe('APPROVAL_REQUIRED');
    const id = e.approvalId as string;
    expect(await approvals.get(id)).toMatchObject({ approvedBy: { groups: ['finance'] }, approversRequired: 2 });

    for (const adminScope of ['approvals:admin', undefined]) {
      const routes = createApprovalRoutes(approvals, adminScope === undefined ? {} : { adminScope });
      const call = async (ctx: AgentContext, method: string, path: string, body?: unknown) =>
        (await routes.handle({ method, path, query: new URLSearchParams(), context: ctx, readBody: async () => body })) as { status: number; body: Record<string, unknown> };
      // an admin outside finance: the approval is not listed, and its id answers 404
      const admin = await signedIn('dave', { scopes: ['approvals:admin'], groups: ['eng'] });
      expect(((await call(admin, 'GET', '/approvals')).body.approvals as Array<{ id: string }>).map((a) => a.id)).not.toContain(id);
      expect((await call(admin, 'GET', `/approvals/${id}`)).status).toBe(404);
      expect((await call(admin, 'POST', `/approvals/${id}/approve`, {})).status).toBe(404);
      expect((await call(admin, 'POST', `/approvals/${id}/deny`, {})).status).toBe(404);
      expect((await approvals.get(id))?.status).toBe('pending');
      // a finance member sees it (with the admin scope where the routes ask for it)
      const erin = await signedIn('erin', { scopes: adminScope === undefined ? [] : [adminScope], groups: ['finance'] });
      expect(((await call(erin, 'GET', '/approvals')).body.approvals as Array<{ id: string }>).map((a) => a.id)).toContain(id);
      expect((await call(erin, 'GET', `/approvals/${id}`)).status).toBe(200);
    }
    const routes = createApprovalRoutes(approvals, { adminScope: 'approvals:admin' });
    const call = async (ctx: AgentContext, path: string, body?: unknown) =>
      (await routes.handle({ method: 'POST', path, query: new URLSearchParams(), context: ctx, readBody: async () => body })) as { status: number; body: Record<string, unknown> };
    const erin = await signedIn('erin', { scopes: ['approvals:admin'], groups: ['finance'] });
    expect((await call(erin, `/approvals/${id}/approve`, {})).status).toBe(200);
    const twice = await call(erin, `/approvals/${id}/approve`, {});
    expect(twice).toMatchObject({ status: 403, body: { error: 'POLICY_DENIED' } });
    // a delegated token of a finance member with the admin scope is refused
    const agentOfFrank = await signedIn('frank', { scopes: ['approvals:admin'], groups: ['finance'], act: { sub: 'helper-agent' } });
    expect((await call(agentOfFrank, `/approvals/${id}/approve`, {})).status).toBe(404);
    const frank = await signedIn('frank', { scopes: ['approvals:admin'], groups: ['finance'] });
    expect(await call(frank, `/approvals/${id}/approve`, { ttlSeconds: 60 })).toMatchObject({ status: 200, body: { approval: { status: 'approved' } } });
    const res = await toolFetch(`${up.origin}/v1/refunds`, { method: 'POST', body: '{}', context: userContext('alice') });
    expect(res.status).toBe(200);
  });

  it('without an admin scope, the routes serve no approval whose rule names no approvers', async () => {
    const approvals = createApprovals();
    const p = await approvals.check(req());
    const routes = createApprovalRoutes(approvals, {});
    const boss = await signedIn('boss', { scopes: ['approvals:admin'] });
    const r = await routes.handle({ method: 'POST', path: `/approvals/${p.id}/approve`, query: new URLSearchParams(), context: boss, readBody: async () => ({}) });
    expect(r?.status).toBe(404);
    expect((await approvals.get(p.id))?.status).toBe('pending');
  });

  it('approvedBy and approvers belong to approval rules only, and are checked at construction', () => {
    const make = (rule: Record<string, unknown>) => () =>
      createToolFetch({ agent: { id: 'a' }, tools: [{ name: 't', baseUrl: up.origin, auth: { type: 'none' } }], policies: [{ agent: 'a', tool: 't', ...rule }], approvals: createApprovals() });
    expect(make({ approvedBy: { groups: ['x'] } })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'policies.0.approvedBy' }));
    expect(make({ effect: 'deny', approvers: 2 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'policies.0.approvers' }));
    expect(make({ effect: 'approval', approvers: 11 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(make({ effect: 'approval', approvedBy: {} })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(make({ effect: 'approval', approvedBy: { groups: [] } })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(make({ effect: 'approval', approvedBy: { requester: true }, approvers: 2 })).not.toThrow();
  });
});
