import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch, type ToolFetch } from '../../src/outbound/index.js';
import { redirect, startUpstream, type Upstream } from './upstream.js';
import { auditLog, codeOf, userContext } from './helpers.js';

let up: Upstream;
let evil: Upstream;
let tf: ToolFetch;
const log = auditLog();
const ctx = userContext('alice');

beforeAll(async () => {
  up = await startUpstream();
  evil = await startUpstream();
  tf = createToolFetch({
    agent: { id: 'agent-1' },
    tools: [
      {
        name: 'api',
        baseUrl: `${up.origin}/api`,
        auth: { type: 'apiKey', key: 'KEY-API', header: 'x-api-key' },
        capabilities: [
          { method: '*', path: '/api/*' },
        ],
      },
      { name: 'other', baseUrl: `${up.origin}/other`, auth: { type: 'apiKey', key: 'KEY-OTHER' } },
    ],
    policies: [
      { agent: 'agent-1', tool: 'api' },
      { agent: 'agent-1', tool: 'other' },
      { agent: 'agent-1', tool: 'api', capabilities: [{ method: '*', path: '/api/forbidden' }], effect: 'deny' },
    ],
    audit: log.sink,
  });
  up.route('/api/to-evil', redirect(302, `${evil.origin}/steal`));
  up.route('/api/to-evil-307', redirect(307, `${evil.origin}/steal`));
  up.route('/api/to-other-tool', redirect(307, '/other/x'));
  up.route('/api/to-outside', redirect(301, '/admin'));
  up.route('/api/to-forbidden', redirect(302, '/api/forbidden'));
  up.route('/api/to-dots', redirect(302, '/api/a/%2e%2e/%2e%2e/admin'));
  up.route('/api/to-userinfo', redirect(302, `http://x:y@127.0.0.1:${up.port}/api/final`));
  up.route('/api/to-https', redirect(302, `https://127.0.0.1:${up.port}/api/final`));
  up.route('/api/to-file', redirect(302, 'file:///etc/passwd'));
  up.route('/api/loop', redirect(302, '/api/loop'));
  up.route('/api/303', redirect(303, '/api/final?from=303'));
  up.route('/api/307', redirect(307, '/api/final'));
  up.route('/api/308', redirect(308, 'final'));
  up.route('/api/302-post', redirect(302, '/api/final'));
  for (let i = 0; i < 6; i++) up.route(`/api/chain${i}`, redirect(302, `/api/chain${i + 1}`));
});
afterAll(async () => {
  await up.close();
  await evil.close();
});
beforeEach(() => {
  up.clear();
  evil.clear();
});

describe('redirects', () => {
  it('cross-origin redirect (302 and 307) is REDIRECT_BLOCKED and nothing reaches the other origin', async () => {
    expect(await codeOf(tf(`${up.origin}/api/to-evil`, { context: ctx }))).toBe('REDIRECT_BLOCKED');
    expect(await codeOf(tf(`${up.origin}/api/to-evil-307`, { method: 'POST', body: 'secret-body', context: ctx }))).toBe(
      'REDIRECT_BLOCKED',
    );
    expect(evil.received).toHaveLength(0);
    expect(log.events.at(-1)).toMatchObject({ type: 'tool.request', decision: 'deny', code: 'REDIRECT_BLOCKED', tool: 'api' });
  });

  it('same origin but another tool’s base path is REDIRECT_BLOCKED (its credential is not sent)', async () => {
    expect(await codeOf(tf(`${up.origin}/api/to-other-tool`, { context: ctx }))).toBe('REDIRECT_BLOCKED');
    expect(up.received.map((r) => r.url)).toEqual(['/api/to-other-tool']);
  });

  it('same origin outside any tool, unsafe or non-http targets are REDIRECT_BLOCKED', async () => {
    for (const p of ['/api/to-outside', '/api/to-dots', '/api/to-userinfo', '/api/to-https', '/api/to-file']) {
      up.clear();
      expect(await codeOf(tf(`${up.origin}${p}`, { context: ctx })), p).toBe('REDIRECT_BLOCKED');
      expect(up.received.map((r) => r.url), p).toEqual([p]);
    }
  });

  it('a hop is re-checked against policy', async () => {
    expect(await codeOf(tf(`${up.origin}/api/to-forbidden`, { context: ctx }))).toBe('POLICY_DENIED');
    expect(up.received.map((r) => r.url)).toEqual(['/api/to-forbidden']);
  });

  it('loops and more than 5 hops are REDIRECT_BLOCKED', async () => {
    expect(await codeOf(tf(`${up.origin}/api/loop`, { context: ctx }))).toBe('REDIRECT_BLOCKED');
    expect(up.received).toHaveLength(6); // the first request and 5 followed hops
    up.clear();
    expect(await codeOf(tf(`${up.origin}/api/chain0`, { context: ctx }))).toBe('REDIRECT_BLOCKED');
    expect(up.received).toHaveLength(6);
    up.clear();
    const res = await tf(`${up.origin}/api/chain1`, { context: ctx }); // 5 hops: chain1..chain6
    expect(res.status).toBe(200);
    expect(up.received).toHaveLength(6);
  });

  it('303 turns into GET without body; credentials and identity re-injected on the hop', async () => {
    const res = await tf(`${up.origin}/api/303`, {
      method: 'POST',
      body: 'payload',
      headers: { 'content-type': 'text/plain' },
      context: ctx,
    });
    expect(res.status).toBe(200);
    const [first, second] = up.received;
    expect(first).toMatchObject({ method: 'POST', url: '/api/303' });
    expect(second).toMatchObject({ method: 'GET', url: '/api/final?from=303' });
    expect(second!.body.length).toBe(0);
    expect(second!.headers['content-type']).toBeUndefined();
    expect(second!.headers['x-api-key']).toBe('KEY-API');
    expect(second!.headers['x-end-user-id']).toBe('alice');
    expect(log.events.filter((e) => e.type === 'tool.redirect').at(-1)).toMatchObject({ status: 303, path: '/api/303' });
  });

  it('307 and 308 keep method and body (relative Location too)', async () => {
    await tf(`${up.origin}/api/307`, { method: 'PUT', body: 'b307', context: ctx });
    await tf(`${up.origin}/api/308`, { method: 'POST', body: new TextEncoder().encode('b308'), context: ctx });
    expect(up.received.map((r) => [r.method, r.url, r.body.toString()])).toEqual([
      ['PUT', '/api/307', 'b307'],
      ['PUT', '/api/final', 'b307'],
      ['POST', '/api/308', 'b308'],
      ['POST', '/api/final', 'b308'],
    ]);
  });

  it('302 after POST becomes GET (as fetch does)', async () => {
    await tf(`${up.origin}/api/302-post`, { method: 'POST', body: 'x', context: ctx });
    expect(up.received.map((r) => r.method)).toEqual(['POST', 'GET']);
  });

  it('a streamed body cannot be replayed on 307: REDIRECT_BLOCKED', async () => {
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('once'));
        c.close();
      },
    });
    expect(await codeOf(tf(`${up.origin}/api/307`, { method: 'POST', body: stream, duplex: 'half', context: ctx } as RequestInit))).toBe(
      'REDIRECT_BLOCKED',
    );
    expect(up.received).toHaveLength(1);
  });

  it('maxRedirects: 0 returns nothing past the first hop', async () => {
    const strict = createToolFetch({
      agent: { id: 'agent-1' },
      tools: [{ name: 'api', baseUrl: `${up.origin}/api` }],
      policies: [{ agent: 'agent-1', tool: 'api' }],
      maxRedirects: 0,
    });
    expect(await codeOf(strict(`${up.origin}/api/307`))).toBe('REDIRECT_BLOCKED');
    expect(up.received).toHaveLength(1);
  });
});

describe('caller redirect modes', () => {
  it("redirect: 'manual' returns the 3xx as is; 'error' is REDIRECT_BLOCKED; neither follows", async () => {
    const res = await tf(`${up.origin}/api/307`, { redirect: 'manual', context: ctx });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe('/api/final');
    expect(await codeOf(tf(new Request(`${up.origin}/api/307`, { redirect: 'error' }), { context: ctx }))).toBe('REDIRECT_BLOCKED');
    expect(up.received.map((r) => r.url)).toEqual(['/api/307', '/api/307']);
  });
});
