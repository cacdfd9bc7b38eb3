/**
 * The outbound suites again, with the default fetch replaced by the agent-iam/undici transport:
 * every toolFetch check (URL safety, tools, headers, policy, capability, approval, credentials,
 * SigV4, redirects, audit) must hold the same over it. The suites' own modules register their
 * tests here; toolFetch reads `globalThis.fetch` at each send, so it sends with the transport.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { createUndiciFetch, type UndiciFetch } from '../../src/adapters/undici.js';

const original = globalThis.fetch;
let transport: UndiciFetch | undefined;
// Before the suites' own hooks run (and in the same order as they register), so their servers and
// token managers are reached through undici too.
transport = await createUndiciFetch();
let sent = 0;
const counted = ((input: string | URL | Request, init?: RequestInit) => {
  sent++;
  return (transport as UndiciFetch)(input, init);
}) as typeof fetch;
globalThis.fetch = counted;
beforeAll(() => {
  globalThis.fetch = counted;
});
afterAll(async () => {
  globalThis.fetch = original;
  // the suites did send through the transport
  expect(sent).toBeGreaterThan(100);
  await transport?.close();
  transport = undefined;
});

await import('../outbound/tool-fetch.test.js');
await import('../outbound/redirects.test.js');
await import('../outbound/hostile.test.js');
await import('../outbound/header-policy.test.js');
await import('../outbound/sigv4.test.js');
await import('../outbound/end-to-end.test.js');
await import('../outbound/unreachable.test.js');
await import('../outbound/token-rejected.test.js');
