/**
 * agent-iam/ai-sdk with the real AI SDK (`ai` 7) and its MockLanguageModelV4: approvals and consent
 * as the AI SDK's own tool-approval requests, bound in agent-iam to the exact request, resumed in
 * this process or in another one.
 */
import { generateText, stepCountIs, type ModelMessage } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createAiSdkTools, type AiSdkTools } from '../../src/adapters/ai-sdk.js';
import type { AgentIam } from '../../src/index.js';
import { runWithContext } from '../../src/index.js';
import { scriptedModel, type ScriptedCall } from './frameworks/ai-model.js';
import type { ApprovalPause } from '../../src/adapters/agent-tools.js';
import { APPROVER, expectNoSecrets, startHarness, type Harness } from './frameworks/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(() => h.api.clear());

async function toolsFor(iam: AgentIam) {
  const t = await createAiSdkTools(iam, { store: h.store });
  const api = h.api.origin;
  const tools = {
    refund: t.tool({
      description: 'Refund a charge',
      inputSchema: z.object({ charge: z.string(), amount: z.number() }),
      request: ({ charge, amount }) => ({ url: `${api}/pay/refunds`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
    }),
    notes: t.tool({
      description: "List the user's notes",
      inputSchema: z.object({ tag: z.string() }),
      request: ({ tag }) => ({ url: `${api}/notes?tag=${encodeURIComponent(tag)}` }),
    }),
    wipe: t.tool({ description: 'Wipe everything', inputSchema: z.object({}), request: () => ({ url: `${api}/admin/wipe`, method: 'POST' }) }),
    // a request known only inside the tool: no pause before it runs, a structured result instead
    refundInside: t.tool({
      description: 'Refund (request built inside)',
      inputSchema: z.object({ charge: z.string() }),
      execute: async ({ charge }, run) => (await run.fetch(`${api}/pay/refunds`, { method: 'POST', body: charge })).status,
    }),
  };
  return { t, tools };
}

async function turn(t: AiSdkTools, tools: Awaited<ReturnType<typeof toolsFor>>['tools'], calls: ScriptedCall[], messages: ModelMessage[], session: string | undefined) {
  const model = scriptedModel(calls);
  const result = await generateText({ model, tools, messages, stopWhen: stepCountIs(3), toolApproval: t.toolApproval(tools), toolsContext: t.toolsContext(tools, session) });
  return { result, model };
}

type ApprovalEntry = ApprovalPause & { toolApprovalId: string };
const ask: ModelMessage[] = [{ role: 'user', content: 'refund ch_1' }];

describe('agent-iam/ai-sdk', () => {
  it('pauses on agent-iam approval, approving lets exactly that request through once, as the caller', async () => {
    const { t, tools } = await toolsFor(h.iam);
    const alice = await h.contextOf('alice');
    const session = await t.session(alice);
    const calls = [{ toolName: 'refund', input: { charge: 'ch_1', amount: 20 } }];
    const first = await turn(t, tools, calls, ask, session);
    expect(first.result.content.filter((p) => p.type === 'tool-approval-request')).toHaveLength(1);
    expect(h.hits('/pay/refunds')).toHaveLength(0);

    const [pending] = await t.pendingApprovals(first.result.content, tools, { session });
    expect(pending).toMatchObject({ type: 'agent-iam.approval', tool: 'pay', toolName: 'refund', userId: 'alice', method: 'POST', path: '/pay/refunds', description: 'Refund 20 EUR on ch_1' });
    expect(pending?.text).toContain('shop-agent asks to POST');
    await expect(t.approve(pending!, { approver: 'alice' })).rejects.toMatchObject({ code: 'POLICY_DENIED', reason: 'self_approval' });
    const response = await t.approve(pending!, { approver: APPROVER });
    expect(response).toEqual({ type: 'tool-approval-response', approvalId: pending!.toolApprovalId, approved: true });

    const resumed: ModelMessage[] = [...ask, ...first.result.response.messages, { role: 'tool', content: [response] }];
    const second = await turn(t, tools, calls, resumed, session);
    const hits = h.hits('/pay/refunds', 'POST');
    expect(hits).toHaveLength(1);
    expect(JSON.parse(hits[0]!.body.toString())).toEqual({ charge: 'ch_1', amount: 20 });
    expect(hits[0]!.headers['x-end-user-id']).toBe('alice');
    expect(hits[0]!.headers.authorization).toBe('Bearer sk_live_adapter_secret_0123456789');
    expect(JSON.stringify(second.model.seen)).toContain('"status":200');
    expect((await h.iam.approvals!.get((pending as ApprovalEntry).approvalId))?.status).toBe('consumed');

    // the same approval replayed: single use, the tool server is not reached again
    const replay = await turn(t, tools, calls, resumed, session);
    expect(h.hits('/pay/refunds')).toHaveLength(1);
    expect(JSON.stringify(replay.model.seen)).toContain('approval_required');
  });

  it('a denial reaches the model as a denied tool call with the reason; nothing is sent', async () => {
    const { t, tools } = await toolsFor(h.iam);
    const session = await t.session(await h.contextOf('alice'));
    const calls = [{ toolName: 'refund', input: { charge: 'ch_2', amount: 900 } }];
    const first = await turn(t, tools, calls, ask, session);
    const [pending] = await t.pendingApprovals(first.result.content, tools, { session });
    const response = await t.deny(pending!, { approver: APPROVER, reason: 'Refunds over 500 EUR need a ticket' });
    expect(response).toMatchObject({ approved: false, reason: 'Refunds over 500 EUR need a ticket' });
    const second = await turn(t, tools, calls, [...ask, ...first.result.response.messages, { role: 'tool', content: [response] }], session);
    expect(JSON.stringify(second.model.seen)).toContain('execution-denied');
    expect(JSON.stringify(second.model.seen)).toContain('Refunds over 500 EUR need a ticket');
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    expect(await h.iam.approvals!.get((pending as ApprovalEntry).approvalId)).toMatchObject({ status: 'denied', reason: 'Refunds over 500 EUR need a ticket' });
  });

  it('changed arguments after the pause need a new approval: the approved one does not cover them', async () => {
    const { t, tools } = await toolsFor(h.iam);
    const session = await t.session(await h.contextOf('alice'));
    const first = await turn(t, tools, [{ toolName: 'refund', input: { charge: 'ch_3', amount: 10 } }], ask, session);
    const [pending] = await t.pendingApprovals(first.result.content, tools, { session });
    const response = await t.approve(pending!, { approver: APPROVER });
    // the history comes back with another amount in the approved tool call
    const tampered = JSON.parse(JSON.stringify(first.result.response.messages).replaceAll('"amount":10', '"amount":9999')) as ModelMessage[];
    const second = await turn(t, tools, [], [...ask, ...tampered, { role: 'tool', content: [response] }], session);
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    const seen = JSON.stringify(second.model.seen);
    expect(seen).toContain('approval_required');
    expect(seen).not.toContain((pending as ApprovalEntry).approvalId); // a new approval, for the new request
    expect((await h.iam.approvals!.get((pending as ApprovalEntry).approvalId))?.status).toBe('approved'); // still only for amount 10
  });

  it('consent: one connect request for parallel calls; after the callback, resuming runs the tools with the new account', async () => {
    const { t, tools } = await toolsFor(h.iam);
    const session = await t.session(await h.contextOf('carol'));
    const calls = [{ toolName: 'notes', input: { tag: 'a' } }, { toolName: 'notes', input: { tag: 'b' } }];
    const first = await turn(t, tools, calls, ask, session);
    const pending = await t.pendingApprovals(first.result.content, tools, { session });
    expect(pending).toHaveLength(2);
    expect(pending.map((p) => p.type)).toEqual(['agent-iam.consent', 'agent-iam.consent']);
    expect(new Set(pending.map((p) => (p.type === 'agent-iam.consent' ? p.consentId : '')))).toHaveProperty('size', 1);
    const consent = pending[0]!;
    if (consent.type !== 'agent-iam.consent') throw new Error('consent expected');
    expect(consent).toMatchObject({ connection: 'notes', userId: 'carol' });
    expect(pending[1]).toMatchObject({ url: consent.url });
    expect(h.hits('/notes')).toHaveLength(0);

    await h.connect(h.iam, consent.url!, 'carol');
    const second = await turn(t, tools, calls, [...ask, ...first.result.response.messages, { role: 'tool', content: pending.map((p) => t.afterConsent(p)) }], session);
    const hits = h.hits('/notes');
    expect(hits.map((r) => r.url).sort()).toEqual(['/notes?tag=a', '/notes?tag=b']);
    expect(hits.every((r) => r.headers['x-end-user-id'] === 'carol' && String(r.headers.authorization).startsWith('Bearer '))).toBe(true);
    expect(JSON.stringify(second.model.seen)).toContain('"status":200');
  });

  it('a policy denial is an automatic denial with the reason; a request known only inside the tool returns a structured result', async () => {
    const { t, tools } = await toolsFor(h.iam);
    const alice = await h.contextOf('alice');
    // no session: the tools use the current context, as inside agentAuth
    const out = await runWithContext(alice, () => turn(t, tools, [{ toolName: 'wipe', input: {} }, { toolName: 'refundInside', input: { charge: 'ch_9' } }], ask, undefined));
    const seen = JSON.stringify(out.model.seen);
    expect(seen).toContain('execution-denied');
    expect(seen).toContain('does not allow');
    expect(seen).toContain('approval_required');
    expect(h.api.received).toHaveLength(0);
  });

  it('a run persisted with its session resumes in a fresh agent on the same store, as the caller; the state holds no secret', async () => {
    const first = await toolsFor(h.iam);
    const session = await first.t.session(await h.contextOf('dave'));
    const calls = [{ toolName: 'refund', input: { charge: 'ch_7', amount: 7 } }];
    const paused = await turn(first.t, first.tools, calls, ask, session);
    const saved = JSON.stringify({ messages: [...ask, ...paused.result.response.messages], session });
    expectNoSecrets(h, saved);

    // another process: a new agent, new adapter, no context but the session id from the saved state
    const other = await toolsFor(h.newIam());
    const restored = JSON.parse(saved) as { messages: ModelMessage[]; session: string };
    const [pending] = await other.t.pendingApprovals(restored.messages, other.tools, { session: restored.session });
    expect(pending).toMatchObject({ userId: 'dave', method: 'POST' });
    const response = await other.t.approve(pending!, { approver: APPROVER });
    await turn(other.t, other.tools, calls, [...restored.messages, { role: 'tool', content: [response] }], restored.session);
    const hits = h.hits('/pay/refunds');
    expect(hits).toHaveLength(1);
    expect(hits[0]!.headers['x-end-user-id']).toBe('dave');
    await expect(other.t.restore('ags_unknown_session_id_00')).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
  });
});
