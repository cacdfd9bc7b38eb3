/**
 * The other direction: an agent calls an MCP server on behalf of its user. The token manager's
 * connection names only the MCP server (`resource`); it discovers the server's authorization server
 * through our RFC 9728 metadata, registers dynamically, runs PKCE for the user, and toolFetch — used
 * as the official MCP SDK client's `fetch` — calls the server with that user's token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { agentAuth } from '../../src/adapters/express.js';
import { createTokenManager, createToolFetch, createVerifier, currentContext, runWithContext, type AgentContext } from '../../src/index.js';
import { protectedResourceMetadata } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const REDIRECT = 'http://127.0.0.1:9/oauth/callback';
const AGENT_AUD = 'https://agent.example.test';

let idp: TestIdentityProvider;
let server: Server;
let mcpUrl: string;
const seenTokens: string[] = [];

beforeAll(async () => {
  idp = await createTestIdentityProvider({ users: { 'alice@example.com': {} } });
  const app = express();
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  mcpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  const meta = protectedResourceMetadata({ resource: mcpUrl, authorizationServers: [idp.issuer], scopesSupported: ['mcp:tools'] });
  const verifier = createVerifier({
    providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [mcpUrl], userIdClaim: 'sub' }],
    resourceMetadataUrl: meta.url,
  });
  app.get(meta.path, (_req, res) => {
    res.json(meta.document);
  });
  app.post('/mcp', express.json(), agentAuth(verifier, { requiredScopes: ['mcp:tools'] }), async (req, res) => {
    seenTokens.push(String(req.headers.authorization));
    const mcp = new McpServer({ name: 'notes', version: '1.0.0' });
    mcp.registerTool('my-notes', { description: "The caller's notes" }, async () => ({
      content: [{ type: 'text', text: `notes of ${currentContext()?.userId ?? 'nobody'}` }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, req.body);
  });
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await idp?.close();
});

describe('an agent calling an MCP server for its user', () => {
  it('discovers, registers, gets consent, and calls the tool with the user token', async () => {
    const tokens = createTokenManager({
      connections: [{ id: 'notes', resource: mcpUrl, registration: 'dynamic', redirectUri: REDIRECT, scopes: ['mcp:tools'] }],
    });
    const toolFetch = createToolFetch({
      agent: { id: 'assistant' },
      tools: [{ name: 'notes', baseUrl: mcpUrl, auth: { type: 'oauth2', connection: 'notes' } }],
      policies: [{ agent: 'assistant', tool: 'notes' }],
      tokens,
    });
    // The agent's own inbound caller: alice, verified like any request.
    const inbound = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [AGENT_AUD], userIdClaim: 'sub' }] });
    const inboundToken = await idp.tokenFor({ userId: 'alice@example.com', audience: AGENT_AUD });
    const ctx: AgentContext = await inbound.verify({ headers: { authorization: `Bearer ${inboundToken}` } });

    const callTool = () =>
      runWithContext(ctx, async () => {
        const client = new Client({ name: 'assistant', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: toolFetch }));
        try {
          return await client.callTool({ name: 'my-notes', arguments: {} });
        } finally {
          await client.close();
        }
      });

    // No account yet: the agent learns where to send the user.
    const consent = await callTool().then(
      () => undefined,
      (e: unknown) => e as { code?: string; authorizationUrl?: string },
    );
    expect(consent?.code).toBe('CONSENT_REQUIRED');
    const authorizationUrl = new URL(consent!.authorizationUrl!);
    expect(authorizationUrl.origin).toBe(idp.issuer);
    expect(authorizationUrl.searchParams.get('resource')).toBe(mcpUrl);
    expect(authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(seenTokens).toHaveLength(0);

    // The user consents at the identity provider; the callback completes the connection.
    await tokens.completeAuthorization(await idp.authorize(authorizationUrl, { userId: 'alice@example.com' }));
    const result = await callTool();
    expect(result.content).toEqual([{ type: 'text', text: 'notes of alice@example.com' }]);
    // every request the MCP server saw carried alice's token for this server, never the inbound one
    expect(seenTokens.length).toBeGreaterThan(0);
    expect(new Set(seenTokens).size).toBe(1);
    expect(seenTokens[0]).not.toContain(inboundToken);
    expect(idp.stats.token.authorization_code).toBe(1);
  });
});
