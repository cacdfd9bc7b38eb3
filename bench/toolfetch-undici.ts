/**
 * toolFetch over the agent-iam/undici transport vs plain global fetch to the same loopback server,
 * in the same run.
 *
 *   npx tsx bench/toolfetch-undici.ts
 *
 * Throughput with 32 concurrent callers, alternating short rounds of plain `fetch` (the baseline)
 * and toolFetch with `fetch: await createUndiciFetch()` (apiKey tool, one allow policy, 20
 * capabilities, audit on: every check runs), and the median pair ratio, because the machine is
 * shared. Same server, same headers on the wire (the credential and `X-End-User-ID`), keep-alive
 * on both sides. Target: ≥ 1.5x on Node 24.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createToolFetch } from '../src/outbound/index.js';
import { createUndiciFetch } from '../src/adapters/undici.js';
import { runWithContext, anonymousContext, type AgentContext } from '../src/context.js';
import { median, record } from './report.js';

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const CONCURRENCY = 32;

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
    res.end('{"ok":true}');
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const capabilities = Array.from({ length: 20 }, (_, i) => ({ method: i % 2 ? 'POST' : 'GET', path: `/v1/res${i}/:id` }));
capabilities.push({ method: 'GET', path: '/v1/items/:id' });
let audited = 0;
const transport = await createUndiciFetch();
const toolFetch = createToolFetch({
  agent: { id: 'bench-agent' },
  tools: [{ name: 'api', baseUrl: origin, auth: { type: 'apiKey', key: 'sk_bench_123' }, capabilities: capabilities.slice(-20) }],
  policies: [{ agent: 'bench-agent', tool: 'api' }],
  audit: () => {
    audited++;
  },
  fetch: transport,
});
const ctx: AgentContext = { ...anonymousContext('bench'), userId: 'alice@example.com', authenticated: true };
const url = `${origin}/v1/items/it_42?expand=a`;

async function plain(): Promise<void> {
  const res = await fetch(url, { headers: { authorization: 'Bearer sk_bench_123', 'x-end-user-id': 'alice@example.com' } });
  await res.arrayBuffer();
}
async function gated(): Promise<void> {
  const res = await toolFetch(url);
  await res.arrayBuffer();
}

async function throughput(fn: () => Promise<void>, ms: number): Promise<number> {
  let count = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await fn();
        count++;
      }
    }),
  );
  return count / (ms / 1000);
}

await runWithContext(ctx, async () => {
  await throughput(plain, 300);
  await throughput(gated, 300);
  let p = 0;
  let g = 0;
  const ratios: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    let pi: number;
    let gi: number;
    if (i % 2 === 0) {
      pi = await throughput(plain, ROUND_MS);
      gi = await throughput(gated, ROUND_MS);
    } else {
      gi = await throughput(gated, ROUND_MS);
      pi = await throughput(plain, ROUND_MS);
    }
    p += pi;
    g += gi;
    ratios.push(gi / pi);
  }
  p /= ROUNDS;
  g /= ROUNDS;
  const m = median(ratios);
  console.log(
    `throughput  plain fetch ${p.toFixed(0)} req/s | toolFetch over agent-iam/undici ${g.toFixed(0)} req/s | ratio of means ${(g / p).toFixed(3)}x, ` +
      `median pair ratio ${m.toFixed(3)}x (target >= 1.5x on Node 24; ${ROUNDS} interleaved pairs of ${ROUND_MS} ms; Node ${process.version})`,
  );
  record({
    id: 'throughput',
    label: '`toolFetch` over `agent-iam/undici` / plain global `fetch`, same loopback server (req/s, median of interleaved pairs)',
    value: m,
    target: { op: '>=', value: 1.5 },
  });
});
console.log(`(audit events emitted: ${audited})`);
await transport.close();
server.closeAllConnections();
server.close();
