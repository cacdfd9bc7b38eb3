/**
 * An OpenAI Agents SDK agent whose refund tool goes through agent-iam: policy says a refund needs a
 * human, so the run stops with an interruption (`result.interruptions`); the run state is saved
 * (`state.toString()`: ids, no token), a lead approves in agent-iam from a "second process" (a new
 * agent on the same store, `RunState.fromString`), and the resumed run sends exactly that refund
 * once, for the user who asked.
 *
 *   npx tsx examples/openai-agents/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing), a refunds API that
 * prints what it receives, and a scripted Model that asks for one refund. It prints each step (never
 * a token or a key) and exits 0 (1 if anything was not as expected).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, run, RunState, setTracingDisabled, Usage, type Model, type ModelRequest, type ModelResponse } from '@openai/agents';
import { z } from 'zod';
import { createAgentIam, createKeyValueStore } from 'agent-iam';
import { createOpenAIAgentsTools } from 'agent-iam/openai-agents';
import { createTestIdentityProvider } from 'agent-iam/testing';

setTracingDisabled(true); // a local demo: no traces sent anywhere

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

// A scripted model: asks for a refund, then reports what the tool answered.
const model: Model = {
  async getResponse({ input }: ModelRequest): Promise<ModelResponse> {
    const last = Array.isArray(input) ? (input.at(-1) as { type?: string; output?: unknown }) : undefined;
    if (last?.type === 'function_call_result') return { usage: new Usage(), output: [{ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: `Done: ${JSON.stringify(last.output)}` }] }] };
    return { usage: new Usage(), output: [{ type: 'function_call', callId: 'call_1', name: 'refund', arguments: JSON.stringify({ charge: 'ch_1', amount: 20 }), status: 'completed' }] };
  },
  // eslint-disable-next-line require-yield
  async *getStreamedResponse() {
    throw new Error('not streamed');
  },
};

async function shopAgent(iam: ReturnType<typeof agentIam>) {
  const t = await createOpenAIAgentsTools(iam, { store });
  const refund = t.tool({
    name: 'refund',
    description: 'Refund a charge',
    parameters: z.object({ charge: z.string(), amount: z.number() }),
    request: ({ charge, amount }) => ({ url: `${apiUrl}/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
  });
  return { t, agent: new Agent({ name: 'shop', instructions: 'Help the user.', model, tools: [refund] }) };
}

let exitCode = 0;
try {
  // Process 1: alice asks (in an app, agentAuth verified her; here the script verifies a token itself).
  const one = agentIam();
  const alice = await one.verifier.verify({ headers: { authorization: `Bearer ${await idp.tokenFor({ userId: 'alice', audience: 'urn:shop' })}` } });
  const a = await shopAgent(one);
  const first = await run(a.agent, 'Refund 20 EUR on ch_1', { context: await a.t.runContext(alice) });
  const saved = first.state.toString(); // what the app persists: ids, no token
  log(`paused: ${first.interruptions.length} interruption(s); sent to the API so far`, received.length);

  // Process 2: a new agent on the same store; a lead reviews and approves.
  const b = await shopAgent(agentIam());
  const state = await RunState.fromString(b.agent, saved);
  const [pending] = await b.t.pendingApprovals(state);
  if (pending === undefined) throw new Error('no pending approval');
  log('the approver sees', pending.text);
  await b.t.approve(state, pending, { approver: 'lead@example.com' });
  const done = await run(b.agent, state);
  log('model', String(done.finalOutput).slice(0, 80));
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
