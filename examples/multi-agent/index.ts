/**
 * Multi-agent delegation with agent-iam: orchestrator → search agent → summarizer, every hop
 * verified, every hop with its own narrower token, every decision audited with the actor chain.
 *
 *   npm run build && npx tsx examples/multi-agent/index.ts
 *
 * Everything runs on 127.0.0.1. A local identity provider (agent-iam/testing, a real oidc-provider)
 * issues the user's token and is the RFC 8693 token-exchange service; each agent is a client there,
 * and that client identity is what the next token names in its `act` claim.
 *
 *   user ──token (aud orchestrator)──▶ orchestrator (Express)
 *     ──exchanged token (aud search, act: orchestrator)──▶ search agent (Hono)
 *       ──API key──▶ docs index (a tool)
 *       ──exchanged token (aud summarizer, act: search-agent ← orchestrator)──▶ summarizer (Express)
 *
 * Exits 0 when every hop behaved as expected, 1 otherwise.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import { Hono } from 'hono';
import {
  createTokenManager,
  createToolFetch,
  createVerifier,
  jsonLinesAudit,
  renderError,
  verifyAuditChain,
  type AuditEvent,
  type AuditSink,
} from 'agent-iam';
import { agentAuth as expressAuth, requireScopes as expressScopes } from 'agent-iam/express';
import { agentAuth as honoAuth } from 'agent-iam/hono';
import { createTestIdentityProvider } from 'agent-iam/testing';

const ORCHESTRATOR = 'https://orchestrator.example.com';
const SEARCH = 'https://search-agent.example.com';
const SUMMARIZER = 'https://summarizer.example.com';
const INDEX_KEY = process.env.DOCS_INDEX_KEY ?? 'idx_demo_7c1d0e55';
const ALICE = 'alice@example.com';

setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 45_000).unref();

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
async function serveHono(app: Hono): Promise<{ server: Server; url: string }> {
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// ---- audit: each agent writes its own hash-chained JSON-lines log ----------------------------------
type AgentName = 'orchestrator' | 'search-agent' | 'summarizer';
const lines: Record<AgentName, string[]> = { orchestrator: [], 'search-agent': [], summarizer: [] };
const trail: Array<{ agent: AgentName; event: AuditEvent }> = [];
const logs = new Map<AgentName, ReturnType<typeof jsonLinesAudit>>();
function auditFor(agent: AgentName): AuditSink {
  const log = jsonLinesAudit((line) => void lines[agent].push(line.trimEnd()), { hashChain: true });
  logs.set(agent, log);
  return (event) => {
    trail.push({ agent, event });
    return log.write(event);
  };
}

async function main(): Promise<boolean> {
  const idp = await createTestIdentityProvider();
  // Each agent's identity at the identity provider: a confidential client. The token exchange
  // authenticates as this client, and the provider writes the client id into `act`.
  const orchestratorClient = await idp.registerClient({ client_id: 'orchestrator' });
  const searchClient = await idp.registerClient({ client_id: 'search-agent' });

  // ---- the docs index: a tool that wants an API key ------------------------------------------------
  const docsIndex = createServer((req, res) => {
    if (req.headers['x-api-key'] !== INDEX_KEY) {
      res.writeHead(401).end();
      return;
    }
    const q = new URL(req.url ?? '/', 'http://localhost').searchParams.get('q') ?? '';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ documents: [`${q}: an overview`, `${q} in practice`, `${q}: common mistakes`] }));
  });
  const docsUrl = await listen(docsIndex);

  // ---- summarizer (Express): end of the chain -----------------------------------------------------
  const summarizerAudit = auditFor('summarizer');
  const summarizerApp = express();
  summarizerApp.use(express.json());
  summarizerApp.use(
    expressAuth(
      createVerifier({
        providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [SUMMARIZER], maxDelegationDepth: 2 }],
        audit: summarizerAudit,
      }),
    ),
  );
  summarizerApp.post('/summarize', expressScopes('summarize'), (req, res) => {
    const ctx = req.agentContext!;
    const documents = (req.body as { documents?: string[] }).documents ?? [];
    res.json({
      summary: `${documents.length} documents; start with "${documents[0] ?? ''}"`,
      // What the summarizer knows about who is asking, all from its own verified token:
      forUser: ctx.userId,
      actorChain: ctx.actorChain.map((a) => a.subject),
      act: ctx.claims.act,
      scopes: ctx.scopes,
    });
  });
  const summarizer = createServer(summarizerApp);
  const summarizerUrl = await listen(summarizer);

  // ---- search agent (Hono): calls the index with its key and the summarizer with a delegated token ---
  const searchAudit = auditFor('search-agent');
  const searchFetch = createToolFetch({
    agent: { id: 'search-agent' },
    tools: [
      {
        name: 'docs-index',
        baseUrl: `${docsUrl}/index`,
        auth: { type: 'apiKey', key: INDEX_KEY, header: 'X-API-Key' },
        capabilities: [{ method: 'GET', path: '/index/search' }],
      },
      {
        name: 'summarizer',
        baseUrl: summarizerUrl,
        auth: { type: 'tokenExchange', connection: 'idp', audience: SUMMARIZER, scopes: ['summarize'] },
        capabilities: [{ method: 'POST', path: '/summarize' }],
      },
    ],
    // The search agent works only for requests that came through agents it trusts (every agent in
    // the chain must be listed): the orchestrator, and the assistant UI that may sit in front of it.
    policies: [{ agent: 'search-agent', tool: '*', actors: ['orchestrator', 'assistant-ui'] }],
    tokens: createTokenManager({
      connections: [{ id: 'idp', issuer: idp.issuer, clientId: searchClient.client_id, clientSecret: searchClient.client_secret as string }],
      audit: searchAudit,
    }),
    audit: searchAudit,
  });
  const searchApp = new Hono();
  searchApp.use(
    '*',
    honoAuth(createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [SEARCH] }], audit: searchAudit }), {
      requiredScopes: ['research'],
    }),
  );
  searchApp.get('/search', async (c) => {
    try {
      const found = (await (await searchFetch(`${docsUrl}/index/search?q=${encodeURIComponent(c.req.query('q') ?? '')}`)).json()) as {
        documents: string[];
      };
      const summary = await searchFetch(`${summarizerUrl}/summarize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ documents: found.documents }),
      });
      if (!summary.ok) {
        const refused = (await summary.json()) as { error?: string };
        return c.json({ error: 'SUMMARIZER_REFUSED', summarizer: refused.error }, 502);
      }
      return c.json({ documents: found.documents, summarizer: await summary.json() });
    } catch (error) {
      const r = renderError(error);
      return c.json(r.body, r.status as 403);
    }
  });
  const search = await serveHono(searchApp);

  // ---- orchestrator (Express): the user's entry point ----------------------------------------------
  const orchestratorAudit = auditFor('orchestrator');
  const orchestratorFetch = createToolFetch({
    agent: { id: 'orchestrator' },
    tools: [
      {
        name: 'search-agent',
        baseUrl: search.url,
        // Only what the search agent needs, and never more than the user's own token holds.
        auth: { type: 'tokenExchange', connection: 'idp', audience: SEARCH, scopes: ['research', 'summarize'] },
        capabilities: [{ method: 'GET', path: '/search' }],
      },
    ],
    policies: [{ agent: 'orchestrator', tool: 'search-agent' }],
    tokens: createTokenManager({
      connections: [
        { id: 'idp', issuer: idp.issuer, clientId: orchestratorClient.client_id, clientSecret: orchestratorClient.client_secret as string },
      ],
      audit: orchestratorAudit,
    }),
    audit: orchestratorAudit,
  });
  const orchestratorApp = express();
  orchestratorApp.use(express.json());
  orchestratorApp.use(
    expressAuth(createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [ORCHESTRATOR] }], audit: orchestratorAudit })),
  );
  orchestratorApp.post('/ask', async (req, res) => {
    try {
      const question = String((req.body as { question?: unknown }).question ?? '');
      const answer = await orchestratorFetch(`${search.url}/search?q=${encodeURIComponent(question)}`);
      res.status(answer.status).json(await answer.json());
    } catch (error) {
      const r = renderError(error);
      res.status(r.status).set(r.headers).json(r.body);
    }
  });
  const orchestrator = createServer(orchestratorApp);
  const orchestratorUrl = await listen(orchestrator);

  console.log(`identity provider ${idp.issuer}`);
  console.log(`orchestrator ${orchestratorUrl} → search agent ${search.url} → docs index ${docsUrl}, summarizer ${summarizerUrl}`);

  const checks: Array<[string, boolean]> = [];
  try {
    // 1. alice asks the orchestrator.
    console.log('\n== alice asks the orchestrator ==');
    const aliceToken = await idp.tokenFor({ userId: ALICE, scopes: ['research', 'summarize', 'mail:send'], audience: ORCHESTRATOR });
    const asked = await fetch(`${orchestratorUrl}/ask`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ question: 'token exchange' }),
    });
    const result = (await asked.json()) as {
      documents?: string[];
      summarizer?: { summary: string; forUser: string; actorChain: string[]; act: unknown; scopes: string[] };
    };
    console.log(`POST /ask → ${asked.status}`);
    console.log(`  documents: ${JSON.stringify(result.documents)}`);
    console.log(`  summary: ${result.summarizer?.summary}`);
    const seen = result.summarizer;
    console.log(`  the summarizer saw: user=${seen?.forUser} actorChain=${JSON.stringify(seen?.actorChain)} scopes=${JSON.stringify(seen?.scopes)}`);
    console.log(`  its token's act claim: ${JSON.stringify(seen?.act)}`);
    checks.push(['alice gets an answer', asked.status === 200]);
    checks.push(['the summarizer sees alice through both agents', seen?.forUser === ALICE && JSON.stringify(seen.actorChain) === '["search-agent","orchestrator"]']);
    checks.push(['the summarizer holds only summarize', JSON.stringify(seen?.scopes) === '["summarize"]']);

    // 2. alice skips the orchestrator and calls the search agent herself: its policy wants the orchestrator in the chain.
    console.log('\n== refusals ==');
    const direct = await fetch(`${search.url}/search?q=x`, {
      headers: { authorization: `Bearer ${await idp.tokenFor({ userId: ALICE, scopes: ['research'], audience: SEARCH })}` },
    });
    const directBody = (await direct.json()) as { error?: string };
    console.log(`alice → search agent directly (no orchestrator in the chain) → ${direct.status} ${directBody.error}`);
    checks.push(['a direct call is refused by the actors policy', direct.status === 403 && directBody.error === 'POLICY_DENIED']);

    // 3. bob may research but not summarize: the orchestrator cannot delegate a scope he does not hold.
    const bobToken = await idp.tokenFor({ userId: 'bob@example.com', scopes: ['research'], audience: ORCHESTRATOR });
    const bob = await fetch(`${orchestratorUrl}/ask`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ question: 'x' }),
    });
    const bobBody = (await bob.json()) as { error?: string };
    console.log(`bob (research only) → orchestrator → ${bob.status} ${bobBody.error}`);
    checks.push(['no scope escalation through delegation', bob.status === 403 && bobBody.error === 'SCOPE_ESCALATION']);

    // 4. A chain longer than the summarizer accepts (maxDelegationDepth 2): alice's token already names an agent.
    const longToken = await idp.tokenFor({
      userId: ALICE,
      scopes: ['research', 'summarize'],
      audience: ORCHESTRATOR,
      act: { sub: 'assistant-ui' },
    });
    const long = await fetch(`${orchestratorUrl}/ask`, {
      method: 'POST',
      headers: { authorization: `Bearer ${longToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ question: 'x' }),
    });
    const longBody = (await long.json()) as { error?: string; summarizer?: string };
    console.log(`alice via assistant-ui → orchestrator → search agent → summarizer (3 actors, max 2) → ${long.status} ${longBody.error}: summarizer said ${longBody.summarizer}`);
    checks.push(['a chain deeper than allowed is refused', long.status === 502 && longBody.summarizer === 'TOKEN_MALFORMED']);
  } finally {
    await Promise.all([close(orchestrator), close(search.server), close(summarizer), close(docsIndex), idp.close()]);
  }

  // ---- the audit trail ------------------------------------------------------------------------------
  console.log('\n== audit trail (every agent’s own log, in order) ==');
  for (const { agent, event: e } of trail) {
    const chain = e.actorChain ? ` chain=${e.actorChain.join('←')}` : '';
    const target = e.tool ? ` tool=${e.tool} ${e.method} ${e.path}` : e.connection ? ` connection=${e.connection}` : '';
    const outcome = `${e.decision}${e.code ? ` ${e.code}` : ''}${e.status ? ` ${e.status}` : ''}`;
    console.log(`[${agent}] ${e.type} user=${e.userId ?? '-'}${chain}${target} → ${outcome}`);
  }

  console.log('\n== who called which tool, through which agents (from tool.request events alone) ==');
  for (const { event: e } of trail) {
    if (e.type !== 'tool.request') continue;
    const path = [e.userId ?? 'anonymous', ...[...(e.actorChain ?? [])].reverse(), e.agentId, e.tool].join(' → ');
    console.log(`${path}  [${e.decision}${e.code ? ` ${e.code}` : ''}]`);
  }

  // Each log is a hash chain: any edit, insertion or deletion is detectable.
  const verified: string[] = [];
  for (const [agent, log] of logs) {
    await log.flush();
    const v = await verifyAuditChain(lines[agent]);
    verified.push(`${agent} ${v.ok ? `${v.count} events ok` : `BROKEN at line ${v.line}`}`);
    checks.push([`${agent}'s audit log verifies`, v.ok]);
  }
  console.log(`\naudit logs: ${verified.join(', ')}`);

  const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
  if (failed.length > 0) console.error(`failed: ${failed.join('; ')}`);
  return failed.length === 0;
}

main().then(
  (ok) => {
    console.log(ok ? 'multi-agent: OK' : 'multi-agent: FAILED');
    process.exit(ok ? 0 : 1);
  },
  (error: unknown) => {
    console.error('multi-agent: FAILED', error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
