/**
 * What an approver learns about a request toolFetch sent to approval (issue 14, item 5): method,
 * host, path, SHA-256 of query and body (never their values, which may carry secrets), and an
 * optional summary from the agent's author; and that the agent's own user cannot approve it.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch } from '../../src/outbound/index.js';
import { createApprovals } from '../../src/policy/approvals.js';
import { startUpstream, type Upstream } from './upstream.js';
import { auditLog, codeOf, userContext } from './helpers.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let up: Upstream;
beforeAll(async () => {
  up = await startUpstream();
});
afterAll(() => up.close());
beforeEach(() => up.clear());

function setup() {
  const log = auditLog();
  const approvals = createApprovals({ audit: log.sink });
  const tf = createToolFetch({
    agent: { id: 'refund-agent' },
    tools: [{ name: 'payments', baseUrl: up.origin, auth: { type: 'apiKey', key: 'sk_live_VIEW_SECRET' } }],
    policies: [{ agent: 'refund-agent', tool: 'payments', effect: 'approval' }],
    approvals,
    audit: log.sink,
  });
  return { tf, approvals, log };
}

async function failure(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('resolved');
}

describe('the approval an approver sees', () => {
  const body = JSON.stringify({ amount: 2000, card: '4242424242424242' });
  const query = '?customer=cus_1&api_token=QUERY-SECRET';

  it('shows method, host, path, hashes of query and body and the author’s summary; never the values', async () => {
    const { tf, approvals } = setup();
    const err = await failure(
      tf(`${up.origin}/v1/refunds${query}`, { method: 'POST', body, context: userContext('alice'), approvalDescription: 'Refund 20 EUR to alice (order 1234)' }),
    );
    expect(err.code).toBe('APPROVAL_REQUIRED');
    const expected = {
      agentId: 'refund-agent',
      userId: 'alice',
      tool: 'payments',
      method: 'POST',
      host: `127.0.0.1:${up.port}`,
      path: '/v1/refunds',
      querySha256: sha(query.slice(1)),
      bodySha256: sha(body),
      description: 'Refund 20 EUR to alice (order 1234)',
    };
    expect(err.approval).toEqual(expected);
    const record = await approvals.get(err.approvalId as string);
    expect(record?.summary).toEqual(expected);
    for (const text of [JSON.stringify(err), JSON.stringify(await approvals.list())]) {
      expect(text).not.toContain('QUERY-SECRET');
      expect(text).not.toContain('4242424242424242');
      expect(text).not.toContain('sk_live_VIEW_SECRET');
    }
    expect(up.received).toHaveLength(0);
  });

  it('the agent’s user cannot approve its request; another person can, and then it passes once', async () => {
    const { tf, approvals, log } = setup();
    const send = () => tf(`${up.origin}/v1/refunds${query}`, { method: 'POST', body, context: userContext('alice') });
    const err = await failure(send());
    const id = err.approvalId as string;
    expect(await codeOf(approvals.approve(id, { approver: 'alice' }))).toBe('POLICY_DENIED');
    expect(await codeOf(approvals.approve(id, { approver: 'refund-agent', ttlSeconds: 600 }))).toBe('POLICY_DENIED');
    expect(await codeOf(send())).toBe('APPROVAL_REQUIRED');
    expect(up.received).toHaveLength(0);
    expect(log.events.filter((e) => e.type === 'approval.approve').map((e) => [e.decision, e.approver])).toEqual([
      ['deny', 'alice'],
      ['deny', 'refund-agent'],
    ]);

    await approvals.approve(id, { approver: 'lead@example.com' });
    expect((await send()).status).toBe(200);
    expect(await codeOf(send())).toBe('APPROVAL_REQUIRED');
    expect(up.received).toHaveLength(1);
  });

  it('an approvalDescription that could mislead a page (control characters, too long) is refused before anything', async () => {
    const { tf, approvals } = setup();
    for (const approvalDescription of ['Refund\r\nApproved by: security', 'x'.repeat(501), 42 as never]) {
      expect(await codeOf(tf(`${up.origin}/v1/refunds`, { method: 'POST', body, context: userContext('alice'), approvalDescription }))).toBe('REQUEST_INVALID');
    }
    expect(await approvals.list()).toHaveLength(0);
    expect(up.received).toHaveLength(0);
  });
});
