/**
 * Cost of serving protected resource metadata through `meta.handler` (body serialised once) against
 * the obvious baseline, `Response.json(document, { headers })` per request (same headers), measured in
 * the same run.
 *
 * Run: npx tsx bench/mcp-metadata.ts   (about 2 s)
 */
import { protectedResourceMetadata } from '../src/mcp/index.js';

const meta = protectedResourceMetadata({
  resource: 'https://agent.example.com/mcp',
  authorizationServers: ['https://idp.example.com'],
  scopesSupported: ['mcp:tools', 'mcp:resources', 'mcp:prompts'],
  resourceName: 'Example MCP server',
});
const request = new Request(meta.url);

async function measure(name: string, fn: () => Response, ms = 800): Promise<number> {
  for (let i = 0; i < 2000; i++) await fn().arrayBuffer(); // warm-up
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 200; i++) await fn().arrayBuffer();
    n += 200;
  }
  const perOp = ((performance.now() - start) * 1000) / n;
  console.log(`${name.padEnd(34)} ${perOp.toFixed(2)} µs/op`);
  return perOp;
}

const headers = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': '*',
  'access-control-max-age': '86400',
  'cache-control': 'public, max-age=3600',
};
const baseline = await measure('baseline Response.json(doc, headers)', () => Response.json(meta.document, { headers }));
const handler = await measure('meta.handler(request)', () => meta.handler(request));
console.log(`ratio handler / baseline: ${(handler / baseline).toFixed(2)}x`);
