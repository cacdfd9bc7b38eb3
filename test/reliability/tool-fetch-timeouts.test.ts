// The time bounds of toolFetch, moved from test/outbound/tool-fetch.test.ts (the unit project has no
// timed assertions; it keeps these tests without the elapsed-time checks): a hanging token endpoint
// is cut off by credentialTimeoutMs, a hanging upstream by timeoutMs, each long before the test
// timeout and the defaults (10 s for credentials, none for the upstream).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch, type ToolDefinition } from '../../src/outbound/index.js';
import type { PolicyRule } from '../../src/policy/index.js';
import { startUpstream, type Upstream } from '../outbound/upstream.js';
import { startTokenServer, type TokenServer } from '../outbound/token-server.js';
import { auditLog, codeOf, userContext } from '../outbound/helpers.js';

let up: Upstream;
let other: Upstream;
let ts: TokenServer;

beforeAll(async () => {
  up = await startUpstream();
  other = await startUpstream();
  ts = await startTokenServer();
});
afterAll(async () => {
  await up.close();
  await other.close();
  await ts.close();
});
beforeEach(() => {
  up.clear();
  other.clear();
  ts.mode = undefined;
  ts.grants.length = 0;
});

const alice = userContext('alice@example.com', { claims: { groups: ['engineering'] }, domain: 'example.com' });

function make(tools: ToolDefinition[], policies: PolicyRule[], extra: Record<string, unknown> = {}) {
  return createToolFetch({ agent: { id: 'agent-1' }, tools, policies, ...extra });
}

describe('toolFetch time bounds', () => {
  it('token endpoint down or hanging: typed error, nothing sent, within credentialTimeoutMs', async () => {
    ts.accounts.set('github', new Set(['alice@example.com']));
    const tf = make(
      [
        { name: 'gh', baseUrl: up.origin, auth: { type: 'oauth2', connection: 'github' } },
        { name: 'cc', baseUrl: other.origin, auth: { type: 'clientCredentials', connection: 'corp' } },
      ],
      [{ agent: 'agent-1', tool: '*' }],
      { tokens: ts.source, credentialTimeoutMs: 200 },
    );
    ts.mode = 'fail';
    expect(await codeOf(tf(`${up.origin}/user`, { context: alice }))).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    ts.mode = 'hang';
    const t0 = Date.now();
    expect(await codeOf(tf(`${other.origin}/x`, { context: alice }))).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(up.received).toHaveLength(0);
    expect(other.received).toHaveLength(0);
  });

  it('timeoutMs bounds a hanging upstream; the failure is audited as an error', async () => {
    const log = auditLog();
    up.route('/hang', () => {});
    const tf = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a' }], { timeoutMs: 200, audit: log.sink });
    const t0 = Date.now();
    const err = await tf(`${up.origin}/hang`).catch((e) => e);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err.name).toBe('TimeoutError');
    expect(log.events.at(-1)).toMatchObject({ decision: 'error', tool: 'a' });
  });
});
