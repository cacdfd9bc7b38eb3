/**
 * The header policy of toolFetch (issue 14, item 1). The attack: a tool limited to
 * `GET /api/items/:id` received a GET carrying the API key and `X-HTTP-Method-Override: DELETE`,
 * which a server that honours the header ran as a DELETE; an approval for `GET /v2/items/7` was
 * used the same way. Headers that change what the tool does are refused unless the tool allows
 * them, an allowed method override is checked like the method itself, and approvals bind them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch, type ToolDefinition, type ToolFetchOptions } from '../../src/outbound/index.js';
import { createApprovals } from '../../src/policy/approvals.js';
import type { PolicyRule } from '../../src/policy/index.js';
import { startUpstream, type Upstream } from './upstream.js';
import { auditLog, codeOf, userContext } from './helpers.js';

const KEY = 'sk_live_HEADER_POLICY_SECRET';
let up: Upstream;
const alice = userContext('alice');

beforeAll(async () => {
  up = await startUpstream();
  // Like Express `method-override` or Rails: the override header decides the method that runs.
  up.route('/api/items/7', (req, res) => {
    const ran = String(req.headers['x-http-method-override'] ?? req.headers['x-method-override'] ?? req.method);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ran }));
  });
});
afterAll(() => up.close());
beforeEach(() => up.clear());

function make(tool: Partial<ToolDefinition> = {}, policies?: PolicyRule[], extra: Partial<ToolFetchOptions> = {}) {
  const log = auditLog();
  const tf = createToolFetch({
    agent: { id: 'agent-1' },
    tools: [{ name: 'items', baseUrl: `${up.origin}/api`, auth: { type: 'apiKey', key: KEY }, capabilities: [{ method: 'GET', path: '/api/items/:id' }], ...tool }],
    policies: policies ?? [{ agent: 'agent-1', tool: 'items' }],
    audit: log.sink,
    ...extra,
  });
  return { tf, log };
}

async function failure(p: Promise<unknown>): Promise<Record<string, unknown> & { message: string }> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown> & { message: string };
  }
  throw new Error('resolved');
}

describe('refused unless the tool allows them', () => {
  const url = () => `${up.origin}/api/items/7`;
  const cases: [string, () => RequestInit, string][] = [
    ['X-HTTP-Method-Override', () => ({ headers: { 'X-HTTP-Method-Override': 'DELETE' } }), 'x-http-method-override'],
    ['X-Method-Override', () => ({ headers: { 'x-method-override': 'DELETE' } }), 'x-method-override'],
    ['X-HTTP-Method', () => ({ headers: { 'X-HTTP-Method': 'DELETE' } }), 'x-http-method'],
    ['override in a Headers object', () => ({ headers: new Headers({ 'x-http-method-override': 'PUT' }) }), 'x-http-method-override'],
    ['override in array form', () => ({ headers: [['X-Http-Method-Override', 'DELETE']] }), 'x-http-method-override'],
    ['underscore spelling (CGI reads it as the header)', () => ({ headers: { X_HTTP_Method_Override: 'DELETE' } }), 'x-http-method-override'],
    ['X-Original-URL (path override)', () => ({ headers: { 'X-Original-URL': '/admin/delete-all' } }), 'x-original-url'],
    ['X-Rewrite-URL', () => ({ headers: { 'X-Rewrite-URL': '/admin' } }), 'x-rewrite-url'],
    ['X-Host', () => ({ headers: { 'X-Host': 'admin.internal' } }), 'x-host'],
    ['X-HTTP-Host-Override', () => ({ headers: { 'X-HTTP-Host-Override': 'admin.internal' } }), 'x-http-host-override'],
    ['Host naming another host', () => ({ headers: { Host: 'admin.internal' } }), 'host'],
    ['Host naming another spelling of loopback', () => ({ headers: { Host: `localhost:${up.port}` } }), 'host'],
  ];
  for (const [label, init, name] of cases) {
    it(label, async () => {
      const { tf, log } = make();
      const err = await failure(tf(url(), { ...init(), context: alice }));
      expect(err).toMatchObject({ code: 'REQUEST_INVALID', status: 400, field: `headers.${name}`, reason: 'header_not_allowed' });
      expect(err.message).toContain('items');
      expect(err.message).not.toContain(KEY);
      expect(up.received).toHaveLength(0);
      expect(log.events.at(-1)).toMatchObject({ type: 'tool.request', tool: 'items', decision: 'deny', code: 'REQUEST_INVALID', reason: 'header_not_allowed', path: '/api/items/7' });
    });
  }

  it('a Request input carrying an override is refused the same way', async () => {
    const { tf } = make();
    const req = new Request(`${up.origin}/api/items/7`, { headers: { 'x-http-method-override': 'DELETE' } });
    expect(await codeOf(tf(req, { context: alice }))).toBe('REQUEST_INVALID');
    expect(up.received).toHaveLength(0);
  });

  it('Host equal to the URL’s is dropped (fetch sets it), not refused', async () => {
    const { tf } = make();
    const res = await tf(`${up.origin}/api/items/7`, { headers: { Host: `127.0.0.1:${up.port}` }, context: alice });
    expect(await res.json()).toEqual({ ran: 'GET' });
    expect(up.received[0]!.headers.host).toBe(`127.0.0.1:${up.port}`);
  });

  it('hop-by-hop headers are stripped, not refused: the caller’s hop is not the tool’s', async () => {
    const { tf } = make();
    const res = await tf(`${up.origin}/api/items/7`, {
      context: alice,
      headers: { Connection: 'x-end-user-id, close', 'Keep-Alive': 'timeout=5', TE: 'trailers', Trailer: 'x-sig', Upgrade: 'h2c', 'Proxy-Connection': 'keep-alive', 'Transfer-Encoding': 'chunked', 'X-Keep': 'yes' },
    });
    expect(res.status).toBe(200);
    const got = up.received[0]!;
    const names = got.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
    for (const bad of ['keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection', 'transfer-encoding']) expect(names, bad).not.toContain(bad);
    expect(got.headers.connection).not.toContain('x-end-user-id');
    expect(got.headers['x-end-user-id']).toBe('alice');
    expect(got.headers['x-keep']).toBe('yes');
  });
});

describe('an allowed method override is checked like the method itself', () => {
  it('capabilities must allow the overriding method too', async () => {
    const { tf } = make({ allowHeaders: ['X-HTTP-Method-Override'] });
    expect(await codeOf(tf(`${up.origin}/api/items/7`, { headers: { 'X-HTTP-Method-Override': 'DELETE' }, context: alice }))).toBe('CAPABILITY_DENIED');
    expect(up.received).toHaveLength(0);
  });

  it('a policy that denies the overriding method denies the request', async () => {
    const { tf } = make({ allowHeaders: ['x-http-method-override'], capabilities: undefined }, [
      { agent: 'agent-1', tool: 'items' },
      { agent: 'agent-1', tool: 'items', effect: 'deny', capabilities: [{ method: 'DELETE', path: '/api/*' }] },
    ]);
    expect(await codeOf(tf(`${up.origin}/api/items/7`, { headers: { 'x-http-method-override': 'delete' }, context: alice }))).toBe('POLICY_DENIED');
    expect(up.received).toHaveLength(0);
  });

  it('declared, it is sent as is', async () => {
    const { tf } = make({ allowHeaders: ['x-http-method-override'], capabilities: [{ method: 'GET', path: '/api/items/:id' }, { method: 'DELETE', path: '/api/items/:id' }] });
    const res = await tf(`${up.origin}/api/items/7`, { headers: { 'X-HTTP-Method-Override': 'DELETE' }, context: alice });
    expect(await res.json()).toEqual({ ran: 'DELETE' });
    expect(up.received[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
  });

  it('its value must be one method: lists, CONNECT/TRACE and junk are refused', async () => {
    const { tf } = make({ allowHeaders: ['x-http-method-override'], capabilities: undefined });
    for (const value of ['GET, DELETE', 'TRACE', 'connect', 'DELETE /admin', '']) {
      expect(await codeOf(tf(`${up.origin}/api/items/7`, { headers: { 'x-http-method-override': value }, context: alice })), value).toBe('REQUEST_INVALID');
    }
    const twice = new Headers();
    twice.append('x-http-method-override', 'GET');
    twice.append('x-http-method-override', 'DELETE');
    expect(await codeOf(tf(`${up.origin}/api/items/7`, { headers: twice, context: alice }))).toBe('REQUEST_INVALID');
    expect(up.received).toHaveLength(0);
  });

  it('allowing one override does not allow the others', async () => {
    const { tf } = make({ allowHeaders: ['x-http-method-override'], capabilities: undefined });
    expect(await codeOf(tf(`${up.origin}/api/items/7`, { headers: { 'x-method-override': 'DELETE' }, context: alice }))).toBe('REQUEST_INVALID');
    expect(await codeOf(tf(`${up.origin}/api/items/7`, { headers: { 'X-Original-URL': '/admin' }, context: alice }))).toBe('REQUEST_INVALID');
    expect(up.received).toHaveLength(0);
  });
});

describe('approvals bind every allowed header', () => {
  function withApprovals() {
    const approvals = createApprovals();
    const { tf } = make({ allowHeaders: ['X-HTTP-Method-Override', 'X-Original-URL'], capabilities: undefined }, [{ agent: 'agent-1', tool: 'items', effect: 'approval' }], { approvals });
    return { tf, approvals };
  }
  const url = () => `${up.origin}/api/items/7`;

  it('an approval for GET /api/items/7 cannot be spent with an override header', async () => {
    const { tf, approvals } = withApprovals();
    const first = await failure(tf(url(), { context: alice }));
    expect(first.code).toBe('APPROVAL_REQUIRED');
    await approvals.approve(first.approvalId as string, { approver: 'lead' });

    const attack = await failure(tf(url(), { headers: { 'X-HTTP-Method-Override': 'DELETE' }, context: alice }));
    expect(attack.code).toBe('APPROVAL_REQUIRED');
    expect(attack.approvalId).not.toBe(first.approvalId);
    expect(attack.approval).toMatchObject({ method: 'GET', path: '/api/items/7', host: `127.0.0.1:${up.port}`, headers: { 'x-http-method-override': 'DELETE' } });
    expect(up.received).toHaveLength(0);

    // the approved request itself still passes, once
    expect(await (await tf(url(), { context: alice })).json()).toEqual({ ran: 'GET' });
    expect(await codeOf(tf(url(), { context: alice }))).toBe('APPROVAL_REQUIRED');
  });

  it('an approval (even reusable) for one override value does not cover another, nor none', async () => {
    const { tf, approvals } = withApprovals();
    const del = await failure(tf(url(), { headers: { 'x-http-method-override': 'DELETE' }, context: alice }));
    await approvals.approve(del.approvalId as string, { approver: 'lead', ttlSeconds: 600 });
    expect(await (await tf(url(), { headers: { 'x-http-method-override': 'DELETE' }, context: alice })).json()).toEqual({ ran: 'DELETE' });
    // sent, checked and bound upper case, as the method itself
    expect(await (await tf(url(), { headers: { 'X-HTTP-Method-Override': 'delete' }, context: alice })).json()).toEqual({ ran: 'DELETE' });
    for (const headers of [{ 'x-http-method-override': 'PATCH' }, {}, { 'x-http-method-override': 'DELETE', 'x-original-url': '/admin' }] as Record<string, string>[]) {
      const e = await failure(tf(url(), { headers, context: alice }));
      expect(e.code, JSON.stringify(headers)).toBe('APPROVAL_REQUIRED');
      expect(e.approvalId).not.toBe(del.approvalId);
    }
    expect(up.received).toHaveLength(2);
  });

  it('the approver sees the bound headers: a method override’s method, any other value only as a hash', async () => {
    const { tf, approvals } = withApprovals();
    const e = await failure(tf(url(), { headers: { 'x-http-method-override': 'DELETE', 'x-original-url': '/admin?token=SECRET-IN-HEADER' }, context: alice }));
    const record = await approvals.get(e.approvalId as string);
    expect(record?.summary.headers).toEqual({ 'x-http-method-override': 'DELETE', 'x-original-url': expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(JSON.stringify(await approvals.list())).not.toContain('SECRET-IN-HEADER');
    expect(JSON.stringify(e)).not.toContain('SECRET-IN-HEADER');
  });
});

describe('allowHeaders is checked at construction', () => {
  for (const name of ['authorization', 'Cookie', 'x-end-user-id', 'host', 'connection', 'transfer-encoding', 'x-forwarded-host', 'x-amz-date', 'x-custom', 'x-http-method-overide']) {
    it(`refuses ${name}`, () => {
      let err: unknown;
      try {
        make({ allowHeaders: [name] });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', field: 'tools.0.allowHeaders.0' });
    });
  }
});
