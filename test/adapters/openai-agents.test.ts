/**
 * agent-iam/openai-agents with the real OpenAI Agents SDK and a scripted Model: approvals and
 * consent as the SDK's interruptions, bound in agent-iam to the exact request, resumed from
 * `RunState.toString()` in this process or another one.
 */
import { Agent, run, RunState, setTracingDisabled, Usage, type AgentInputItem, type Model, type ModelRequest, type ModelResponse } from '@openai/agents';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createOpenAIAgentsTools } from '../../src/adapters/openai-agents.js';
import type { ApprovalPause, ConsentPause } from '../../src/adapters/agent-tools.js';
import type { AgentIam } from '../../src/index.js';
import { APPROVER, expectNoSecrets, startHarness, type Harness } from './frameworks/harness.js';

setTracingDisabled(true);

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(() => h.api.clear());

/** Calls the scripted tools on the user's turn; once tool results are in, answers with what it read. */
class ScriptedModel implements Model {
  seen: unknown[] = [];
  #n = 0;
  constructor(private readonly calls: { name: string; input: unknown }[]) {}
  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    const input = (Array.isArray(request.input) ? request.input : []) as AgentInputItem[];
    const results = input.filter((i) => (i as { type?: string }).type === 'function_call_result');
    if (results.length > 0) {
      this.seen.push(results);
      return { usage: new Usage(), output: [{ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: `read ${JSON.stringify(results)}` }] }] };
    }
    return { usage: new Usage(), output: this.calls.map((c) => ({ type: 'function_call' as const, callId: `call_${++this.#n}`, name: c.name, arguments: JSON.stringify(c.input), status: 'completed' as const })) };
  }
  // eslint-disable-next-line require-yield
  async *getStreamedResponse(): AsyncIterable<never> {
    throw new Error('not streamed');
  }
}

async function agentFor(iam: AgentIam, calls: { name: string; input: unknown }[]) {
  const t = await createOpenAIAgentsTools(iam, { store: h.store });
  const api = h.api.origin;
  const model = new ScriptedModel(calls);
  const agent = new Agent({
    name: 'shop',
    instructions: 'Help the user.',
    model,
    tools: [
      t.tool({
        name: 'refund',
        description: 'Refund a charge',
        parameters: z.object({ charge: z.string(), amount: z.number() }),
        request: ({ charge, amount }) => ({ url: `${api}/pay/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
      }),
      t.tool({ name: 'notes', description: 'Notes', parameters: z.object({ tag: z.string() }), request: ({ tag }) => ({ url: `${api}/notes?tag=${tag}` }) }),
      t.tool({ name: 'wipe', description: 'Wipe', parameters: z.object({}), request: () => ({ url: `${api}/admin/wipe`, method: 'POST' }) }),
      t.tool({
        name: 'refund_inside',
        description: 'Refund, request built inside',
        parameters: z.object({ charge: z.string() }),
        execute: async ({ charge }, r) => (await r.fetch(`${api}/pay/refunds`, { method: 'POST', body: charge })).status,
      }),
    ],
  });
  return { t, agent, model };
}

const refund = (amount: number, charge = 'ch_1') => [{ name: 'refund', input: { charge, amount } }];

describe('agent-iam/openai-agents', () => {
  it('interrupts for agent-iam approval; approving resumes and lets exactly that request through once, as the caller', async () => {
    const { t, agent, model } = await agentFor(h.iam, refund(20));
    const first = await run(agent, 'refund ch_1', { context: await t.runContext(await h.contextOf('alice')) });
    expect(first.interruptions).toHaveLength(1);
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    const [pending] = await t.pendingApprovals(first.state);
    expect(pending).toMatchObject({ type: 'agent-iam.approval', tool: 'pay', toolName: 'refund', userId: 'alice', method: 'POST', path: '/pay/refunds', description: 'Refund 20 EUR on ch_1' });
    await t.approve(first.state, pending!, { approver: APPROVER });
    const second = await run(agent, first.state);
    expect(second.interruptions ?? []).toHaveLength(0);
    const hits = h.hits('/pay/refunds', 'POST');
    expect(hits).toHaveLength(1);
    expect(JSON.parse(hits[0]!.body.toString())).toEqual({ charge: 'ch_1', amount: 20 });
    expect(hits[0]!.headers['x-end-user-id']).toBe('alice');
    expect(JSON.stringify(model.seen)).toContain('\\"status\\":200');
    expect((await h.iam.approvals!.get((pending as ApprovalPause).approvalId))?.status).toBe('consumed');
  });

  it('a denial reaches the model as a rejected tool call with the reason; nothing is sent', async () => {
    const { t, agent, model } = await agentFor(h.iam, refund(900));
    const first = await run(agent, 'refund', { context: await t.runContext(await h.contextOf('alice')) });
    const [pending] = await t.pendingApprovals(first.state);
    await t.deny(first.state, pending!, { approver: APPROVER, reason: 'Refunds over 500 EUR need a ticket' });
    await run(agent, first.state);
    expect(JSON.stringify(model.seen)).toContain('Denied by lead@example.com: Refunds over 500 EUR need a ticket');
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    expect(await h.iam.approvals!.get((pending as ApprovalPause).approvalId)).toMatchObject({ status: 'denied', reason: 'Refunds over 500 EUR need a ticket' });
  });

  it('changed arguments after the pause need a new approval: the approved one does not cover them', async () => {
    const { t, agent, model } = await agentFor(h.iam, refund(10, 'ch_3'));
    const first = await run(agent, 'refund', { context: await t.runContext(await h.contextOf('alice')) });
    const [pending] = await t.pendingApprovals(first.state);
    const approved = (pending as ApprovalPause).approvalId;
    // the saved state comes back with another amount; the approver approves what they were shown
    const tampered = first.state.toString().replaceAll('\\"amount\\":10', '\\"amount\\":9999');
    expect(tampered).not.toBe(first.state.toString());
    const state = await RunState.fromString(agent, tampered);
    await t.approve(state, pending!, { approver: APPROVER });
    await run(agent, state);
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    const seen = JSON.stringify(model.seen);
    expect(seen).toContain('approval_required');
    expect(seen).not.toContain(approved); // a new approval, for the new request
    expect((await h.iam.approvals!.get(approved))?.status).toBe('approved'); // still only for amount 10

    // changing them after the decision is refused by the SDK itself
    const again = await agentFor(h.iam, refund(11, 'ch_4'));
    const paused = await run(again.agent, 'refund', { context: await again.t.runContext(await h.contextOf('alice')) });
    const [p2] = await again.t.pendingApprovals(paused.state);
    await again.t.approve(paused.state, p2!, { approver: APPROVER });
    const after = await RunState.fromString(again.agent, paused.state.toString().replaceAll('\\"amount\\":11', '\\"amount\\":9999'));
    await expect(run(again.agent, after)).rejects.toThrow(/reused for a different invocation/);
    expect(h.hits('/pay/refunds')).toHaveLength(0);
  });

  it('consent: one connect request for parallel calls; after the callback, resuming runs the tools with the new account', async () => {
    const { t, agent } = await agentFor(h.iam, [{ name: 'notes', input: { tag: 'a' } }, { name: 'notes', input: { tag: 'b' } }]);
    const first = await run(agent, 'my notes', { context: await t.runContext(await h.contextOf('erin')) });
    const pending = (await t.pendingApprovals(first.state)) as (ConsentPause & { toolCallId: string; toolName: string })[];
    expect(pending.map((p) => p.type)).toEqual(['agent-iam.consent', 'agent-iam.consent']);
    expect(new Set(pending.map((p) => p.consentId)).size).toBe(1);
    expect(pending[0]).toMatchObject({ connection: 'notes', userId: 'erin' });
    expect(h.hits('/notes')).toHaveLength(0);
    await h.connect(h.iam, pending[0]!.url!, 'erin');
    for (const p of pending) t.afterConsent(first.state, p);
    await run(agent, first.state);
    const hits = h.hits('/notes');
    expect(hits.map((r) => r.url).sort()).toEqual(['/notes?tag=a', '/notes?tag=b']);
    expect(hits.every((r) => r.headers['x-end-user-id'] === 'erin')).toBe(true);
  });

  it('a policy denial and a request known only inside the tool come back as structured results', async () => {
    const { t, agent, model } = await agentFor(h.iam, [{ name: 'wipe', input: {} }, { name: 'refund_inside', input: { charge: 'ch_9' } }]);
    const result = await run(agent, 'go', { context: await t.runContext(await h.contextOf('alice')) });
    expect(result.interruptions ?? []).toHaveLength(0);
    const seen = JSON.stringify(model.seen);
    expect(seen).toContain('denied');
    expect(seen).toContain('approval_required');
    expect(h.api.received).toHaveLength(0);
  });

  it('a run saved with RunState.toString() resumes in a fresh agent on the same store, as the caller; the state holds no secret', async () => {
    const first = await agentFor(h.iam, refund(7, 'ch_7'));
    const paused = await run(first.agent, 'refund', { context: await first.t.runContext(await h.contextOf('dave'), { locale: 'en' }) });
    const saved = paused.state.toString();
    expectNoSecrets(h, saved);
    expect(saved).toMatch(/ags_[A-Za-z0-9_-]{22}/);

    const other = await agentFor(h.newIam(), refund(7, 'ch_7'));
    const state = await RunState.fromString(other.agent, saved);
    const [pending] = await other.t.pendingApprovals(state);
    expect(pending).toMatchObject({ userId: 'dave' });
    await other.t.approve(state, pending!, { approver: APPROVER });
    await run(other.agent, state);
    const hits = h.hits('/pay/refunds');
    expect(hits).toHaveLength(1);
    expect(hits[0]!.headers['x-end-user-id']).toBe('dave');
  });
});
