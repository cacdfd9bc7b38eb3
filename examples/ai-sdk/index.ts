/**
 * A Vercel AI SDK agent whose refund tool goes through agent-iam: policy says a refund needs a
 * human, so the AI SDK pauses with its own tool-approval request; a lead approves in agent-iam,
 * and the resumed run (in a "second process": a new agent on the same store) sends exactly that
 * refund once, for the user who asked.
 *
 *   npx tsx examples/ai-sdk/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing), a refunds API that
 * prints what it receives, and a scripted model (the AI SDK's MockLanguageModelV4) that asks for one
 * refund. It prints each step (never a token or a key) and exits 0 (1 if anything was not as expected).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateText, stepCountIs, type ModelMessage } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { z } from 'zod';
import { createAgentIam, createKeyValueStore } from 'agent-iam';
import { createAiSdkTools } from 'agent-iam/ai-sdk';
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

async function tools(iam: ReturnType<typeof agentIam>) {
  const t = await createAiSdkTools(iam, { store });
  const set = {
    refund: t.tool({
      description: 'Refund a charge',
      inputSchema: z.object({ charge: z.string(), amount: z.number() }),
      request: ({ charge, amount }) => ({ url: `${apiUrl}/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
    }),
  };
  return { t, set };
}

// A scripted model: asks for a refund, then reports what the tool answered.
const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
const model = new MockLanguageModelV4({
  doGenerate: async ({ prompt }) =>
    prompt.at(-1)?.role === 'tool'
      ? { content: [{ type: 'text', text: `Done: ${JSON.stringify(prompt.at(-1)?.content)}` }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] }
      : { content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'refund', input: JSON.stringify({ charge: 'ch_1', amount: 20 }) }], finishReason: { unified: 'tool-calls', raw: undefined }, usage, warnings: [] },
});

let exitCode = 0;
try {
  // Process 1: alice asks (in an app, agentAuth verified her; here the script verifies a token itself).
  const one = agentIam();
  const alice = await one.verifier.verify({ headers: { authorization: `Bearer ${await idp.tokenFor({ userId: 'alice', audience: 'urn:shop' })}` } });
  const a = await tools(one);
  const session = await a.t.session(alice); // an id; the chat keeps it with its messages
  const messages: ModelMessage[] = [{ role: 'user', content: 'Refund 20 EUR on ch_1' }];
  const first = await generateText({ model, tools: a.set, messages, toolApproval: a.t.toolApproval(a.set), toolsContext: a.t.toolsContext(a.set, session), stopWhen: stepCountIs(3) });
  const saved = JSON.stringify({ messages: [...messages, ...first.response.messages], session }); // what the app persists
  log('paused for approval; sent to the API so far', received.length);

  // Process 2: a new agent on the same store; a lead reviews and approves.
  const two = agentIam();
  const b = await tools(two);
  const chat = JSON.parse(saved) as { messages: ModelMessage[]; session: string };
  const [pending] = await b.t.pendingApprovals(chat.messages, b.set, { session: chat.session });
  if (pending === undefined) throw new Error('no pending approval');
  log('the approver sees', pending.text);
  const answer = await b.t.approve(pending, { approver: 'lead@example.com' });
  const done = await generateText({ model, tools: b.set, messages: [...chat.messages, { role: 'tool', content: [answer] }], toolApproval: b.t.toolApproval(b.set), toolsContext: b.t.toolsContext(b.set, chat.session), stopWhen: stepCountIs(3) });
  log('model', done.text.slice(0, 80));
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
