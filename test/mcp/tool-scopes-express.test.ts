/**
 * Per-tool MCP scopes on Express: `agentAuth(verifier, { requiredScopes, mcp })` in front of the MCP
 * SDK's Streamable HTTP transport, on two endpoints — one behind `express.json()` (the body is taken
 * from `req.body`) and one without a body parser (agentAuth reads the stream, bounded, and leaves
 * the parsed body on `req.body` for the transport's `parsedBody`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import express from 'express';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { agentAuth } from '../../src/adapters/express.js';
import { createVerifier } from '../../src/inbound/index.js';
import { protectedResourceMetadata } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { BASE, createToolServer, post, toolCall, toolScopes, toolScopesSuite, type ToolScopesTarget } from './tool-scopes-helpers.js';

let idp: TestIdentityProvider;
let server: Server;
let origin = '';
const targets: Record<string, ToolScopesTarget> = {};

beforeAll(async () => {
  idp = await createTestIdentityProvider({ users: { alice: { email: 'alice@example.com' } } });
  const app = express();
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  for (const [path, parser] of [
    ['/mcp', true],
    ['/mcp-stream', false],
  ] as const) {
    const resource = `${origin}${path}`;
    const meta = protectedResourceMetadata({ resource, authorizationServers: [idp.issuer], scopesSupported: [BASE] });
    const verifier = createVerifier({
      providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource] }],
      resourceMetadataUrl: meta.url,
    });
    app.get(meta.path, (_req, res) => {
      res.set('access-control-allow-origin', '*').json(meta.document);
    });
    const guard = agentAuth(verifier, { requiredScopes: [BASE], mcp: toolScopes });
    const handler: express.RequestHandler = async (req, res) => {
      const mcp = createToolServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        void transport.close();
        void mcp.close();
      });
      await mcp.connect(transport);
      await transport.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, req.body);
    };
    if (parser) app.post(path, express.json({ limit: '4mb' }), guard, handler);
    else app.post(path, guard, handler);
    targets[path] = { resource, metadataUrl: meta.url, idp };
  }

  // What a handler behind the guard sees of the body and of X-End-User-ID.
  const resource = `${origin}/mcp`;
  const echoVerifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource] }] });
  app.post('/echo', agentAuth(echoVerifier, { mcp: toolScopes }), (req, res) => {
    res.json({ endUser: req.headers['x-end-user-id'], body: req.body as unknown, user: req.agentContext?.userId });
  });
  app.get('/echo', agentAuth(echoVerifier, { requiredScopes: [BASE], mcp: toolScopes }), (req, res) => {
    res.json({ user: req.agentContext?.userId });
  });
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await idp?.close();
});

toolScopesSuite('Express behind express.json()', () => targets['/mcp'] as ToolScopesTarget);
toolScopesSuite('Express without a body parser', () => targets['/mcp-stream'] as ToolScopesTarget);

describe('per-tool MCP scopes on Express: the request handed on', () => {
  it('leaves the parsed body on req.body and only the verified X-End-User-ID', async () => {
    const token = await idp.tokenFor({ userId: 'alice', email: 'alice@example.com', scopes: [BASE], audience: `${origin}/mcp` });
    const res = await post(`${origin}/echo`, toolCall(7, 'whoami'), { token, headers: { 'x-end-user-id': 'mallory' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ endUser: 'alice', body: toolCall(7, 'whoami'), user: 'alice' });
  });

  it('without a body parser: invalid JSON is REQUEST_INVALID, and a chunked body is cut off at maxBodyBytes with 413', async () => {
    const url = `${origin}/mcp-stream`;
    const token = await idp.tokenFor({ userId: 'alice', scopes: [BASE], audience: url });
    const bad = await post(url, '{"jsonrpc":"2.0",', { token });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'REQUEST_INVALID', message: 'The request body is not valid JSON' });

    // No Content-Length: the bound is enforced while reading.
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      const chunk = 'x'.repeat(64 * 1024);
      req.write('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{"blob":"');
      for (let sent = 0; sent <= toolScopes.maxBodyBytes; sent += chunk.length) req.write(chunk);
      req.end('"}}}');
    });
    expect(status.status).toBe(413);
    expect(JSON.parse(status.body)).toMatchObject({ error: 'REQUEST_INVALID' });
  });

  it('reads no body for a GET (the SSE stream): the base scopes alone decide', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: [BASE], audience: `${origin}/mcp` });
    const res = await fetch(`${origin}/echo`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const anonymous = await fetch(`${origin}/echo`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe(`Bearer scope="${BASE}"`);
  });

  it('refuses bad MCP options at construction with CONFIG_INVALID', () => {
    const verifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['x'] }] });
    expect(() => agentAuth(verifier, { mcp: { tools: { refund: ['offline_access'] } } })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'agentAuth.mcp.tools.refund.0' }),
    );
    expect(() => agentAuth(verifier, { mcp: [] as never })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'agentAuth.mcp' }));
    // options are accepted as well as a built mcpScopes(...)
    expect(typeof agentAuth(verifier, { mcp: { tools: { whoami: [] } } })).toBe('function');
  });
});
