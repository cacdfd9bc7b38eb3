/**
 * A protected MCP server: the official MCP SDK's `McpServer` on its Streamable HTTP transport inside
 * Express, guarded by agent-iam, with RFC 9728 protected-resource metadata so that MCP clients find
 * the authorization server by themselves.
 *
 *   npm run example:mcp-server        (or: npx tsx examples/mcp-server/index.ts)
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing, a real oidc-provider)
 * is the authorization server. After starting the server, the same script plays the MCP client with
 * the official SDK: refused without a token (401 with `resource_metadata`), it discovers the metadata,
 * registers itself, gets alice's consent with PKCE, and calls the `whoami` tool, which answers with
 * the verified user. Tokens minted for another resource or without the scope are refused. It prints
 * each step (never a token) and exits 0, or 1 if anything is not as expected.
 *
 * It imports agent-iam by name, as your own code would (in this repository, tsconfig `paths` map
 * the names to src/, so no build step is needed).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { createVerifier, currentContext } from 'agent-iam';
import { agentAuth } from 'agent-iam/express';
import { protectedResourceMetadata } from 'agent-iam/mcp';
import { createTestIdentityProvider, type TestIdentityProvider } from 'agent-iam/testing';

const SCOPE = 'mcp:tools';

// A hung example must not hang CI.
setTimeout(() => {
  console.error('mcp-server: timed out');
  process.exit(1);
}, 40_000).unref();

// ─── The server ────────────────────────────────────────────────────────────────────────────────────

/** One MCP server per request (stateless Streamable HTTP); its tools read the verified caller. */
function createMcpServer(): McpServer {
  const mcp = new McpServer({ name: 'notes', version: '1.0.0' });
  mcp.registerTool('whoami', { description: 'The verified user calling this server' }, async () => {
    // agentAuth runs the request inside the verified context, so any code on this request sees it.
    const ctx = currentContext();
    const user = { userId: ctx?.userId, email: ctx?.email, scopes: ctx?.scopes, issuer: ctx?.issuer };
    return { content: [{ type: 'text', text: JSON.stringify(user) }] };
  });
  return mcp;
}

/**
 * Publish the metadata, verify every request to /mcp, and hand verified requests to the MCP SDK.
 * `resource` is this server's public URL (`https://mcp.example.com/mcp` in production).
 */
function protectMcpServer(app: express.Express, resource: string, authorizationServer: string, jwksUri: string): void {
  // RFC 9728: where clients learn which authorization server issues tokens for this resource.
  const meta = protectedResourceMetadata({ resource, authorizationServers: [authorizationServer], scopesSupported: [SCOPE], resourceName: 'Notes MCP server' });
  app.get(meta.path, (_req, res) => {
    res.set('access-control-allow-origin', '*').json(meta.document);
  });

  // Tokens must be issued for this resource (audience), by this issuer, with the scope; every
  // refusal carries `WWW-Authenticate: Bearer ..., resource_metadata="<meta.url>"`.
  const verifier = createVerifier({
    providers: [{ issuer: authorizationServer, jwksUri, audiences: [resource], userIdClaim: 'email' }],
    resourceMetadataUrl: meta.url,
  });
  app.all('/mcp', agentAuth(verifier, { requiredScopes: [SCOPE] }));

  app.post('/mcp', express.json(), async (req, res) => {
    const mcp = createMcpServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    // Express's request and response are Node's, with extra members.
    await transport.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, req.body);
  });
  // Stateless server: no SSE stream to open (GET) and no session to end (DELETE).
  app.all('/mcp', (_req, res) => {
    res.status(405).set('allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  });
}

// ─── The client side: what an MCP client (an IDE, a desktop assistant, an agent) does ──────────────

const REDIRECT = 'http://127.0.0.1:9/oauth/callback'; // never called: the consent below is headless

/** The SDK's OAuth hooks, kept in memory. A real client stores these per user and opens a browser. */
class InMemoryOAuthClient implements OAuthClientProvider {
  private client?: OAuthClientInformationMixed;
  private saved?: OAuthTokens;
  private verifier = '';
  authorizationUrl?: URL;
  readonly redirectUrl = REDIRECT;
  readonly clientMetadata: OAuthClientMetadata = {
    client_name: 'mcp-server example client',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
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
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/** A fetch that prints each request the SDK client makes (method, URL without query, status), and our metadata once. */
function tracingFetch(label: string): typeof fetch {
  let shownMetadata = false;
  return async (input, init) => {
    const res = await fetch(input, init);
    const url = new URL(input instanceof Request ? input.url : input);
    console.log(`   ${label} ${init?.method ?? (input instanceof Request ? input.method : 'GET')} ${url.origin}${url.pathname} → ${res.status}`);
    const challenge = res.headers.get('www-authenticate');
    if (challenge !== null) console.log(`     WWW-Authenticate: ${challenge}`);
    if (url.pathname.startsWith('/.well-known/oauth-protected-resource') && res.ok && !shownMetadata) {
      shownMetadata = true;
      console.log(`     ${await res.clone().text()}`);
    }
    return res;
  };
}

/** Connect with a given bearer token; returns the status and agent-iam error code the server refused with. */
async function refusalWith(resource: string, token: string): Promise<string> {
  const client = new Client({ name: 'example', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(resource), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    fetch: tracingFetch('client'),
  });
  try {
    await client.connect(transport);
    await client.close();
    return 'accepted';
  } catch (error) {
    // The SDK's error carries the status (`code`) and the response body: `{ error: <agent-iam code>, message }`.
    const e = error as { code?: number; message: string };
    return `${e.code} ${/"error":"([A-Z_]+)"/.exec(e.message)?.[1] ?? e.message}`;
  }
}

async function listen(app: express.Express): Promise<{ server: Server; origin: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function main(idp: TestIdentityProvider, resource: string): Promise<boolean> {
  let ok = true;
  const expect = (what: string, pass: boolean): void => {
    if (!pass) {
      ok = false;
      console.log(`   UNEXPECTED: ${what}`);
    }
  };

  // 1. An MCP client that holds no token yet is refused; it follows resource_metadata from the 401
  //    to our metadata, then to the authorization server, registers itself (RFC 7591) and asks the
  //    user to authorize (PKCE).
  console.log('1. MCP client without a token:');
  const oauth = new InMemoryOAuthClient();
  const first = new StreamableHTTPClientTransport(new URL(resource), { authProvider: oauth, fetch: tracingFetch('client') });
  let refusedWithoutToken = false;
  try {
    await new Client({ name: 'example', version: '1.0.0' }).connect(first);
  } catch (error) {
    refusedWithoutToken = error instanceof UnauthorizedError;
  }
  expect('refused without a token', refusedWithoutToken);
  const authorizationUrl = oauth.authorizationUrl;
  expect('asked the user to authorize at the identity provider', authorizationUrl?.origin === idp.issuer);
  if (authorizationUrl === undefined) return false;
  console.log(`   → refused; the user must authorize at ${authorizationUrl.origin}${authorizationUrl.pathname} (resource=${authorizationUrl.searchParams.get('resource')}, code_challenge_method=${authorizationUrl.searchParams.get('code_challenge_method')})`);

  // 2. The user consents (a browser in real life; the test IdP's headless consent here), and the
  //    client redeems the code for a token issued for this resource.
  console.log('2. alice consents; the client redeems the code:');
  const callback = new URL(await idp.authorize(authorizationUrl, { userId: 'alice' }));
  await first.finishAuth(callback.searchParams.get('code') ?? '');

  // 3. With alice's token the client connects and calls the tool, which sees the verified user.
  console.log('3. MCP client with alice\'s token:');
  const client = new Client({ name: 'example', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(resource), { authProvider: oauth }));
  const tools = await client.listTools();
  console.log(`   tools: ${tools.tools.map((t) => t.name).join(', ')}`);
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  const text = (result.content as Array<{ type: string; text?: string }>)[0]?.text ?? '';
  console.log(`   whoami → ${text}`);
  await client.close();
  const user = JSON.parse(text || '{}') as { userId?: string; scopes?: string[] };
  expect('whoami sees alice', user.userId === 'alice@example.com' && user.scopes?.includes(SCOPE) === true);

  // 4. Tokens the server must refuse: one minted for another resource (no token passthrough), and
  //    one for this resource without the scope.
  console.log('4. tokens this server refuses:');
  const otherAudience = await refusalWith(resource, await idp.tokenFor({ userId: 'alice', scopes: [SCOPE], audience: 'https://other-mcp.example.com/mcp' }));
  console.log(`   token for another resource → ${otherAudience}`);
  expect('another audience is refused', otherAudience === '401 TOKEN_AUDIENCE_MISMATCH');
  const noScope = await refusalWith(resource, await idp.tokenFor({ userId: 'alice', scopes: ['notes:read'], audience: resource }));
  console.log(`   token without ${SCOPE} → ${noScope}`);
  expect('a token without the scope is refused', noScope === '403 INSUFFICIENT_SCOPE');
  return ok;
}

// ─── Wiring ────────────────────────────────────────────────────────────────────────────────────────

const idp = await createTestIdentityProvider({ users: { alice: { email: 'alice@example.com' } } });
const app = express();
const { server, origin } = await listen(app); // listen first: the resource URL carries the port
const resource = `${origin}/mcp`;
protectMcpServer(app, resource, idp.issuer, idp.jwksUri);
console.log(`MCP server ${resource}, authorization server ${idp.issuer}`);

let passed = false;
try {
  passed = await main(idp, resource);
} catch (error) {
  console.error('mcp-server: failed:', error instanceof Error ? error.message : error);
} finally {
  server.closeAllConnections();
  await Promise.all([new Promise((resolve) => server.close(resolve)), idp.close()]);
}
console.log(passed ? 'mcp-server: OK' : 'mcp-server: FAILED');
process.exit(passed ? 0 : 1);
