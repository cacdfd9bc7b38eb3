/**
 * A Mastra agent whose refund tool goes through agent-iam: policy says a refund needs a human, so
 * the tool's `requireApproval` pauses the run (`tool-call-approval`); Mastra saves it in its
 * storage (ids, no token), a lead approves in agent-iam from a "second process" (a new agent-iam
 * and Mastra on the same stores), and the resumed run sends exactly that refund once, for the user
 * who asked.
 *
 *   npx tsx examples/mastra/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing), a refunds API that
 * prints what it receives, and a scripted AI SDK model (MockLanguageModelV4) that asks for one
 * refund. It prints each step (never a token or a key) and exits 0 (1 if anything was not as expected).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Mastra } from '@mastra/core';
import { Agent } from '@mastra/core/agent';
import { InMemoryStore } from '@mastra/core/storage';
import { convertArrayToReadableStream, MockLanguageModelV4 } from 'ai/test';
import { z } from 'zod';
import { createAgentIam, createKeyValueStore } from 'agent-iam';
import { createMastraTools } from 'agent-iam/mastra';
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

// A scripted model: asks for a refund, then reports what the tool answered.
const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
const finish = (unified: 'stop' | 'tool-calls') => ({ type: 'finish' as const, finishReason: { unified, raw: undefined }, usage });
const model = new MockLanguageModelV4({
  doStream: async ({ prompt }) => {
    const last = prompt.at(-1);
    if (last?.role === 'tool') {
      const text = `Done: ${JSON.stringify(last.content)}`;
      return { stream: convertArrayToReadableStream([{ type: 'stream-start', warnings: [] }, { type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: text }, { type: 'text-end', id: 't' }, finish('stop')]) };
    }
    const call = { type: 'tool-call' as const, toolCallId: 'call_1', toolName: 'refund', input: JSON.stringify({ charge: 'ch_1', amount: 20 }) };
    return { stream: convertArrayToReadableStream([{ type: 'stream-start' as const, warnings: [] }, call, finish('tool-calls')]) };
  },
});
const storage = new InMemoryStore(); // Mastra's own storage (in production LibSQL, PostgreSQL, ...)

async function shopAgent(iam: ReturnType<typeof agentIam>) {
  const t = await createMastraTools(iam, { store });
  const refund = t.tool({
    id: 'refund',
    description: 'Refund a charge',
    inputSchema: z.object({ charge: z.string(), amount: z.number() }),
    request: ({ charge, amount }) => ({ url: `${apiUrl}/refunds`, method: 'POST', body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} EUR on ${charge}` }),
  });
  const mastra = new Mastra({ agents: { shop: new Agent({ id: 'shop', name: 'Shop', instructions: 'Help the user.', model: model as never, tools: { refund } }) }, storage, logger: false });
  return { t, agent: mastra.getAgent('shop') };
}

let exitCode = 0;
try {
  // Process 1: alice asks (in an app, agentAuth verified her; here the script verifies a token itself).
  const one = agentIam();
  const alice = await one.verifier.verify({ headers: { authorization: `Bearer ${await idp.tokenFor({ userId: 'alice', audience: 'urn:shop' })}` } });
  const a = await shopAgent(one);
  const runOptions = await a.t.runOptions(alice);
  await (await a.agent.stream('Refund 20 EUR on ch_1', runOptions)).consumeStream();
  log('paused for approval; sent to the API so far', received.length);

  // Process 2: a new agent-iam and Mastra on the same stores; a lead reviews and approves.
  const b = await shopAgent(agentIam());
  const [pending] = await b.t.pendingApprovals(b.agent, runOptions.runId);
  if (pending === undefined) throw new Error('no pending approval');
  log('the approver sees', pending.text);
  const resumed = await b.t.approve(b.agent, pending, { approver: 'lead@example.com' });
  log('model', (await resumed.text).slice(0, 80));
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
