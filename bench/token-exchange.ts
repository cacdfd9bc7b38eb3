/**
 * Cost of one delegation hop: toolFetch through a `tokenExchange` tool (RFC 8693 at the real test
 * identity provider, in this process) against the same call through an `apiKey` tool, with the
 * exchange cache off (every call exchanges) and on (one exchange per subject token and lifetime).
 * Everything runs on 127.0.0.1 and stops by itself.
 *
 *   npx tsx bench/token-exchange.ts
 *
 * Rounds alternate between the variants (sequential calls by one user with one bearer token, each
 * call as a new inbound request, i.e. a new context; `cachedSameCtx` reuses one context, as several
 * tool calls inside one request do), so the machine's load falls on all of them alike. Printed: wall time and CPU time (this process: the
 * IdP included) per call, as ratios against the apiKey hop, and the IdP's exchange counts.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachRawToken, type AgentContext } from '../src/context.js';
import { createTokenManager, createToolFetch, createVerifier, type ToolFetch } from '../src/index.js';
import { createTestIdentityProvider } from '../src/testing/index.js';
import { record } from './report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const CALLS = Number(process.env.BENCH_CALLS ?? 60);
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const A_AUD = 'https://agent-a.example.test';
const B_AUD = 'https://agent-b.example.test';

const idp = await createTestIdentityProvider();
const client = await idp.registerClient({ client_id: 'agent-a' });
const upstream = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' }).end('{"ok":true}'));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

function fetchWith(exchangeCache: boolean): ToolFetch {
  const tokens = createTokenManager({
    connections: [{ id: 'idp', issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string }],
    exchangeCache,
  });
  return createToolFetch({
    agent: { id: 'agent-a' },
    tools: [
      { name: 'by-key', baseUrl: `${origin}/key`, auth: { type: 'apiKey', key: 'sk_bench_123' } },
      { name: 'agent-b', baseUrl: `${origin}/b`, auth: { type: 'tokenExchange', connection: 'idp', audience: B_AUD, scopes: ['search:read'] } },
    ],
    policies: [{ agent: 'agent-a', tool: '*' }],
    tokens,
  });
}
const uncached = fetchWith(false);
const cached = fetchWith(true);
const verifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [A_AUD] }] });
const userToken = await idp.tokenFor({ userId: 'alice', scopes: ['search:read', 'notes:write'], audience: A_AUD });
const context = await verifier.verify({ headers: { authorization: `Bearer ${userToken}` } });

/** What the verifier gives each new inbound request carrying the same bearer: a new context. */
function newRequestContext(): AgentContext {
  const ctx: AgentContext = Object.freeze({ ...context, requestId: crypto.randomUUID() });
  attachRawToken(ctx, userToken);
  return ctx;
}

const variants = {
  apiKey: () => cached(`${origin}/key/search?q=1`, { context: newRequestContext() }),
  exchangeUncached: () => uncached(`${origin}/b/search?q=1`, { context: newRequestContext() }),
  exchangeCached: () => cached(`${origin}/b/search?q=1`, { context: newRequestContext() }),
  cachedSameCtx: () => cached(`${origin}/b/search?q=1`, { context }),
};
type Name = keyof typeof variants;
const totals = Object.fromEntries(Object.keys(variants).map((k) => [k, { wallMs: 0, cpuUs: 0, calls: 0, exchanges: 0 }])) as Record<
  Name,
  { wallMs: number; cpuUs: number; calls: number; exchanges: number }
>;

async function round(name: Name, calls: number, record: boolean): Promise<void> {
  const before = idp.stats.token[EXCHANGE] ?? 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    const res = await variants[name]();
    if (res.status !== 200) throw new Error(`${name}: status ${res.status}`);
    await res.arrayBuffer();
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  if (!record) return;
  const t = totals[name];
  t.wallMs += wall;
  t.cpuUs += cpu.user + cpu.system;
  t.calls += calls;
  t.exchanges += (idp.stats.token[EXCHANGE] ?? 0) - before;
}

// Warm-up: discovery, JIT, connection pools.
for (const name of Object.keys(variants) as Name[]) await round(name, 20, false);
for (let r = 0; r < ROUNDS; r++) {
  // apiKey and the cache hit alternate first; the uncached round (the IdP's allocations) goes last,
  // followed by an unrecorded round that absorbs the garbage it leaves.
  const order: Name[] = r % 2 === 0 ? ['apiKey', 'exchangeCached', 'cachedSameCtx', 'exchangeUncached'] : ['cachedSameCtx', 'exchangeCached', 'apiKey', 'exchangeUncached'];
  for (const name of order) await round(name, CALLS, true);
  await round('apiKey', 20, false);
}

const base = totals.apiKey;
const perCall = (t: typeof base) => ({ wallUs: (t.wallMs * 1000) / t.calls, cpuUs: t.cpuUs / t.calls });
const b = perCall(base);
console.log(`token-exchange hop: ${ROUNDS} interleaved rounds x ${CALLS} sequential calls per variant, one user, one subject token`);
for (const name of Object.keys(totals) as Name[]) {
  const t = totals[name];
  const p = perCall(t);
  console.log(
    `  ${name.padEnd(17)} wall ${p.wallUs.toFixed(0).padStart(5)} µs/call (${(p.wallUs / b.wallUs).toFixed(2)}x apiKey)` +
      `  cpu ${p.cpuUs.toFixed(0).padStart(5)} µs/call (${(p.cpuUs / b.cpuUs).toFixed(2)}x apiKey)  exchanges at IdP: ${t.exchanges}/${t.calls} calls`,
  );
}

const cpuRatio = (name: Name) => perCall(totals[name]).cpuUs / b.cpuUs;
record({ id: 'exchange-cached/apikey', label: 'delegated hop (token exchange, cached) / API-key hop (CPU per call)', value: cpuRatio('exchangeCached') });
record({ id: 'exchange-uncached/apikey', label: 'delegated hop (token exchange, no cache) / API-key hop (CPU per call)', value: cpuRatio('exchangeUncached') });
upstream.closeAllConnections();
await new Promise((r) => upstream.close(r));
await idp.close();
