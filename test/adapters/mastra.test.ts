/**
 * agent-iam/mastra with real Mastra (an Agent in a Mastra instance with an InMemoryStore) and an
 * AI SDK mock model: agent-iam approvals and consent as Mastra's approval pause (requireApproval)
 * and as suspend() inside a tool, resumed with approveToolCall / declineToolCall / resumeStream,
 * in this process or from another Mastra on the same storage.
 */
import { Mastra } from '@mastra/core';
import { Agent } from '@mastra/core/agent';
import { InMemoryStore } from '@mastra/core/storage';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createMastraTools, type MastraPendingApproval } from '../../src/adapters/mastra.js';
import type { ApprovalPause, ConsentPause } from '../../src/adapters/agent-tools.js';
import type { AgentIam } from '../../src/index.js';
import { scriptedStreamModel, type ScriptedCall } from './frameworks/ai-model.js';
import { APPROVER, expectNoSecrets, startHarness, type Harness } from './frameworks/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(() => h.api.clear());

async function agentFor(iam: AgentIam, calls: ScriptedCall[], storage: InMemoryStore) {
  const t = await createMastraTools(iam, { store: h.store });
  const api = h.api.origin;
  const model = scriptedStreamModel(calls);
  // MockLanguageModelV4 is the AI SDK's; Mastra takes LanguageModelV4 models (its own type differs in doGenerate's result)
  const tools = {
    refund: t.tool({
      id: 'refund',
      description: 'Refund a charge',
      inputSchema: z.object({ charge: z.string(), amount: z.number() }),
      request: ({ charge, amount }) => ({ url: `${api}/pay/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
    }),
    notes: t.tool({ id: 'notes', description: 'Notes', inputSchema: z.object({ tag: z.string() }), request: ({ tag }) => ({ url: `${api}/notes?tag=${tag}` }) }),
    // the request is known only inside: agent-iam pauses it with suspend()
    refund_inside: t.tool({
      id: 'refund_inside',
      description: 'Refund, request built inside',
      inputSchema: z.object({ charge: z.string(), amount: z.number() }),
      execute: async ({ charge, amount }, r) => (await r.fetch(`${api}/pay/refunds`, { method: 'POST', body: JSON.stringify({ charge, amount }) })).status,
    }),
  };
  const agent = new Agent({ id: 'shop', name: 'shop', instructions: 'Help the user.', model: model as never, tools });
  const mastra = new Mastra({ agents: { shop: agent }, storage, logger: false });
  return { t, agent: mastra.getAgent('shop'), model };
}

async function drain(out: { fullStream: AsyncIterable<unknown> }): Promise<string[]> {
  const types: string[] = [];
  for await (const c of out.fullStream) types.push((c as { type: string }).type);
  return types;
}

describe('agent-iam/mastra', () => {
  it('requireApproval from agent-iam policy: approving resumes and lets exactly that request through once, as the caller', async () => {
    const { t, agent, model } = await agentFor(h.iam, [{ toolName: 'refund', input: { charge: 'ch_1', amount: 20 } }], new InMemoryStore());
    const run = await t.runOptions(await h.contextOf('alice'));
    expect(await drain(await agent.stream('refund ch_1', run))).toContain('tool-call-approval');
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    const [pending] = await t.pendingApprovals(agent, run.runId);
    expect(pending).toMatchObject({ type: 'agent-iam.approval', pausedBy: 'approval', tool: 'pay', toolName: 'refund', userId: 'alice', method: 'POST', path: '/pay/refunds', description: 'Refund 20 EUR on ch_1' });
    await drain(await t.approve(agent, pending!, { approver: APPROVER }));
    const hits = h.hits('/pay/refunds', 'POST');
    expect(hits).toHaveLength(1);
    expect(JSON.parse(hits[0]!.body.toString())).toEqual({ charge: 'ch_1', amount: 20 });
    expect(hits[0]!.headers['x-end-user-id']).toBe('alice');
    expect(JSON.stringify(model.seen)).toContain('"status":200');
    expect((await h.iam.approvals!.get((pending as ApprovalPause).approvalId))?.status).toBe('consumed');
  });

  it('a denial declines the call with the reason, which the model reads; nothing is sent', async () => {
    const { t, agent, model } = await agentFor(h.iam, [{ toolName: 'refund', input: { charge: 'ch_2', amount: 900 } }], new InMemoryStore());
    const run = await t.runOptions(await h.contextOf('alice'));
    await drain(await agent.stream('refund', run));
    const [pending] = await t.pendingApprovals(agent, run.runId);
    await drain(await t.deny(agent, pending!, { approver: APPROVER, reason: 'Refunds over 500 EUR need a ticket' }));
    expect(JSON.stringify(model.seen)).toContain('Denied by lead@example.com: Refunds over 500 EUR need a ticket');
    expect(h.hits('/pay/refunds')).toHaveLength(0);
  });

  it('inside the tool: suspend() for approval; changed arguments after the pause need a new approval', async () => {
    const storage = new InMemoryStore();
    const { t, agent } = await agentFor(h.iam, [{ toolName: 'refund_inside', input: { charge: 'ch_3', amount: 10 } }], storage);
    const run = await t.runOptions(await h.contextOf('alice'));
    expect(await drain(await agent.stream('refund', run))).toContain('tool-call-suspended');
    const [pending] = await t.pendingApprovals(agent, run.runId);
    expect(pending).toMatchObject({ type: 'agent-iam.approval', pausedBy: 'suspend', userId: 'alice', method: 'POST' });
    const approved = (pending as ApprovalPause).approvalId;
    await h.iam.approvals!.approve(approved, { approver: APPROVER });
    // the saved run comes back with another amount in the paused call
    const workflows = await storage.getStore('workflows');
    for (const workflowName of ['agentic-loop', 'executionWorkflow']) {
      const saved = await workflows!.getWorkflowRunById({ runId: run.runId, workflowName });
      if (saved === null) continue;
      const edited = JSON.parse(JSON.stringify(saved.snapshot).replaceAll('"amount":10', '"amount":9999'));
      await workflows!.persistWorkflowSnapshot({ workflowName, runId: run.runId, snapshot: edited });
    }
    const types = await drain(await t.afterConsent(agent, { ...pending!, pausedBy: 'suspend' }));
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    expect(types).toContain('tool-call-suspended'); // paused again, for the new request
    const [next] = await t.pendingApprovals(agent, run.runId);
    expect((next as ApprovalPause | undefined)?.approvalId).not.toBe(approved);
    expect((await h.iam.approvals!.get(approved))?.status).toBe('approved'); // still only for amount 10
  });

  it('consent: one connect request for parallel calls; after the callback, resuming runs the tools with the new account', async () => {
    const { t, agent } = await agentFor(h.iam, [{ toolName: 'notes', input: { tag: 'a' } }, { toolName: 'notes', input: { tag: 'b' } }], new InMemoryStore());
    const run = await t.runOptions(await h.contextOf('gina'));
    await drain(await agent.stream('notes', run));
    let pending = (await t.pendingApprovals(agent, run.runId)) as (ConsentPause & MastraPendingApproval)[];
    expect(pending.length).toBeGreaterThan(0);
    expect(pending.every((p) => p.type === 'agent-iam.consent' && p.connection === 'notes' && p.userId === 'gina')).toBe(true);
    const consentIds = new Set(pending.map((p) => p.consentId));
    expect(consentIds.size).toBe(1);
    expect(h.hits('/notes')).toHaveLength(0);
    await h.connect(h.iam, pending[0]!.url!, 'gina');
    // resume each paused call (Mastra pauses parallel approvals one at a time)
    for (let i = 0; i < 4 && pending.length > 0; i++) {
      await drain(await t.afterConsent(agent, pending[0]!));
      pending = (await t.pendingApprovals(agent, run.runId)) as (ConsentPause & MastraPendingApproval)[];
      // the second call: nothing left to ask once the account is connected
      for (const p of pending) expect(p.type).toBe('agent-iam.ready');
    }
    const hits = h.hits('/notes');
    expect(hits.map((r) => r.url).sort()).toEqual(['/notes?tag=a', '/notes?tag=b']);
    expect(hits.every((r) => r.headers['x-end-user-id'] === 'gina')).toBe(true);
  });

  it('a run saved in Mastra storage resumes from another Mastra and agent on the same stores, as the caller; it holds no secret', async () => {
    const storage = new InMemoryStore();
    const first = await agentFor(h.iam, [{ toolName: 'refund', input: { charge: 'ch_7', amount: 7 } }], storage);
    const run = await first.t.runOptions(await h.contextOf('dave'));
    await drain(await first.agent.stream('refund', run));
    const workflows = await storage.getStore('workflows');
    const dump = JSON.stringify(await workflows!.listWorkflowRuns({}));
    expectNoSecrets(h, dump);
    expect(dump).toMatch(/ags_[A-Za-z0-9_-]{22}/);

    const other = await agentFor(h.newIam(), [], storage);
    const [pending] = await other.t.pendingApprovals(other.agent, run.runId);
    expect(pending).toMatchObject({ userId: 'dave', method: 'POST' });
    await drain(await other.t.approve(other.agent, pending!, { approver: APPROVER }));
    const hits = h.hits('/pay/refunds');
    expect(hits).toHaveLength(1);
    expect(hits[0]!.headers['x-end-user-id']).toBe('dave');
  });
});
