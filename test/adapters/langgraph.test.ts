/**
 * agent-iam/langgraph with real LangGraph.js: a StateGraph (model node + ToolNode) with a
 * MemorySaver checkpointer. Approvals and consent pause inside the tool with interrupt(); resuming
 * with Command({ resume }) runs it again, and the approval bound in agent-iam to the exact request
 * lets it through once. A copy of the checkpointer's bytes resumes in another agent.
 */
import { AIMessage, type BaseMessage } from '@langchain/core/messages';
import { Annotation, END, MemorySaver, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ToolNode } from '@langchain/langgraph/prebuilt';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLangGraphTools, type LangGraphPendingApproval } from '../../src/adapters/langgraph.js';
import type { ApprovalPause, ConsentPause } from '../../src/adapters/agent-tools.js';
import type { AgentIam } from '../../src/index.js';
import { APPROVER, expectNoSecrets, startHarness, type Harness } from './frameworks/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(() => h.api.clear());

const State = Annotation.Root({ ...MessagesAnnotation.spec, agentIamSession: Annotation<string | undefined>() });

type Call = { name: string; args: Record<string, unknown> };

async function graphFor(iam: AgentIam, calls: Call[], checkpointer: MemorySaver) {
  const t = await createLangGraphTools(iam, { store: h.store });
  const api = h.api.origin;
  const tools = [
    t.tool({
      name: 'refund',
      description: 'Refund a charge',
      schema: z.object({ charge: z.string(), amount: z.number() }),
      request: ({ charge, amount }) => ({ url: `${api}/pay/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
    }),
    t.tool({ name: 'notes', description: 'Notes', schema: z.object({ tag: z.string() }), request: ({ tag }) => ({ url: `${api}/notes?tag=${tag}` }) }),
    t.tool({ name: 'wipe', description: 'Wipe', schema: z.object({}), request: () => ({ url: `${api}/admin/wipe`, method: 'POST' }) }),
  ];
  const seen: string[] = [];
  let n = 0;
  // a scripted model: tool calls on the user's turn, then what it read from the tool messages
  const model = async (state: typeof State.State) => {
    const results = state.messages.filter((m: BaseMessage) => m.getType() === 'tool');
    if (results.length > 0) {
      seen.push(results.map((m: BaseMessage) => String(m.content)).join('\n'));
      return { messages: [new AIMessage('done')] };
    }
    return { messages: [new AIMessage({ content: '', tool_calls: calls.map((c) => ({ id: `call_${++n}`, name: c.name, args: c.args })) })] };
  };
  const graph = new StateGraph(State)
    .addNode('agent', model)
    .addNode('tools', new ToolNode(tools))
    .addEdge(START, 'agent')
    .addConditionalEdges('agent', t.routeToolCalls('tools', END), ['tools', END])
    .addEdge('tools', 'agent')
    .compile({ checkpointer });
  return { t, graph, seen };
}

const thread = (id: string) => ({ configurable: { thread_id: id } });
const interruptsOf = (r: unknown) => ((r as { __interrupt__?: { id: string; value: unknown }[] }).__interrupt__ ?? []);

describe('agent-iam/langgraph', () => {
  it('interrupts for agent-iam approval; approving and resuming lets exactly that request through once, as the caller', async () => {
    const { t, graph, seen } = await graphFor(h.iam, [{ name: 'refund', args: { charge: 'ch_1', amount: 20 } }], new MemorySaver());
    const config = thread('approve');
    const paused = await graph.invoke({ messages: [{ role: 'user', content: 'refund' }], agentIamSession: await t.session(await h.contextOf('alice')) }, config);
    const [pending] = await t.pendingApprovals(interruptsOf(paused));
    expect(pending).toMatchObject({ type: 'agent-iam.approval', tool: 'pay', toolName: 'refund', userId: 'alice', method: 'POST', path: '/pay/refunds', description: 'Refund 20 EUR on ch_1' });
    expect(h.hits('/pay/refunds')).toHaveLength(0);

    await graph.invoke(t.resume(await t.approve(pending!, { approver: APPROVER })), config);
    const hits = h.hits('/pay/refunds', 'POST');
    expect(hits).toHaveLength(1);
    expect(JSON.parse(hits[0]!.body.toString())).toEqual({ charge: 'ch_1', amount: 20 });
    expect(hits[0]!.headers['x-end-user-id']).toBe('alice');
    expect(seen.join()).toContain('"status":200');
    expect((await h.iam.approvals!.get((pending as ApprovalPause).approvalId))?.status).toBe('consumed');
  });

  it('a denial reaches the model as a tool message with the reason; nothing is sent', async () => {
    const { t, graph, seen } = await graphFor(h.iam, [{ name: 'refund', args: { charge: 'ch_2', amount: 900 } }], new MemorySaver());
    const config = thread('deny');
    const paused = await graph.invoke({ messages: [{ role: 'user', content: 'refund' }], agentIamSession: await t.session(await h.contextOf('alice')) }, config);
    const [pending] = await t.pendingApprovals(interruptsOf(paused));
    const done = await graph.invoke(t.resume(await t.deny(pending!, { approver: APPROVER, reason: 'Refunds over 500 EUR need a ticket' })), config);
    expect(interruptsOf(done)).toHaveLength(0);
    expect(seen.join()).toContain('Refunds over 500 EUR need a ticket');
    expect(seen.join()).toContain('"status":"denied"');
    expect(h.hits('/pay/refunds')).toHaveLength(0);
  });

  it('changed arguments after the pause need a new approval: resuming pauses again for the new request', async () => {
    const { t, graph } = await graphFor(h.iam, [{ name: 'refund', args: { charge: 'ch_3', amount: 10 } }], new MemorySaver());
    const config = thread('changed');
    const paused = await graph.invoke({ messages: [{ role: 'user', content: 'refund' }], agentIamSession: await t.session(await h.contextOf('alice')) }, config);
    const [pending] = await t.pendingApprovals(interruptsOf(paused));
    const approved = (pending as ApprovalPause).approvalId;
    const answer = await t.approve(pending!, { approver: APPROVER });
    // the state is edited while paused: the tool call now asks for another amount
    const snapshot = await graph.getState(config);
    const ai = snapshot.values.messages.at(-1) as AIMessage;
    await graph.updateState(config, { messages: [new AIMessage({ id: ai.id, content: '', tool_calls: [{ ...ai.tool_calls![0]!, args: { charge: 'ch_3', amount: 9999 } }] })] }, 'agent');
    const again = await graph.invoke(t.resume(answer), config);
    expect(h.hits('/pay/refunds')).toHaveLength(0);
    const [next] = await t.pendingApprovals(interruptsOf(again));
    expect(next).toMatchObject({ type: 'agent-iam.approval', method: 'POST' });
    expect((next as ApprovalPause).approvalId).not.toBe(approved);
    expect((await h.iam.approvals!.get(approved))?.status).toBe('approved'); // still only for amount 10
  });

  it('consent: one connect request for parallel calls; after the callback, resuming runs the tools with the new account', async () => {
    const { t, graph, seen } = await graphFor(h.iam, [{ name: 'notes', args: { tag: 'a' } }, { name: 'notes', args: { tag: 'b' } }], new MemorySaver());
    const config = thread('consent');
    const paused = await graph.invoke({ messages: [{ role: 'user', content: 'notes' }], agentIamSession: await t.session(await h.contextOf('frank')) }, config);
    const pending = (await t.pendingApprovals(interruptsOf(paused))) as (ConsentPause & LangGraphPendingApproval)[];
    expect(pending.map((p) => p.type)).toEqual(['agent-iam.consent', 'agent-iam.consent']);
    expect(new Set(pending.map((p) => p.consentId)).size).toBe(1);
    expect(pending[0]).toMatchObject({ connection: 'notes', userId: 'frank' });
    expect(h.hits('/notes')).toHaveLength(0);
    await h.connect(h.iam, pending[0]!.url!, 'frank');
    const done = await graph.invoke(t.resume(...pending.map((p) => t.afterConsent(p))), config);
    expect(interruptsOf(done)).toHaveLength(0);
    const hits = h.hits('/notes');
    expect(hits.map((r) => r.url).sort()).toEqual(['/notes?tag=a', '/notes?tag=b']);
    expect(hits.every((r) => r.headers['x-end-user-id'] === 'frank')).toBe(true);
    expect(seen.join()).toContain('"status":200');
  });

  it('a policy denial comes back as a denied tool message, without a pause', async () => {
    const { t, graph, seen } = await graphFor(h.iam, [{ name: 'wipe', args: {} }], new MemorySaver());
    const done = await graph.invoke({ messages: [{ role: 'user', content: 'wipe' }], agentIamSession: await t.session(await h.contextOf('alice')) }, thread('policy'));
    expect(interruptsOf(done)).toHaveLength(0);
    expect(seen.join()).toContain('does not allow');
    expect(h.api.received).toHaveLength(0);
  });

  it('a checkpoint copied to another agent on the same store resumes as the caller; it holds no secret', async () => {
    const saver = new MemorySaver();
    const first = await graphFor(h.iam, [{ name: 'refund', args: { charge: 'ch_7', amount: 7 } }], saver);
    const config = thread('restored');
    await first.graph.invoke({ messages: [{ role: 'user', content: 'refund' }], agentIamSession: await first.t.session(await h.contextOf('dave')) }, config);
    // what was persisted: the checkpointer's bytes
    const text = new TextDecoder();
    const dump = JSON.stringify({ storage: saver.storage, writes: saver.writes }, (_k, v: unknown) => (v instanceof Uint8Array ? text.decode(v) : v));
    expectNoSecrets(h, dump);
    expect(dump).toMatch(/ags_[A-Za-z0-9_-]{22}/);

    const copy = new MemorySaver();
    copy.storage = structuredClone(saver.storage);
    copy.writes = structuredClone(saver.writes);
    const other = await graphFor(h.newIam(), [], copy);
    const snapshot = await other.graph.getState(config);
    const [pending] = await other.t.pendingApprovals(snapshot.tasks.flatMap((task) => task.interrupts));
    expect(pending).toMatchObject({ userId: 'dave', method: 'POST' });
    await other.graph.invoke(other.t.resume(await other.t.approve(pending!, { approver: APPROVER })), config);
    const hits = h.hits('/pay/refunds');
    expect(hits).toHaveLength(1);
    expect(hits[0]!.headers['x-end-user-id']).toBe('dave');
  });
});
