/**
 * Notifications of new approvals (issue 15, item 5): the onApprovalRequested hook and a webhook
 * signed with HMAC-SHA256, carrying the approval id and the inbox link, never a secret.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, verifyWebhookSignature, type ApprovalNotification, type ApprovalRequestInput } from '../../src/index.js';

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SECRET = 'webhook-secret-0123456789';
const req = (over: Partial<ApprovalRequestInput> = {}): ApprovalRequestInput => ({
  agentId: 'refund-agent', userId: 'alice', tool: 'payments', method: 'POST', path: '/v1/refunds', query: '?card=4242424242424242', bodySha256: EMPTY_SHA, ...over,
});

interface Hit { body: string; headers: IncomingMessage['headers'] }
let hits: Hit[] = [];
let fail = 0;
let url = '';
const server = createServer((r, res) => {
  let body = '';
  r.on('data', (c) => (body += c));
  r.on('end', () => {
    hits.push({ body, headers: r.headers });
    res.statusCode = fail-- > 0 ? 503 : 204;
    res.end();
  });
});
beforeAll(async () => {
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/agent-iam`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('approval notifications', () => {
  it('the hook and the signed webhook get each new approval once, with id and inbox link and nothing secret', async () => {
    hits = [];
    const seen: ApprovalNotification[] = [];
    const approvals = createApprovals({ onApprovalRequested: (n) => void seen.push(n), webhook: { url, secret: SECRET }, inboxUrl: 'https://agent.example.com/agent-iam/approvals/' });
    const p = await approvals.check(req());
    await approvals.check(req()); // the same waiting request: no second notification
    await until(() => hits.length >= 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toHaveLength(1);
    expect(hits).toHaveLength(1);
    const expected = { type: 'approval.requested', approvalId: p.id, inboxUrl: `https://agent.example.com/agent-iam/approvals/${p.id}`, agentId: 'refund-agent', tool: 'payments' };
    expect(seen[0]).toMatchObject(expected);
    const hit = hits[0] as Hit;
    expect(JSON.parse(hit.body)).toMatchObject(expected);
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.headers['agent-iam-event']).toBe('approval.requested');
    const header = hit.headers['agent-iam-signature'] as string;
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(await verifyWebhookSignature({ body: hit.body, header, secret: SECRET })).toBe(true);
    // tampered body, wrong secret, stale or missing signature: refused
    expect(await verifyWebhookSignature({ body: hit.body.replace('payments', 'payment5'), header, secret: SECRET })).toBe(false);
    expect(await verifyWebhookSignature({ body: hit.body, header, secret: `${SECRET}x` })).toBe(false);
    expect(await verifyWebhookSignature({ body: hit.body, header, secret: SECRET, now: Date.now() + 600_000 })).toBe(false);
    expect(await verifyWebhookSignature({ body: hit.body, header: undefined, secret: SECRET })).toBe(false);
    // nothing secret and nothing of the request beyond what approvers see
    for (const text of [hit.body, JSON.stringify(hit.headers), JSON.stringify(seen)]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('4242');
      expect(text).not.toContain('card');
    }
  });

  it('a receiver answering 5xx gets one retry; a failing hook or receiver never fails the request', async () => {
    hits = [];
    fail = 1;
    const approvals = createApprovals({ onApprovalRequested: () => { throw new Error('hook down'); }, webhook: { url, secret: SECRET } });
    const p = await approvals.check(req({ path: '/v1/refunds/2' }));
    expect(p.status).toBe('pending');
    await until(() => hits.length >= 2);
    expect(hits).toHaveLength(2);
    const dead = createApprovals({ onApprovalRequested: async () => Promise.reject(new Error('x')), webhook: { url: 'http://127.0.0.1:1/nothing', secret: SECRET, timeoutMs: 200 } });
    expect((await dead.check(req())).status).toBe('pending');
  });

  it('options are checked at construction: https webhook (loopback http), a secret of 16+ characters', () => {
    expect(() => createApprovals({ webhook: { url: 'http://hooks.example.com/x', secret: SECRET } })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => createApprovals({ webhook: { url, secret: 'short' } })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => createApprovals({ inboxUrl: 'http://agent.example.com/inbox' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

