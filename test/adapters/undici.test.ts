/**
 * agent-iam/undici: what is specific to the undici transport (connection reuse per origin, abort,
 * streaming, redirects as toolFetch expects them, close). The outbound suites run over it too
 * (undici-suites.test.ts); a missing undici is in missing-framework.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToolFetch } from '../../src/outbound/index.js';
import { createUndiciFetch, type UndiciFetch } from '../../src/adapters/undici.js';
import { userContext } from '../outbound/helpers.js';

interface Upstream {
  server: Server;
  origin: string;
  sockets: Set<Socket>;
  seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
}

async function upstream(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const seen: Upstream['seen'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets, seen };
}

let a: Upstream;
let b: Upstream;
let transport: UndiciFetch;
let held: ServerResponse | undefined;

beforeAll(async () => {
  const handler = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/v1/redirect') {
      res.writeHead(302, { location: '/v1/echo?moved=1' });
      res.end();
    } else if (path === '/v1/outside') {
      res.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere' });
      res.end();
    } else if (path === '/v1/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first,');
      setImmediate(() => res.end('second'));
    } else if (path === '/v1/hold') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      held = res;
    } else if (path === '/v1/empty') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], 'x-upstream': 'yes' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body, user: req.headers['x-end-user-id'] ?? null, auth: req.headers.authorization ?? null }));
    }
  };
  a = await upstream(handler);
  b = await upstream(handler);
  transport = await createUndiciFetch();
});

afterAll(async () => {
  await transport.close();
  for (const u of [a, b]) {
    u.server.closeAllConnections();
    await new Promise<void>((r) => u.server.close(() => r()));
  }
});

function gate() {
  return createToolFetch({
    agent: { id: 'agent' },
    tools: [
      { name: 'a', baseUrl: a.origin, auth: { type: 'apiKey', key: 'sk_test_a' } },
      { name: 'b', baseUrl: b.origin, auth: { type: 'none' } },
    ],
    policies: [{ agent: 'agent', tool: '*' }],
    fetch: transport,
  });
}

describe('agent-iam/undici transport', () => {
  it('returns a real Response: status, headers (set-cookie kept apart), url, body; credential and identity injected', async () => {
    const res = await gate()(`${a.origin}/v1/echo?x=1`, { context: userContext('alice'), headers: { authorization: 'Bearer forged', 'x-end-user-id': 'mallory' } });
    expect(res).toBeInstanceOf(Response);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('yes');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(res.url).toBe(`${a.origin}/v1/echo?x=1`);
    expect(await res.json()).toEqual({ method: 'GET', url: '/v1/echo?x=1', body: '', user: 'alice', auth: 'Bearer sk_test_a' });
  });

  it('sends bodies as fetch does (string, bytes, URLSearchParams, a stream) with fetch content types', async () => {
    const tf = gate();
    const text = await (await tf(`${b.origin}/v1/echo`, { method: 'POST', body: 'hello' })).json();
    expect(text.body).toBe('hello');
    expect(b.seen.at(-1)?.headers['content-type']).toBe('text/plain;charset=UTF-8');
    const bytes = await (await tf(`${b.origin}/v1/echo`, { method: 'PUT', body: new TextEncoder().encode('raw') })).json();
    expect(bytes.body).toBe('raw');
    const form = await (await tf(`${b.origin}/v1/echo`, { method: 'POST', body: new URLSearchParams({ q: 'a b' }) })).json();
    expect(form.body).toBe('q=a+b');
    expect(b.seen.at(-1)?.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8');
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('str'));
        c.enqueue(new TextEncoder().encode('eam'));
        c.close();
      },
    });
    const streamed = await (await tf(`${b.origin}/v1/echo`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)).json();
    expect(streamed.body).toBe('stream');
  });

  it('reuses one connection per origin for sequential calls, and keeps the origins apart', async () => {
    const tf = gate();
    const beforeA = a.sockets.size;
    const beforeB = b.sockets.size;
    for (let i = 0; i < 10; i++) {
      await (await tf(`${a.origin}/v1/echo?i=${i}`)).arrayBuffer();
      await (await tf(`${b.origin}/v1/echo?i=${i}`)).arrayBuffer();
    }
    expect(a.sockets.size - beforeA).toBeLessThanOrEqual(1);
    expect(b.sockets.size - beforeB).toBeLessThanOrEqual(1);
    expect(a.sockets.size).toBeGreaterThan(0);
  });

  it('streams a body that has no length', async () => {
    const res = await gate()(`${b.origin}/v1/stream`);
    expect(res.body).toBeInstanceOf(ReadableStream);
    expect(await res.text()).toBe('first,second');
  });

  it('a 204 has a null body', async () => {
    const res = await gate()(`${b.origin}/v1/empty`);
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
  });

  it('redirects: toolFetch follows one inside the tool, re-checked, and refuses one leaving it; manual returns the 3xx', async () => {
    const tf = gate();
    const res = await tf(`${a.origin}/v1/redirect`);
    expect(res.status).toBe(200);
    expect((await res.json()).url).toBe('/v1/echo?moved=1');
    await expect(tf(`${a.origin}/v1/outside`)).rejects.toMatchObject({ code: 'REDIRECT_BLOCKED' });
    const manual = await tf(`${a.origin}/v1/redirect`, { redirect: 'manual' });
    expect(manual.status).toBe(302);
    expect(manual.headers.get('location')).toBe('/v1/echo?moved=1');
    await expect(transport(`${a.origin}/v1/redirect`, { redirect: 'error' })).rejects.toBeInstanceOf(TypeError);
  });

  it('an abort before the answer rejects with the signal reason; after the headers it errors the body', async () => {
    const tf = gate();
    const before = new AbortController();
    before.abort();
    await expect(tf(`${b.origin}/v1/echo`, { signal: before.signal })).rejects.toMatchObject({ name: 'AbortError' });

    const during = new AbortController();
    const res = await tf(`${b.origin}/v1/hold`, { signal: during.signal });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('partial');
    during.abort();
    await expect(reader.read()).rejects.toBeDefined();
    held?.end();
  });

  it('timeoutMs of toolFetch is a TimeoutError over undici too', async () => {
    const tf = createToolFetch({ agent: { id: 'agent' }, tools: [{ name: 'b', baseUrl: b.origin, auth: { type: 'none' } }], policies: [{ agent: 'agent', tool: 'b' }], fetch: transport, timeoutMs: 50 });
    const res = tf(`${b.origin}/v1/hold`).then((r) => r.text());
    await expect(res).rejects.toMatchObject({ name: 'TimeoutError' });
    held?.end();
  });

  it('an unreachable tool is TOOL_UNAVAILABLE naming the network code, and close() closes the pools', async () => {
    const closed = await createUndiciFetch();
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const tf = createToolFetch({ agent: { id: 'agent' }, tools: [{ name: 'gone', baseUrl: `http://127.0.0.1:${port}`, auth: { type: 'apiKey', key: 'sk_secret_1' } }], policies: [{ agent: 'agent', tool: 'gone' }], fetch: closed });
    const error = await tf(`http://127.0.0.1:${port}/x`).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TOOL_UNAVAILABLE', reason: 'tool_unreachable' });
    expect((error as Error).message).toContain('ECONNREFUSED');
    expect(JSON.stringify(error)).not.toContain('sk_secret_1');
    await closed.close();
    await expect(closed(`${b.origin}/v1/echo`)).rejects.toBeInstanceOf(TypeError);
  });
});
