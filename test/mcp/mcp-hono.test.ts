/**
 * The same protected MCP server on Hono with the SDK's Web-standard transport: `meta.handler` serves
 * the metadata (with CORS preflight), `agentAuth` from agent-iam/hono guards `/mcp`, and the tool sees
 * the verified user through `currentContext()`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { discoverOAuthProtectedResourceMetadata, extractResourceMetadataUrl } from '@modelcontextprotocol/sdk/client/auth.js';
import { agentAuth } from '../../src/adapters/hono.js';
import { createVerifier, currentContext } from '../../src/index.js';
import { protectedResourceMetadata } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

let idp: TestIdentityProvider;
let server: ServerType;
let resource = '';

beforeAll(async () => {
  idp = await createTestIdentityProvider({ users: { bob: { email: 'bob@example.com' } } });
  // Listen first (the resource URL carries the port); routes are added before any request arrives.
  const app = new Hono();
  await new Promise<void>((resolve) => {
    server = serve({ fetch: (req) => app.fetch(req), hostname: '127.0.0.1', port: 0 }, (info) => {
      resource = `http://127.0.0.1:${info.port}/mcp`;
      resolve();
    });
  });
  const meta = protectedResourceMetadata({ resource, authorizationServers: [idp.issuer], scopesSupported: ['mcp:tools'] });
  const verifier = createVerifier({
    providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource], userIdClaim: 'email' }],
    resourceMetadataUrl: meta.url,
  });
  app.all(meta.path, (c) => meta.handler(c.req.raw));
  app.post('/mcp', agentAuth(verifier, { requiredScopes: ['mcp:tools'] }), async (c) => {
    const mcp = new McpServer({ name: 'hono-protected', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'Who is calling' }, async () => ({
      content: [{ type: 'text', text: currentContext()?.userId ?? 'nobody' }],
    }));
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await mcp.connect(transport);
    return transport.handleRequest(c.req.raw);
  });
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await idp?.close();
});

describe('protected MCP server on Hono', () => {
  it('challenges with resource_metadata that the SDK follows, and answers a CORS preflight', async () => {
    const res = await fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(401);
    const metadataUrl = extractResourceMetadataUrl(res);
    expect(metadataUrl?.pathname).toBe('/.well-known/oauth-protected-resource/mcp');
    const prm = await discoverOAuthProtectedResourceMetadata(resource, { resourceMetadataUrl: metadataUrl });
    expect(prm).toMatchObject({ resource, authorization_servers: [idp.issuer], scopes_supported: ['mcp:tools'] });

    const preflight = await fetch(metadataUrl!, {
      method: 'OPTIONS',
      headers: { origin: 'https://inspector.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'mcp-protocol-version' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('lets a token for this resource with the scope through, and the tool sees the user', async () => {
    const token = await idp.tokenFor({ userId: 'bob', scopes: ['mcp:tools'], audience: resource });
    const client = new Client({ name: 'sdk', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    expect(result.content).toEqual([{ type: 'text', text: 'bob@example.com' }]);
    await client.close();
  });

  it('refuses a token without the scope with 403 insufficient_scope', async () => {
    const token = await idp.tokenFor({ userId: 'bob', scopes: ['other'], audience: resource });
    const res = await fetch(resource, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toContain('insufficient_scope');
  });
});
