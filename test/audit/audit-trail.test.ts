/**
 * The audit trail of a whole approval flow through toolFetch, written by a hash-chained JSON-lines
 * sink to a real file, against a real upstream on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApprovals, createToolFetch, jsonLinesAudit, verifyAuditChain, type AgentContext } from '../../src/index.js';
import { createTestContext } from '../../src/testing/index.js';

let server: Server;
let origin: string;
const received: Array<{ method: string; url: string }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '' });
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

const ctx: AgentContext = createTestContext({
  userId: 'alice@example.com',
  subject: 'alice',
  claims: { groups: ['support'] },
  email: 'alice@example.com',
  requestId: 'req-audit-1',
});

describe('audit trail of an approval flow', () => {
  it('every decision is one chained line, without secrets or query values, and tampering is found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-iam-trail-'));
    try {
      const file = join(dir, 'audit.jsonl');
      const stream = createWriteStream(file, { flags: 'a' });
      const audit = jsonLinesAudit(stream, { hashChain: true });
      const approvals = createApprovals({ audit });
      const toolFetch = createToolFetch({
        agent: { id: 'support-agent' },
        tools: [{ name: 'pay', baseUrl: origin, auth: { type: 'apiKey', key: 'sk_live_SECRET_KEY' } }],
        policies: [
          { agent: 'support-agent', tool: 'pay', groups: ['support'] },
          { agent: 'support-agent', tool: 'pay', capabilities: [{ method: 'POST', path: '/v1/refunds' }], effect: 'approval' },
          { agent: 'support-agent', tool: 'pay', capabilities: [{ method: 'DELETE', path: '/v1/*' }], effect: 'deny' },
        ],
        approvals,
        audit,
      });
      const refund = () =>
        toolFetch(`${origin}/v1/refunds?card=4242424242424242`, { method: 'POST', body: '{"amount":100}', context: ctx });

      expect((await toolFetch(`${origin}/v1/charges?limit=3`, { context: ctx })).status).toBe(200);
      const pending = (await refund().then(
        () => ({ code: 'NONE', approvalId: '' }),
        (e: unknown) => e as { code: string; approvalId: string },
      ));
      expect(pending.code).toBe('APPROVAL_REQUIRED');
      expect(received.filter((r) => r.method === 'POST')).toHaveLength(0);
      await approvals.approve(pending.approvalId, { approver: 'lead@example.com' });
      expect((await refund()).status).toBe(200);
      await expect(toolFetch(`${origin}/v1/charges/ch_1`, { method: 'DELETE', context: ctx })).rejects.toMatchObject({ code: 'POLICY_DENIED' });
      expect(received.map((r) => r.method)).toEqual(['GET', 'POST']);

      await audit.flush();
      await new Promise<void>((r) => stream.end(r));
      const text = readFileSync(file, 'utf8');
      const lines = text.trimEnd().split('\n');
      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const types = events.map((e) => `${e.type}:${e.decision}`);
      expect(types).toContain('approval.request:approval');
      expect(types).toContain('approval.approve:allow');
      expect(types.filter((t) => t === 'tool.request:allow')).toHaveLength(2);
      expect(types).toContain('tool.request:deny');
      expect(events.find((e) => e.type === 'approval.approve')).toMatchObject({ approver: 'lead@example.com', approvalId: pending.approvalId, userId: 'alice@example.com' });
      // no credential, no query value, no body in the log
      expect(text).not.toMatch(/sk_live|SECRET|4242|limit=3|amount/);

      const ok = await verifyAuditChain(text);
      expect(ok).toMatchObject({ ok: true, count: lines.length });

      // an administrator "tidies up" the approval line: the chain breaks right after it
      const i = events.findIndex((e) => e.type === 'approval.approve');
      const forged = [...lines];
      forged[i] = forged[i]!.replace('lead@example.com', 'someone@example.com');
      writeFileSync(file, forged.join('\n') + '\n');
      expect(await verifyAuditChain(readFileSync(file, 'utf8'))).toMatchObject({ ok: false, line: i + 2 });
      // dropping the denied request is found too
      const j = events.findIndex((e) => e.type === 'tool.request' && e.decision === 'deny');
      const dropped = lines.filter((_, k) => k !== j);
      const result = await verifyAuditChain(dropped, { lastHash: (ok as { lastHash: string }).lastHash });
      expect(result.ok).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
