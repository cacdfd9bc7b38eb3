import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch, toolsFromEnv, type ToolDefinition } from '../../src/outbound/index.js';
import { runWithContext } from '../../src/context.js';
import type { PolicyRule } from '../../src/policy/index.js';
import { startUpstream, type Upstream } from './upstream.js';
import { startTokenServer, type TokenServer } from './token-server.js';
import { auditLog, codeOf, simpleApprovals, userContext } from './helpers.js';

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

describe('credential injection per auth type', () => {
  it('apiKey: Authorization Bearer by default, caller credentials replaced, identity forwarded', async () => {
    const tf = make([{ name: 'api', baseUrl: up.origin, auth: { type: 'apiKey', key: 'sk_live_1' } }], [{ agent: 'agent-1', tool: 'api' }]);
    const res = await tf(`${up.origin}/v1/items?limit=3`, {
      context: alice,
      headers: {
        Authorization: 'Bearer attacker',
        Cookie: 'session=stolen',
        'Proxy-Authorization': 'Basic eA==',
        'X-End-User-ID': 'mallory',
        'X-Amz-Security-Token': 'evil',
        'X-Custom': 'kept',
      },
    });
    expect(res.status).toBe(200);
    expect(up.received).toHaveLength(1);
    const got = up.received[0]!;
    expect(got.url).toBe('/v1/items?limit=3');
    expect(got.headers.authorization).toBe('Bearer sk_live_1');
    expect(got.headers.cookie).toBeUndefined();
    expect(got.headers['proxy-authorization']).toBeUndefined();
    expect(got.headers['x-amz-security-token']).toBeUndefined();
    expect(got.headers['x-end-user-id']).toBe('alice@example.com');
    expect(got.headers['x-custom']).toBe('kept');
    // exactly one Authorization and one X-End-User-ID line on the wire
    const lines = got.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
    expect(lines.filter((h) => h === 'authorization')).toHaveLength(1);
    expect(lines.filter((h) => h === 'x-end-user-id')).toHaveLength(1);
  });

  it('apiKey with a custom header and no scheme; caller cannot set that header', async () => {
    const tf = make(
      [{ name: 'w', baseUrl: up.origin, auth: { type: 'apiKey', key: 'k-123', header: 'X-API-Key' } }],
      [{ agent: 'agent-1', tool: 'w' }],
    );
    await runWithContext(alice, () => tf(`${up.origin}/x`, { headers: { 'x-api-key': 'caller-chosen', authorization: 'Bearer nope' } }));
    const got = up.received[0]!;
    expect(got.headers['x-api-key']).toBe('k-123');
    expect(got.headers.authorization).toBeUndefined();
    expect(got.headers['x-end-user-id']).toBe('alice@example.com'); // from the ALS context
  });

  it('apiKey with an explicit scheme', async () => {
    const tf = make(
      [{ name: 'w', baseUrl: up.origin, auth: { type: 'apiKey', key: 'abc', header: 'authorization', scheme: 'Token' } }],
      [{ agent: 'agent-1', tool: 'w' }],
    );
    await tf(`${up.origin}/x`);
    expect(up.received[0]!.headers.authorization).toBe('Token abc');
    expect(up.received[0]!.headers['x-end-user-id']).toBeUndefined(); // no context, no identity
  });

  it('none: no credential, forwardUser false sends no identity', async () => {
    const tf = make([{ name: 'n', baseUrl: up.origin, forwardUser: false }], [{ agent: 'agent-1', tool: 'n' }]);
    await tf(`${up.origin}/x`, { context: alice, headers: { authorization: 'Bearer leak' } });
    expect(up.received[0]!.headers.authorization).toBeUndefined();
    expect(up.received[0]!.headers['x-end-user-id']).toBeUndefined();
  });

  it('oauth2: the user’s own token from the token source', async () => {
    ts.accounts.set('github', new Set(['alice@example.com']));
    const tf = make([{ name: 'gh', baseUrl: up.origin, auth: { type: 'oauth2', connection: 'github' } }], [{ agent: 'agent-1', tool: 'gh' }], {
      tokens: ts.source,
    });
    await tf(`${up.origin}/user`, { context: alice });
    expect(up.received[0]!.headers.authorization).toBe('Bearer at.refresh_token.github.alice@example.com.');
  });

  it('oauth2: missing account is CONSENT_REQUIRED with an authorizationUrl, nothing sent', async () => {
    const { events, sink } = auditLog();
    const tf = make([{ name: 'gh', baseUrl: up.origin, auth: { type: 'oauth2', connection: 'github' } }], [{ agent: 'agent-1', tool: 'gh' }], {
      tokens: ts.source,
      audit: sink,
    });
    const err = await tf(`${up.origin}/user`, { context: userContext('bob') }).catch((e) => e);
    expect(err).toMatchObject({ code: 'CONSENT_REQUIRED', status: 401 });
    expect(err.authorizationUrl).toMatch(new RegExp(`^${ts.origin}/authorize\\?`));
    expect(up.received).toHaveLength(0);
    expect(events.at(-1)).toMatchObject({ type: 'tool.request', decision: 'consent', code: 'CONSENT_REQUIRED', tool: 'gh', userId: 'bob' });
  });

  it('oauth2 with no user context: POLICY_DENIED and nothing sent (never another user’s token)', async () => {
    ts.accounts.set('github', new Set(['alice@example.com']));
    const tf = make([{ name: 'gh', baseUrl: up.origin, auth: { type: 'oauth2', connection: 'github' } }], [{ agent: 'agent-1', tool: 'gh' }], {
      tokens: ts.source,
    });
    expect(await codeOf(tf(`${up.origin}/user`))).toBe('POLICY_DENIED');
    expect(await codeOf(tf(`${up.origin}/user`, { context: userContext(undefined) }))).toBe('POLICY_DENIED');
    expect(up.received).toHaveLength(0);
    expect(ts.grants).toHaveLength(0);
  });

  it('perUser apiKey tool without a user: POLICY_DENIED', async () => {
    const tf = make([{ name: 'p', baseUrl: up.origin, perUser: true, auth: { type: 'apiKey', key: 'k' } }], [{ agent: 'agent-1', tool: 'p' }]);
    expect(await codeOf(tf(`${up.origin}/x`))).toBe('POLICY_DENIED');
    expect(up.received).toHaveLength(0);
  });

  it('clientCredentials: the app token with scopes and resource', async () => {
    const tf = make(
      [{ name: 'cc', baseUrl: up.origin, auth: { type: 'clientCredentials', connection: 'corp', scopes: ['read'], resource: 'https://api.corp' } }],
      [{ agent: 'agent-1', tool: 'cc' }],
      { tokens: ts.source },
    );
    await tf(`${up.origin}/x`);
    expect(up.received[0]!.headers.authorization).toBe('Bearer at.client_credentials.corp.app.read');
    expect(ts.grants[0]).toMatchObject({ resource: 'https://api.corp' });
  });

  it('tokenExchange: the user’s token exchanged for a downscoped one', async () => {
    const tf = make(
      [{ name: 'tx', baseUrl: up.origin, auth: { type: 'tokenExchange', connection: 'corp', audience: 'svc', scopes: ['a'] } }],
      [{ agent: 'agent-1', tool: 'tx' }],
      { tokens: ts.source },
    );
    await tf(`${up.origin}/x`, { context: alice });
    expect(up.received[0]!.headers.authorization).toBe('Bearer at.token-exchange.corp.alice@example.com.a');
    expect(ts.grants[0]).toMatchObject({ audience: 'svc', subject: 'alice@example.com' });
    expect(await codeOf(tf(`${up.origin}/x`))).toBe('POLICY_DENIED');
    expect(up.received).toHaveLength(1);
  });
});

describe('fail closed', () => {
  it('token endpoint down or hanging: typed error, nothing sent, no secret in the error', async () => {
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
    ts.mode = 'hang'; // ended by credentialTimeoutMs (how long that takes: test/reliability/tool-fetch-timeouts.test.ts)
    expect(await codeOf(tf(`${other.origin}/x`, { context: alice }))).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    expect(up.received).toHaveLength(0);
    expect(other.received).toHaveLength(0);
  });

  it('a token source that throws a plain error (with a secret in it) becomes a safe typed error', async () => {
    const tf = make([{ name: 'cc', baseUrl: up.origin, auth: { type: 'clientCredentials', connection: 'c' } }], [{ agent: 'agent-1', tool: 'cc' }], {
      tokens: { ...ts.source, clientCredentials: async () => Promise.reject(new Error('client_secret=hunter2')) },
    });
    const err = await tf(`${up.origin}/x`).catch((e) => e);
    expect(err.code).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    expect(JSON.stringify(err) + err.message + String(err.cause)).not.toContain('hunter2');
    expect(up.received).toHaveLength(0);
  });

  it('a token source returning a token with CR/LF is refused', async () => {
    const tf = make([{ name: 'cc', baseUrl: up.origin, auth: { type: 'clientCredentials', connection: 'c' } }], [{ agent: 'agent-1', tool: 'cc' }], {
      tokens: { ...ts.source, clientCredentials: async () => ({ accessToken: 'abc\r\nX-Evil: 1', tokenType: 'Bearer', scopes: [] }) },
    });
    expect(await codeOf(tf(`${up.origin}/x`))).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    expect(up.received).toHaveLength(0);
  });

  it('AWS credential provider that throws or hangs: nothing sent', async () => {
    const tf = make(
      [
        { name: 's1', baseUrl: up.origin, auth: { type: 'awsSigV4', region: 'us-east-1', service: 's3', credentials: async () => { throw new Error('x'); } } },
        { name: 's2', baseUrl: other.origin, auth: { type: 'awsSigV4', region: 'us-east-1', service: 's3', credentials: () => new Promise(() => {}) } },
      ],
      [{ agent: 'agent-1', tool: '*' }],
      { credentialTimeoutMs: 150 },
    );
    expect(await codeOf(tf(`${up.origin}/b/k`))).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    expect(await codeOf(tf(`${other.origin}/b/k`))).toBe('TOKEN_ENDPOINT_UNAVAILABLE');
    expect(up.received).toHaveLength(0);
    expect(other.received).toHaveLength(0);
  });

  it('approval store failure: STORE_UNAVAILABLE, nothing sent', async () => {
    const approvals = simpleApprovals();
    approvals.failing = true;
    const tf = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a', effect: 'approval' }], { approvals });
    const err = await tf(`${up.origin}/x`, { method: 'POST', body: 'x' }).catch((e) => e);
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect(err.message).not.toContain('secret');
    expect(up.received).toHaveLength(0);
  });
});

describe('policy, capability, approval', () => {
  const tools: ToolDefinition[] = [
    {
      name: 'stripe',
      baseUrl: up?.origin ?? 'http://127.0.0.1:1',
      auth: { type: 'apiKey', key: 'sk' },
      capabilities: [
        { method: 'GET', path: '/v1/charges' },
        { method: 'GET', path: '/v1/charges/:id' },
        { method: 'POST', path: '/v1/refunds' },
      ],
    },
  ];
  const policies: PolicyRule[] = [
    { agent: 'agent-1', tool: 'stripe', groups: ['engineering'] },
    { agent: 'agent-1', tool: 'stripe', capabilities: [{ method: 'POST', path: '/v1/refunds' }], effect: 'approval' },
    { agent: 'agent-1', tool: 'stripe', users: ['mallory'], effect: 'deny' },
  ];
  const tf = () => make([{ ...tools[0]!, baseUrl: up.origin }], policies, { approvals: approvalsSvc, audit: log.sink });
  const approvalsSvc = simpleApprovals();
  const log = auditLog();

  it('allows a capability the policy and tool allow', async () => {
    const res = await tf()(`${up.origin}/v1/charges/ch_1?expand=x`, { context: alice });
    expect(res.status).toBe(200);
    expect(log.events.at(-1)).toMatchObject({
      type: 'tool.request',
      decision: 'allow',
      agentId: 'agent-1',
      userId: 'alice@example.com',
      tool: 'stripe',
      method: 'GET',
      path: '/v1/charges/ch_1',
      status: 200,
      requestId: 'req-1',
    });
    expect(JSON.stringify(log.events)).not.toContain('expand');
    expect(JSON.stringify(log.events)).not.toContain('sk');
  });

  it('CAPABILITY_DENIED for an undeclared operation; POLICY_DENIED for no rule or a deny rule', async () => {
    expect(await codeOf(tf()(`${up.origin}/v1/customers`, { context: alice }))).toBe('CAPABILITY_DENIED');
    expect(await codeOf(tf()(`${up.origin}/v1/charges`, { method: 'DELETE', context: alice }))).toBe('CAPABILITY_DENIED');
    expect(await codeOf(tf()(`${up.origin}/v1/charges`, { context: userContext('bob') }))).toBe('POLICY_DENIED');
    expect(
      await codeOf(tf()(`${up.origin}/v1/charges`, { context: userContext('mallory', { claims: { groups: ['engineering'] } }) })),
    ).toBe('POLICY_DENIED');
    expect(up.received).toHaveLength(0);
    expect(log.events.at(-1)).toMatchObject({ decision: 'deny', code: 'POLICY_DENIED' });
  });

  it('groups come from the configured claim', async () => {
    const t = make([{ ...tools[0]!, baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'stripe', groups: ['eng'] }], { groupsClaim: 'roles' });
    expect(await codeOf(t(`${up.origin}/v1/charges`, { context: alice }))).toBe('POLICY_DENIED');
    expect((await t(`${up.origin}/v1/charges`, { context: userContext('u', { claims: { roles: ['eng'] } }) })).status).toBe(200);
  });

  it('approval: APPROVAL_REQUIRED with a safe summary, then exactly that request passes once', async () => {
    const body = JSON.stringify({ charge: 'ch_1', amount: 500 });
    const send = (b = body, q = '') =>
      tf()(`${up.origin}/v1/refunds${q}`, { method: 'POST', body: b, headers: { 'content-type': 'application/json' }, context: alice });
    const err = await send().catch((e) => e);
    expect(err).toMatchObject({ code: 'APPROVAL_REQUIRED', status: 403 });
    expect(err.approval).toEqual({ agentId: 'agent-1', userId: 'alice@example.com', tool: 'stripe', method: 'POST', path: '/v1/refunds' });
    expect(up.received).toHaveLength(0);
    const check = approvalsSvc.checks.at(-1)!;
    expect(check.bodySha256).toBe(
      Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(body))).toString('hex'),
    );
    approvalsSvc.approve(err.approvalId);
    // a different body or query is a new approval
    expect(await codeOf(send(JSON.stringify({ charge: 'ch_1', amount: 50000 })))).toBe('APPROVAL_REQUIRED');
    expect(await codeOf(send(body, '?x=1'))).toBe('APPROVAL_REQUIRED');
    const ok = await send();
    expect(ok.status).toBe(200);
    expect(up.received).toHaveLength(1);
    expect(up.received[0]!.body.toString()).toBe(body); // the hashed body is the body sent
    expect(await codeOf(send())).toBe('APPROVAL_REQUIRED'); // single use
    expect(log.events.some((e) => e.decision === 'approval' && e.approvalId === err.approvalId)).toBe(true);
  });

  it('approval denied is POLICY_DENIED', async () => {
    const send = () => tf()(`${up.origin}/v1/refunds`, { method: 'POST', body: 'deny-me', context: alice });
    const err = await send().catch((e) => e);
    approvalsSvc.deny(err.approvalId);
    expect(await codeOf(send())).toBe('POLICY_DENIED');
    expect(up.received).toHaveLength(0);
  });

  it('approval hashes every body type the same way as the bytes sent', async () => {
    const t = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a', effect: 'approval' }], { approvals: approvalsSvc });
    const bodies: [unknown, string][] = [
      ['hello', 'hello'],
      [new TextEncoder().encode('bytes'), 'bytes'],
      [new TextEncoder().encode('ab').buffer, 'ab'],
      [new URLSearchParams({ a: '1', b: '2' }), 'a=1&b=2'],
      [new Blob(['blob!']), 'blob!'],
      [new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('stream')); c.close(); } }), 'stream'],
    ];
    for (const [b, text] of bodies) {
      const err = await t(`${up.origin}/p`, { method: 'POST', body: b as BodyInit, context: alice, duplex: 'half' } as RequestInit).catch((e) => e);
      expect(err.code).toBe('APPROVAL_REQUIRED');
      const expected = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))).toString('hex');
      expect(approvalsSvc.checks.at(-1)!.bodySha256).toBe(expected);
    }
    // a Request body
    await t(new Request(`${up.origin}/p`, { method: 'PUT', body: 'req-body' }), { context: alice }).catch((e) => e);
    expect(approvalsSvc.checks.at(-1)).toMatchObject({ method: 'PUT' });
    expect(approvalsSvc.checks.at(-1)!.bodySha256).toBe(
      Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('req-body'))).toString('hex'),
    );
    expect(up.received).toHaveLength(0);
  });

  it('a stream body over 10 MB for an approval-bound tool is REQUEST_INVALID', async () => {
    const t = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a', effect: 'approval' }], { approvals: approvalsSvc });
    const chunk = new Uint8Array(1024 * 1024);
    let n = 0;
    const big = new ReadableStream({ pull(c) { if (n++ < 11) c.enqueue(chunk); else c.close(); } });
    expect(await codeOf(t(`${up.origin}/p`, { method: 'POST', body: big, duplex: 'half' } as RequestInit))).toBe('REQUEST_INVALID');
    expect(up.received).toHaveLength(0);
  });
});

describe('tool identification', () => {
  it('longest base path wins, on a segment boundary only', async () => {
    const tf = make(
      [
        { name: 'root', baseUrl: up.origin, auth: { type: 'apiKey', key: 'root-key' } },
        { name: 'api', baseUrl: `${up.origin}/api`, auth: { type: 'apiKey', key: 'api-key' } },
      ],
      [{ agent: 'agent-1', tool: '*' }],
    );
    await tf(`${up.origin}/api/x`);
    await tf(`${up.origin}/apiary`);
    await tf(`${up.origin}/api`);
    expect(up.received.map((r) => r.headers.authorization)).toEqual(['Bearer api-key', 'Bearer root-key', 'Bearer api-key']);
  });

  it('a named host with a trailing dot, another case or a suffix is another origin', async () => {
    const tf = make([{ name: 'ex', baseUrl: 'https://api.example.com/v1' }], [{ agent: 'agent-1', tool: '*' }], {
      fetch: async () => {
        throw new Error('must not be called');
      },
    });
    for (const u of ['https://api.example.com./v1/x', 'https://api.example.com.evil.io/v1/x', 'https://evil.io/api.example.com/v1/x', 'http://api.example.com/v1/x', 'https://api.example.com:8443/v1/x']) {
      expect(await codeOf(tf(u)), u).toBe('TOOL_NOT_REGISTERED');
    }
  });

  it('a base-path tool does not cover sibling paths', async () => {
    const tf = make([{ name: 'api', baseUrl: `${up.origin}/api/` }], [{ agent: 'agent-1', tool: '*' }]);
    expect(await codeOf(tf(`${up.origin}/apiary`))).toBe('TOOL_NOT_REGISTERED');
    expect(await codeOf(tf(`${up.origin}/`))).toBe('TOOL_NOT_REGISTERED');
    expect((await tf(`${up.origin}/api/v1`)).status).toBe(200);
  });
});

describe('configuration', () => {
  const bad: [string, unknown, string][] = [
    ['http non-loopback', { tools: [{ name: 'a', baseUrl: 'http://example.com' }] }, 'tools.0.baseUrl'],
    ['userinfo', { tools: [{ name: 'a', baseUrl: 'https://u:p@example.com' }] }, 'tools.0.baseUrl'],
    ['query', { tools: [{ name: 'a', baseUrl: 'https://example.com/?a=1' }] }, 'tools.0.baseUrl'],
    ['dup name', { tools: [{ name: 'a', baseUrl: 'https://a.com' }, { name: 'a', baseUrl: 'https://b.com' }] }, 'tools.1.name'],
    ['dup place', { tools: [{ name: 'a', baseUrl: 'https://a.com/x' }, { name: 'b', baseUrl: 'https://A.com/x/' }] }, 'tools.1.baseUrl'],
    ['bad name', { tools: [{ name: 'a b', baseUrl: 'https://a.com' }] }, 'tools.0.name'],
    ['bad capability', { tools: [{ name: 'a', baseUrl: 'https://a.com', capabilities: [{ method: 'GET', path: 'nope' }] }] }, 'tools.0.capabilities.0.path'],
    ['oauth2 without tokens', { tools: [{ name: 'a', baseUrl: 'https://a.com', auth: { type: 'oauth2', connection: 'c' } }] }, 'tokens'],
    ['approval without approvals', { policies: [{ agent: 'agent-1', tool: 'a', effect: 'approval' }] }, 'approvals'],
    ['apiKey with newline', { tools: [{ name: 'a', baseUrl: 'https://a.com', auth: { type: 'apiKey', key: 'k\n' } }] }, 'tools.0.auth.key'],
    ['bad header', { tools: [{ name: 'a', baseUrl: 'https://a.com', auth: { type: 'apiKey', key: 'k', header: 'X Bad' } }] }, 'tools.0.auth.header'],
    ['no agent', { agent: {} }, 'agent.id'],
    ['policy without tool', { policies: [{ agent: 'agent-1' }] }, 'policies.0.tool'],
    ['capability with dot-segment', { tools: [{ name: 'a', baseUrl: 'https://a.com', capabilities: [{ method: 'GET', path: '/x/../y' }] }] }, 'tools.0.capabilities.0.path'],
    ['bad maxRedirects', { maxRedirects: 100 }, 'maxRedirects'],
    ['bad timeout', { timeoutMs: -1 }, 'timeoutMs'],
    ['base URL with dot-segment', { tools: [{ name: 'a', baseUrl: 'https://a.com/x/%2e%2e/y' }] }, 'tools.0.baseUrl'],
    ['awsSigV4 bad region', { tools: [{ name: 'a', baseUrl: 'https://a.com', auth: { type: 'awsSigV4', region: 'US EAST', service: 's3', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } }] }, 'tools.0.auth.region'],
    ['unknown auth type', { tools: [{ name: 'a', baseUrl: 'https://a.com', auth: { type: 'basic' } }] }, 'tools.0.auth.type'],
  ];
  for (const [label, patch, field] of bad) {
    it(`CONFIG_INVALID: ${label}`, () => {
      const base = { agent: { id: 'agent-1' }, tools: [{ name: 'a', baseUrl: 'https://a.com' }], policies: [] };
      let err: unknown;
      try {
        createToolFetch({ ...base, ...(patch as object) } as never);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', field });
      expect(String((err as Error).message)).not.toContain('k\n');
    });
  }

  it('toolsFromEnv reads TOOL_<NAME>_URL and optional API keys', () => {
    const tools = toolsFromEnv({
      TOOL_WEATHER_URL: 'https://api.weather.example',
      TOOL_WEATHER_API_KEY: 'wk',
      TOOL_WEATHER_API_KEY_HEADER: 'X-API-Key',
      TOOL_MY_CRM_URL: 'https://crm.example/api',
      UNRELATED: 'x',
      TOOL_EMPTY_URL: '',
    });
    expect(tools).toEqual([
      { name: 'my-crm', baseUrl: 'https://crm.example/api' },
      { name: 'weather', baseUrl: 'https://api.weather.example', auth: { type: 'apiKey', key: 'wk', header: 'X-API-Key' } },
    ]);
    expect(() => createToolFetch({ agent: { id: 'a' }, tools, policies: [] })).not.toThrow();
  });
});

describe('request shapes, context and audit details', () => {
  it('a Request input: its method, headers (scrubbed) and body are sent; init overrides', async () => {
    const tf = make([{ name: 'a', baseUrl: up.origin, auth: { type: 'apiKey', key: 'k' } }], [{ agent: 'agent-1', tool: 'a' }]);
    const req = new Request(`${up.origin}/upload`, {
      method: 'POST',
      body: 'from-request',
      headers: { 'x-trace': 't1', authorization: 'Bearer caller', 'content-type': 'text/plain' },
    });
    await tf(req, { context: alice });
    await tf(new Request(`${up.origin}/upload`, { method: 'POST', body: 'ignored' }), { method: 'PUT', body: 'from-init', headers: { 'x-trace': 't2' } });
    expect(up.received.map((r) => [r.method, r.body.toString(), r.headers['x-trace'], r.headers.authorization])).toEqual([
      ['POST', 'from-request', 't1', 'Bearer k'],
      ['PUT', 'from-init', 't2', 'Bearer k'],
    ]);
  });

  it('init.context wins over the current context', async () => {
    const tf = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a' }]);
    await runWithContext(alice, () => tf(`${up.origin}/x`, { context: userContext('bob') }));
    expect(up.received[0]!.headers['x-end-user-id']).toBe('bob');
  });

  it('audit carries the actor chain and request id, never query values, keys or tokens', async () => {
    const log = auditLog();
    const tf = make([{ name: 'a', baseUrl: up.origin, auth: { type: 'apiKey', key: 'sk_secret_value' } }], [{ agent: 'agent-1', tool: 'a' }], {
      audit: log.sink,
    });
    const ctx = userContext('alice', {
      requestId: 'rq-42',
      actorChain: [
        { subject: 'agent-b', claims: {} },
        { subject: 'agent-a', claims: {} },
      ],
    });
    await tf(`${up.origin}/v1/things?token=query-secret`, { context: ctx, headers: { 'x-note': 'header-secret' } });
    await tf(`${up.origin}/v1/things?token=query-secret`, { context: ctx, method: 'TRACE' }).catch(() => {});
    const [ok, bad] = log.events;
    expect(ok).toMatchObject({ type: 'tool.request', agentId: 'agent-1', userId: 'alice', actorChain: ['agent-b', 'agent-a'], tool: 'a', method: 'GET', path: '/v1/things', decision: 'allow', requestId: 'rq-42', status: 200 });
    expect(typeof ok!.durationMs).toBe('number');
    expect(typeof ok!.time).toBe('string');
    expect(bad).toMatchObject({ decision: 'deny', code: 'REQUEST_INVALID' });
    const text = JSON.stringify(log.events);
    for (const secret of ['query-secret', 'header-secret', 'sk_secret_value']) expect(text).not.toContain(secret);
  });

  it('timeoutMs bounds a hanging upstream; the failure is audited as an error', async () => {
    const log = auditLog();
    up.route('/hang', () => {});
    const tf = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a' }], { timeoutMs: 200, audit: log.sink });
    const err = await tf(`${up.origin}/hang`).catch((e) => e);
    expect(err.name).toBe('TimeoutError'); // only timeoutMs ends it (how long that takes: test/reliability/tool-fetch-timeouts.test.ts)
    expect(log.events.at(-1)).toMatchObject({ decision: 'error', tool: 'a' });
  });

  it('a caller abort signal is honoured', async () => {
    up.route('/hang2', () => {});
    const tf = make([{ name: 'a', baseUrl: up.origin }], [{ agent: 'agent-1', tool: 'a' }]);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await tf(`${up.origin}/hang2`, { signal: ac.signal }).catch((e) => e);
    expect(err.name).toBe('AbortError');
  });
});

describe('ordering', () => {
  it('no approval is created for a request the capabilities refuse, or for a per-user tool without a user', async () => {
    const approvals = simpleApprovals();
    const tf = make(
      [
        { name: 'a', baseUrl: up.origin, capabilities: [{ method: 'POST', path: '/ok' }] },
        { name: 'b', baseUrl: other.origin, perUser: true },
      ],
      [{ agent: 'agent-1', tool: '*', effect: 'approval' }],
      { approvals },
    );
    expect(await codeOf(tf(`${up.origin}/not-declared`, { method: 'POST', body: 'x', context: alice }))).toBe('CAPABILITY_DENIED');
    expect(await codeOf(tf(`${other.origin}/x`, { method: 'POST', body: 'x' }))).toBe('POLICY_DENIED');
    expect(await codeOf(tf(`${up.origin}/ok`, { method: 'POST', body: 'x', context: userContext('bad\nuser') }))).toBe('REQUEST_INVALID');
    expect(approvals.checks).toHaveLength(0);
    expect(await codeOf(tf(`${up.origin}/ok`, { method: 'POST', body: 'x', context: alice }))).toBe('APPROVAL_REQUIRED');
    expect(approvals.checks).toHaveLength(1);
  });
});

describe('concurrency', () => {
  it('200 concurrent calls for 5 users: each request carries its own user and that user’s token only', async () => {
    const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
    ts.accounts.set('gh', new Set(users));
    const tf = make([{ name: 'gh', baseUrl: up.origin, auth: { type: 'oauth2', connection: 'gh' } }], [{ agent: 'agent-1', tool: 'gh' }], {
      tokens: ts.source,
    });
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const user = users[i % users.length]!;
        return runWithContext(userContext(user), async () => {
          await new Promise((r) => setTimeout(r, i % 7));
          const res = await tf(`${up.origin}/who/${user}`);
          await res.arrayBuffer();
        });
      }),
    );
    expect(up.received).toHaveLength(200);
    for (const r of up.received) {
      const user = r.url.split('/').at(-1)!;
      expect(r.headers['x-end-user-id']).toBe(user);
      expect(r.headers.authorization).toBe(`Bearer at.refresh_token.gh.${user}.`);
    }
  });
});
