/**
 * A LangGraph.js agent whose refund tool goes through agent-iam: the request is known only inside
 * the tool, so agent-iam pauses there with `interrupt()`; the checkpointer saves the pause (ids, no
 * token), a lead approves in agent-iam from a "second process" (a new agent and graph on the same
 * store and checkpoint), and `Command({ resume })` runs the tool again: exactly that refund passes
 * once, for the user who asked.
 *
 *   npx tsx examples/langgraph/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing), a refunds API that
 * prints what it receives, and a scripted model node that asks for one refund. It prints each step
 * (never a token or a key) and exits 0 (1 if anything was not as expected).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AIMessage } from '@langchain/core/messages';
import { Annotation, END, MemorySaver, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ToolNode } from '@langchain/langgraph/prebuilt';
import { z } from 'zod';
import { createAgentIam, createKeyValueStore } from 'agent-iam';
import { createLangGraphTools } from 'agent-iam/langgraph';
import { createTestIdentityProvider } from 'agent-iam/testing';

const log = (step: string, detail: unknown = ''): void => console.log(`- ${step}`, typeof detail === 'string' ? detail : JSON.stringify(detail));

// The refunds API: records what reaches it.
const received: { body: string; user: string | undefined; key: boolean }[] = [];
const api = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c));
  req.on('end', () => {
    received.push({ body, user: req.headers['x-end-user-id'] as string | undefined, key: req.headers.authorization === 'Bearer sk_demo_refunds' });
    console.log(`  [refunds API] ${req.method} ${req.url} ${body} for ${req.headers['x-end-user-id']}`);
    res.setHeader('content-type', 'application/json').end(JSON.stringify({ refund: 're_1', status: 'succeeded' }));
  });
});
await new Promise<void>((ok) => api.listen(0, '127.0.0.1', ok));
const apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
const idp = await createTestIdentityProvider();

// One store shared by every process of the agent (in production: agent-iam/redis or /postgres).
const store = createKeyValueStore();
const agentIam = () =>
  createAgentIam({
    agent: { id: 'shop-agent' },
    store,
    verifier: { providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['urn:shop'], userIdClaim: 'sub' }] },
    tools: [{ name: 'payments', baseUrl: apiUrl, auth: { type: 'apiKey', key: 'sk_demo_refunds' } }],
    policies: [
      { agent: 'shop-agent', tool: 'payments' },
      { agent: 'shop-agent', tool: 'payments', effect: 'approval', capabilities: [{ method: 'POST', path: '/refunds' }] },
    ],
  });

// The graph state keeps the run's agent-iam session: an id.
const State = Annotation.Root({ ...MessagesAnnotation.spec, agentIamSession: Annotation<string | undefined>() });
const checkpointer = new MemorySaver(); // in production a durable checkpointer (PostgreSQL, Redis, ...)

async function shopGraph(iam: ReturnType<typeof agentIam>) {
  const t = await createLangGraphTools(iam, { store });
  const refund = t.tool({
    name: 'refund',
    description: 'Refund a charge',
    schema: z.object({ charge: z.string(), amount: z.number() }),
    request: ({ charge, amount }) => ({ url: `${apiUrl}/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
  });
  // A scripted model node: asks for a refund, then reports what the tool answered.
  const model = async (state: typeof State.State) => {
    const last = state.messages.at(-1);
    if (last?.getType() === 'tool') return { messages: [new AIMessage(`Done: ${String(last.content)}`)] };
    return { messages: [new AIMessage({ content: '', tool_calls: [{ id: 'call_1', name: 'refund', args: { charge: 'ch_1', amount: 20 } }] })] };
  };
  const graph = new StateGraph(State)
    .addNode('agent', model)
    .addNode('tools', new ToolNode([refund]))
    .addEdge(START, 'agent')
    .addConditionalEdges('agent', t.routeToolCalls('tools', END), ['tools', END])
    .addEdge('tools', 'agent')
    .compile({ checkpointer });
  return { t, graph };
}

let exitCode = 0;
try {
  const config = { configurable: { thread_id: 'refund-1' } };
  // Process 1: alice asks (in an app, agentAuth verified her; here the script verifies a token itself).
  const one = agentIam();
  const alice = await one.verifier.verify({ headers: { authorization: `Bearer ${await idp.tokenFor({ userId: 'alice', audience: 'urn:shop' })}` } });
  const a = await shopGraph(one);
  const paused = await a.graph.invoke({ messages: [{ role: 'user', content: 'Refund 20 EUR on ch_1' }], agentIamSession: await a.t.session(alice) }, config);
  log(`paused: ${((paused as { __interrupt__?: unknown[] }).__interrupt__ ?? []).length} interrupt(s); sent to the API so far`, received.length);

  // Process 2: a new agent and graph on the same store and checkpoint; a lead reviews and approves.
  const b = await shopGraph(agentIam());
  const snapshot = await b.graph.getState(config);
  const [pending] = await b.t.pendingApprovals(snapshot.tasks.flatMap((task) => task.interrupts));
  if (pending === undefined) throw new Error('no pending approval');
  log('the approver sees', pending.text);
  const done = await b.graph.invoke(b.t.resume(await b.t.approve(pending, { approver: 'lead@example.com' })), config);
  log('model', String(done.messages.at(-1)?.content).slice(0, 80));
  const ok = received.length === 1 && received[0]?.user === 'alice' && received[0]?.key === true;
  if (!ok) throw new Error('unexpected API calls');
  console.log(JSON.stringify({ ok, paused: true, approvedBy: 'lead@example.com', apiCalls: received.length, user: received[0]?.user, body: JSON.parse(received[0]?.body ?? '{}') }));
} catch (e) {
  console.error('failed:', e);
  exitCode = 1;
} finally {
  api.close();
  await idp.close();
}
process.exit(exitCode);
