/**
 * The official MCP TypeScript SDK against an MCP server protected by agent-iam: the SDK client is
 * refused without a token, follows `resource_metadata` from the 401 to our RFC 9728 document, registers
 * at the (real, local) authorization server, runs PKCE for a user, and then calls a tool that sees the
 * verified user.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import express from 'express';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { agentAuth } from '../../src/adapters/express.js';
import { createVerifier } from '../../src/inbound/index.js';
import { currentContext } from '../../src/context.js';
import { protectedResourceMetadata } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const REDIRECT = 'http://127.0.0.1:9/oauth/callback';

let idp: TestIdentityProvider;
let server: Server;
let resource: string;
let metadataUrl: string;

beforeAll(async () => {
  idp = await createTestIdentityProvider({ users: { alice: { email: 'alice@example.com' } } });
  const app = express();
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  resource = `${origin}/mcp`;
  const meta = protectedResourceMetadata({ resource, authorizationServers: [idp.issuer], scopesSupported: ['mcp:tools'] });
  metadataUrl = meta.url;
  const verifier = createVerifier({
    providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource], userIdClaim: 'email' }],
    resourceMetadataUrl: meta.url,
  });

  app.get(meta.path, (_req, res) => {
    res.set('access-control-allow-origin', '*').json(meta.document);
  });
  app.post('/mcp', express.json(), agentAuth(verifier), async (req, res) => {
    const mcp = new McpServer({ name: 'protected', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'Who is calling', inputSchema: { greeting: z.string() } }, async ({ greeting }) => ({
      content: [{ type: 'text', text: `${greeting}, ${currentContext()?.userId ?? 'nobody'}` }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    // Express's request and response are Node's, with extra members.
    await transport.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, req.body);
  });
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await idp?.close();
});

/** An in-memory OAuth client provider for the SDK; the "browser" is the IdP's headless authorize(). */
class TestOAuthProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier = '';
  authorizationUrl?: URL;
  get redirectUrl(): string {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: 'mcp-sdk-test',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp:tools',
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(v: string) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

describe('MCP SDK client against an agent-iam protected MCP server', () => {
  it('answers 401 with resource_metadata pointing at the RFC 9728 document', async () => {
    const res = await fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain(`resource_metadata="${metadataUrl}"`);
  });

  it('discovers, registers, authorizes a user with PKCE, and calls a tool that sees the verified user', async () => {
    const provider = new TestOAuthProvider();
    const first = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
    const client = new Client({ name: 'mcp-sdk-test', version: '1.0.0' });
    await expect(client.connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    expect(provider.client?.client_id).toEqual(expect.any(String)); // dynamically registered at the IdP
    const url = provider.authorizationUrl!;
    expect(url.origin).toBe(idp.issuer);
    expect(url.searchParams.get('resource')).toBe(resource);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');

    const callback = new URL(await idp.authorize(url.href, { userId: 'alice' }));
    await first.finishAuth(callback.searchParams.get('code')!);
    expect(provider.saved?.access_token).toEqual(expect.any(String));

    const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
    const authed = new Client({ name: 'mcp-sdk-test', version: '1.0.0' });
    await authed.connect(transport);
    const result = await authed.callTool({ name: 'whoami', arguments: { greeting: 'hello' } });
    expect(result.content).toEqual([{ type: 'text', text: 'hello, alice@example.com' }]);
    await authed.close();
  });

  it('refuses a token minted for another audience', async () => {
    const token = await idp.tokenFor({ userId: 'alice', email: 'alice@example.com', audience: 'https://other.example' });
    const res = await fetch(resource, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('TOKEN_AUDIENCE_MISMATCH');
  });
});
