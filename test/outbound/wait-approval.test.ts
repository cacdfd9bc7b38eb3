/**
 * toolFetch(url, { waitForApproval }): the agent call waits for a person's decision, goes through
 * exactly once when approved, and gets typed errors when denied, lapsed or still pending.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch } from '../../src/outbound/index.js';
import { createApprovals, type Approvals } from '../../src/policy/approvals.js';
import { startUpstream, type Upstream } from './upstream.js';
import { userContext } from './helpers.js';

let up: Upstream;
beforeAll(async () => {
  up = await startUpstream();
});
afterAll(() => up.close());
beforeEach(() => up.clear());

function setup(approvals: Approvals) {
  return createToolFetch({
    agent: { id: 'refund-agent' },
    tools: [{ name: 'payments', baseUrl: up.origin, auth: { type: 'none' } }],
    policies: [{ agent: 'refund-agent', tool: 'payments', effect: 'approval', approvedBy: { groups: ['finance'] } }],
    approvals,
  });
}
const pendingId = async (approvals: Approvals): Promise<string> => {
  for (let i = 0; i < 200; i++) {
    const p = await approvals.list({ status: 'pending' });
    if (p.length > 0) return (p[0] as { id: string }).id;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no pending approval');
};
async function failure(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('resolved');
}

describe('waitForApproval', () => {
  it('an approved waiting call goes through exactly once; of two identical waiting calls one passes', async () => {
    const approvals = createApprovals();
    const tf = setup(approvals);
    const call = () => tf(`${up.origin}/v1/refunds`, { method: 'POST', body: '{"amount":1}', context: userContext('alice'), waitForApproval: 5000 });
    const [a, b] = [call(), call()];
    const id = await pendingId(approvals);
    await approvals.approve(id, { approver: { userId: 'erin', groups: ['finance'] } });
    const results = await Promise.allSettled([a, b]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toMatchObject({ code: 'APPROVAL_REQUIRED' });
    expect(up.received.filter((r) => r.url === '/v1/refunds')).toHaveLength(1);
  });

  it('denied: POLICY_DENIED approval_denied; lapsed: approval_expired; still pending: APPROVAL_REQUIRED; nothing sent', async () => {
    const approvals = createApprovals({ pendingTtlSeconds: 1 });
    const tf = setup(approvals);
    const denied = tf(`${up.origin}/v1/refunds/1`, { method: 'POST', context: userContext('alice'), waitForApproval: 5000 });
    await approvals.deny(await pendingId(approvals), { approver: { userId: 'erin', groups: ['finance'] }, reason: 'no' });
    expect(await failure(denied)).toMatchObject({ code: 'POLICY_DENIED', reason: 'approval_denied' });
    const lapsed = await failure(tf(`${up.origin}/v1/refunds/2`, { method: 'POST', context: userContext('alice'), waitForApproval: 3000 }));
    expect(lapsed).toMatchObject({ code: 'POLICY_DENIED', reason: 'approval_expired' });
    const waiting = await failure(tf(`${up.origin}/v1/refunds/3`, { method: 'POST', context: userContext('alice'), waitForApproval: 100 }));
    expect(waiting).toMatchObject({ code: 'APPROVAL_REQUIRED' });
    expect(up.received).toHaveLength(0);
    expect(await failure(tf(`${up.origin}/v1/refunds/3`, { method: 'POST', context: userContext('alice'), waitForApproval: -1 }))).toMatchObject({ code: 'REQUEST_INVALID' });
  });

  it('a lapse is audited with its reason; a failing approvals service while waiting is STORE_UNAVAILABLE without its message', async () => {
    const events: Array<Record<string, unknown>> = [];
    const approvals = createApprovals({ pendingTtlSeconds: 1 });
    const tf = createToolFetch({
      agent: { id: 'refund-agent' },
      tools: [{ name: 'payments', baseUrl: up.origin, auth: { type: 'none' } }],
      policies: [{ agent: 'refund-agent', tool: 'payments', effect: 'approval', approvedBy: { groups: ['finance'] } }],
      approvals,
      audit: (e) => void events.push(e as unknown as Record<string, unknown>),
    });
    await failure(tf(`${up.origin}/v1/refunds/9`, { method: 'POST', context: userContext('alice'), waitForApproval: 3000 }));
    expect(events.at(-1)).toMatchObject({ decision: 'deny', code: 'POLICY_DENIED', reason: 'approval_expired' });

    const broken = createToolFetch({
      agent: { id: 'refund-agent' },
      tools: [{ name: 'payments', baseUrl: up.origin, auth: { type: 'none' } }],
      policies: [{ agent: 'refund-agent', tool: 'payments', effect: 'approval' }],
      approvals: {
        check: async () => ({ status: 'pending', id: 'apr_0000000000000000000000', summary: { agentId: 'refund-agent', tool: 'payments', method: 'POST', path: '/v1/refunds/10', host: 'x' } }),
        waitForDecision: async () => {
          throw new Error('redis said: secret-record-value');
        },
      },
    });
    const e = await failure(broken(`${up.origin}/v1/refunds/10`, { method: 'POST', context: userContext('alice'), waitForApproval: 1000 }));
    expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(JSON.stringify(e) + String(e.message)).not.toContain('secret-record-value');
    expect(up.received).toHaveLength(0);
  });
});
