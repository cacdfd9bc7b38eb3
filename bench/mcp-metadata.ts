/**
 * Cost of serving protected resource metadata through `meta.handler` (body serialised once) against
 * the obvious baseline, `Response.json(document, { headers })` per request (same headers), measured in
 * the same run.
 *
 * Run: npx tsx bench/mcp-metadata.ts   (about 2 s)
 */
import { protectedResourceMetadata } from '../src/mcp/index.js';
import { record } from './report.js';

const meta = protectedResourceMetadata({
  resource: 'https://agent.example.com/mcp',
  authorizationServers: ['https://idp.example.com'],
  scopesSupported: ['mcp:tools', 'mcp:resources', 'mcp:prompts'],
  resourceName: 'Example MCP server',
});
const request = new Request(meta.url);

async function perOp(fn: () => Response, ms: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 200; i++) await fn().arrayBuffer();
    n += 200;
  }
  return ((performance.now() - start) * 1000) / n;
}

const headers = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': '*',
  'access-control-max-age': '86400',
  'cache-control': 'public, max-age=3600',
};
const baselineFn = () => Response.json(meta.document, { headers });
const handlerFn = () => meta.handler(request);
for (let i = 0; i < 3000; i++) {
  await baselineFn().arrayBuffer();
  await handlerFn().arrayBuffer();
}
// Alternate short rounds and take medians, so that load from other processes hits both alike.
const base: number[] = [];
const hand: number[] = [];
for (let round = 0; round < 7; round++) {
  base.push(await perOp(baselineFn, 150));
  hand.push(await perOp(handlerFn, 150));
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`baseline Response.json(doc, headers)  ${median(base).toFixed(2)} µs/op (median of 7)`);
console.log(`meta.handler(request)                 ${median(hand).toFixed(2)} µs/op (median of 7)`);
console.log(`ratio handler / baseline: ${(median(hand) / median(base)).toFixed(2)}x`);
record({ id: 'handler/response-json', label: 'MCP metadata `meta.handler` / `Response.json` per request', value: median(hand) / median(base) });
