/**
 * Per-tool MCP scopes on Hono (@hono/node-server): `agentAuth(verifier, { requiredScopes, mcp })`
 * in front of the SDK's Web-standard transport, which reads `c.req.raw` itself: agentAuth reads the
 * body (bounded) and hands on an equal request, so the transport and later handlers still can.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { agentAuth } from '../../src/adapters/hono.js';
import { createVerifier } from '../../src/inbound/index.js';
import { protectedResourceMetadata } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { BASE, createToolServer, post, toolCall, toolScopes, toolScopesSuite, type ToolScopesTarget } from './tool-scopes-helpers.js';

let idp: TestIdentityProvider;
let server: ServerType;
let origin = '';
let target: ToolScopesTarget;

beforeAll(async () => {
  idp = await createTestIdentityProvider({ users: { alice: { email: 'alice@example.com' } } });
  const app = new Hono();
  await new Promise<void>((resolve) => {
    server = serve({ fetch: (req, env) => app.fetch(req, env), hostname: '127.0.0.1', port: 0 }, (info) => {
      origin = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
  const resource = `${origin}/mcp`;
  const meta = protectedResourceMetadata({ resource, authorizationServers: [idp.issuer], scopesSupported: [BASE] });
  const verifier = createVerifier({
    providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource] }],
    resourceMetadataUrl: meta.url,
  });
  app.all(meta.path, (c) => meta.handler(c.req.raw));
  app.post('/mcp', agentAuth(verifier, { requiredScopes: [BASE], mcp: toolScopes }), async (c) => {
    const mcp = createToolServer();
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await mcp.connect(transport);
    return transport.handleRequest(c.req.raw);
  });
  // What a handler behind the guard sees: the body, still readable, and only the verified user,
  // also through a copy of the request (which on @hono/node-server could hold the client's headers).
  app.post('/echo', agentAuth(verifier, { mcp: toolScopes }), async (c) => {
    const copy = c.req.raw.clone();
    return c.json({
      endUser: c.req.header('x-end-user-id'),
      copyEndUser: copy.headers.get('x-end-user-id'),
      body: await c.req.json(),
      user: c.get('agentContext').userId,
    });
  });
  // A body that an earlier middleware already read through Hono is taken from Hono's cache.
  app.post(
    '/echo-parsed',
    async (c, next) => {
      await c.req.json();
      await next();
    },
    agentAuth(verifier, { mcp: toolScopes }),
    async (c) => c.json({ user: c.get('agentContext').userId, body: await c.req.json() }),
  );
  target = { resource, metadataUrl: meta.url, idp };
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await idp?.close();
});

toolScopesSuite('Hono', () => target);

describe('per-tool MCP scopes on Hono: the request handed on', () => {
  it('keeps the body readable and only the verified X-End-User-ID, in c.req and in a copy of c.req.raw', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: [BASE], audience: `${origin}/mcp` });
    const res = await post(`${origin}/echo`, toolCall(7, 'whoami'), { token, headers: { 'x-end-user-id': 'mallory', 'mcp-method': 'tools/call' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ endUser: 'alice', copyEndUser: 'alice', body: toolCall(7, 'whoami'), user: 'alice' });
  });

  it('takes a body that Hono already parsed, and still checks it', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: [BASE], audience: `${origin}/mcp` });
    const ok = await post(`${origin}/echo-parsed`, toolCall(8, 'whoami'), { token });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ user: 'alice', body: toolCall(8, 'whoami') });
    const short = await post(`${origin}/echo-parsed`, toolCall(9, 'refund'), { token });
    expect(short.status).toBe(403);
    expect(short.headers.get('www-authenticate')).toContain('scope="payments:write"');
    const mismatch = await post(`${origin}/echo-parsed`, toolCall(9, 'refund'), { token, headers: { 'mcp-name': 'whoami' } });
    expect(mismatch.status).toBe(400);
  });

  it('invalid JSON is REQUEST_INVALID with our JSON body', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: [BASE], audience: `${origin}/mcp` });
    const bad = await post(`${origin}/mcp`, '[{"jsonrpc":"2.0"', { token });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'REQUEST_INVALID', message: 'The request body is not valid JSON' });
  });
});
