/**
 * The toolFetch preflight (what the framework adapters ask before a tool runs): the same decisions
 * as a call, up to the approval, without sending and without spending a single-use approval; and
 * the pieces the adapters read: a denied approval's id and reason, a consent error's connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToolFetch } from '../../src/outbound/tool-fetch.js';
import { preflightOf } from '../../src/outbound/preflight.js';
import { createApprovals } from '../../src/policy/approvals.js';
import { memoryAudit } from '../../src/audit/json-lines.js';
import { AgentIamError } from '../../src/errors.js';
import type { TokenSource } from '../../src/tokens/types.js';
import { startUpstream, type Upstream } from './upstream.js';
import { userContext } from './helpers.js';

let api: Upstream;
beforeAll(async () => {
  api = await startUpstream();
});
afterAll(() => api.close());

function setup() {
  const audit = memoryAudit();
  const approvals = createApprovals({ audit });
  const toolFetch = createToolFetch({
    agent: { id: 'agent' },
    tools: [{ name: 'pay', baseUrl: api.origin, auth: { type: 'apiKey', key: 'k-secret-1' }, capabilities: [{ method: 'GET', path: '/charges' }, { method: 'POST', path: '/refunds' }] }],
    policies: [
      { agent: 'agent', tool: 'pay' },
      { agent: 'agent', tool: 'pay', effect: 'approval', capabilities: [{ method: 'POST', path: '/refunds' }] },
    ],
    approvals,
    audit,
  });
  const preflight = preflightOf(toolFetch);
  if (preflight === undefined) throw new Error('no preflight');
  return { audit, approvals, toolFetch, preflight };
}

const context = userContext('alice');
const refund = { method: 'POST', body: '{"charge":"ch_1"}', context } as const;

describe('toolFetch preflight', () => {
  it('says what an allowed call would send, sends nothing and audits nothing', async () => {
    const { preflight, audit } = setup();
    api.clear();
    expect(await preflight(`${api.origin}/charges?limit=1`, { context })).toEqual({ tool: 'pay', method: 'GET', url: `${api.origin}/charges?limit=1` });
    expect(api.received).toHaveLength(0);
    expect(audit.events).toHaveLength(0);
  });

  it('throws the refusal a call would throw, audited as a preflight', async () => {
    const { preflight, audit } = setup();
    await expect(preflight(`${api.origin}/charges`, { method: 'DELETE', context })).rejects.toMatchObject({ code: 'CAPABILITY_DENIED' });
    await expect(preflight('http://127.0.0.1:1/x', { context })).rejects.toMatchObject({ code: 'TOOL_NOT_REGISTERED' });
    expect(audit.events.map((e) => [e.type, e.code, e.reason])).toEqual([
      ['tool.request', 'CAPABILITY_DENIED', 'preflight'],
      ['tool.request', 'TOOL_NOT_REGISTERED', 'preflight'],
    ]);
  });

  it('creates the pending approval, and once approved reports it without spending it: the call then passes once', async () => {
    const { preflight, approvals, toolFetch } = setup();
    api.clear();
    const pending = await preflight(`${api.origin}/refunds`, refund).catch((e: unknown) => e as AgentIamError);
    expect(pending).toMatchObject({ code: 'APPROVAL_REQUIRED', approval: { tool: 'pay', method: 'POST', path: '/refunds', userId: 'alice' } });
    const id = (pending as AgentIamError).approvalId as string;
    await approvals.approve(id, { approver: 'lead' });
    // asked again (a framework re-validating after the approval): approved, still usable
    expect(await preflight(`${api.origin}/refunds`, refund)).toMatchObject({ approvalId: id, method: 'POST' });
    expect(await preflight(`${api.origin}/refunds`, refund)).toMatchObject({ approvalId: id });
    expect((await approvals.get(id))?.status).toBe('approved');
    // the real call spends it; the next identical call needs a new approval
    expect((await toolFetch(`${api.origin}/refunds`, refund)).status).toBe(200);
    expect((await approvals.get(id))?.status).toBe('consumed');
    await expect(toolFetch(`${api.origin}/refunds`, refund)).rejects.toMatchObject({ code: 'APPROVAL_REQUIRED' });
    expect(api.received.filter((r) => r.url === '/refunds')).toHaveLength(1);
    // another body is another approval
    const other = await preflight(`${api.origin}/refunds`, { ...refund, body: '{"charge":"ch_2"}' }).catch((e: unknown) => e as AgentIamError);
    expect((other as AgentIamError).approvalId).not.toBe(id);
  });

  it('a denied approval is POLICY_DENIED with reason approval_denied and its id; the approver\'s reason is on the record', async () => {
    const { preflight, approvals, toolFetch } = setup();
    const id = ((await preflight(`${api.origin}/refunds`, refund).catch((e: unknown) => e)) as AgentIamError).approvalId as string;
    await expect(approvals.deny(id, { approver: 'lead', reason: 'bad\nreason' })).rejects.toMatchObject({ code: 'REQUEST_INVALID', field: 'reason' });
    await expect(approvals.deny(id, { approver: 'lead', reason: 'x'.repeat(501) })).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
    expect(await approvals.deny(id, { approver: 'lead', reason: 'Refunds over 50 EUR need a ticket' })).toMatchObject({ status: 'denied', reason: 'Refunds over 50 EUR need a ticket' });
    for (const p of [preflight(`${api.origin}/refunds`, refund), toolFetch(`${api.origin}/refunds`, refund)]) {
      await expect(p).rejects.toMatchObject({ code: 'POLICY_DENIED', reason: 'approval_denied', approvalId: id });
    }
    expect(await approvals.check({ agentId: 'agent', userId: 'alice', tool: 'pay', method: 'POST', path: '/refunds', query: '', bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' })).toMatchObject({ status: 'pending' });
  });

  it('is absent on a fetch that createToolFetch did not build', () => {
    expect(preflightOf(fetch as never)).toBeUndefined();
  });
});

describe('CONSENT_REQUIRED names the connection', () => {
  it('from toolFetch, when the token source gives no URL itself', async () => {
    const tokens: TokenSource = {
      getAccessToken: async () => {
        throw new AgentIamError('CONSENT_REQUIRED', 'no account');
      },
      startAuthorization: async () => ({ url: 'https://idp.example/authorize?x=1', state: 's' }),
    } as unknown as TokenSource;
    const toolFetch = createToolFetch({
      agent: { id: 'agent' },
      tools: [{ name: 'gh', baseUrl: api.origin, auth: { type: 'oauth2', connection: 'github' } }],
      policies: [{ agent: 'agent', tool: 'gh' }],
      tokens,
    });
    const e = (await toolFetch(`${api.origin}/user`, { context }).catch((x: unknown) => x)) as AgentIamError;
    expect(e).toMatchObject({ code: 'CONSENT_REQUIRED', connection: 'github', authorizationUrl: 'https://idp.example/authorize?x=1' });
    expect(e.toJSON()).toMatchObject({ connection: 'github' });
  });

  it('from a preflight that looks at the credential: before anything is sent, and nothing once the account is there', async () => {
    let connected = false;
    const tokens = {
      getAccessToken: async () => {
        if (!connected) throw new AgentIamError('CONSENT_REQUIRED', 'no account', { connection: 'github', authorizationUrl: 'https://idp.example/authorize?s=1' });
        return { accessToken: 'gho_secret', tokenType: 'bearer' };
      },
      startAuthorization: async () => ({ url: 'https://idp.example/authorize?s=2', state: 's' }),
    } as unknown as TokenSource;
    const toolFetch = createToolFetch({
      agent: { id: 'agent' },
      tools: [{ name: 'gh', baseUrl: api.origin, auth: { type: 'oauth2', connection: 'github' } }],
      policies: [{ agent: 'agent', tool: 'gh' }],
      tokens,
    });
    const preflight = preflightOf(toolFetch) as NonNullable<ReturnType<typeof preflightOf>>;
    api.clear();
    expect(await preflight(`${api.origin}/user`, { context })).toMatchObject({ tool: 'gh' }); // policy only
    await expect(preflight(`${api.origin}/user`, { context }, { credential: true })).rejects.toMatchObject({ code: 'CONSENT_REQUIRED', connection: 'github' });
    connected = true;
    const out = await preflight(`${api.origin}/user`, { context }, { credential: true });
    expect(out).toEqual({ tool: 'gh', method: 'GET', url: `${api.origin}/user` });
    expect(JSON.stringify(out)).not.toContain('gho_secret');
    expect(api.received).toHaveLength(0);
  });
});
