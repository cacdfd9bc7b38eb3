/**
 * Interop: agent-iam as an MCP *client* against the MCP TypeScript SDK's own server side, over real
 * HTTP on loopback, with default options on both sides.
 *
 * - Authorization server: the SDK's `mcpAuthRouter` with its demo provider
 *   (`DemoInMemoryAuthProvider`: it "logs in" a demo user at once and redirects to the client's
 *   `redirect_uri` with `code` and `state`, so a plain `fetch` with `redirect: 'manual'` plays the
 *   browser). It lists `token_endpoint_auth_methods_supported: ["client_secret_post", "none"]`,
 *   issues 1-hour access tokens and no refresh tokens, and has no revocation endpoint.
 * - MCP server: the SDK's `McpServer` over a stateless `StreamableHTTPServerTransport`, guarded by
 *   the SDK's `requireBearerAuth({ requiredScopes, resourceMetadataUrl })`, with its protected
 *   resource metadata from the SDK's `mcpAuthMetadataRouter` (`scopes_supported: ["mcp:tools"]`).
 *   One tool, `admin-report`, also needs `mcp:admin` (a second `requireBearerAuth` for that call).
 * - Client: only agent-iam's documented API, configured as the README shows: one `resource`
 *   connection with `registration: 'dynamic'` and a `redirectUri`, an `oauth2` tool for the MCP
 *   server, and the official SDK `Client` with `fetch` = toolFetch.
 *
 * The SDK's demo verifier throws a plain `Error` for an unknown or expired token, which
 * `requireBearerAuth` turns into a 500 without a challenge. A token verifier is meant to throw
 * `InvalidTokenError` (the SDK's bearer-auth contract), so the MCP server here wraps the demo
 * provider's `verifyAccessToken` that way to answer 401 `invalid_token`; one test below keeps the raw
 * demo verifier to show what a client sees then.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestContext } from '../../src/testing/index.js';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import express, { type RequestHandler } from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  createOAuthMetadata,
  getOAuthProtectedResourceMetadataUrl,
  mcpAuthMetadataRouter,
  mcpAuthRouter,
} from '@modelcontextprotocol/sdk/server/auth/router.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidGrantError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { OAuthTokenVerifier } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { OAuthClientInformationFull, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { DemoInMemoryAuthProvider } from '@modelcontextprotocol/sdk/examples/server/demoInMemoryOAuthProvider.js';
import {
  createTokenManager,
  createToolFetch,
  isAgentIamError,
  runWithContext,
  type AgentContext,
  type AgentIamError,
  type ConnectionConfig,
  type TokenManager,
  type ToolFetch,
} from '../../src/index.js';

const REDIRECT = 'http://127.0.0.1:9/oauth/callback';
const USER = 'alice';
const BASE_SCOPES = ['mcp:tools'];
const ADMIN_SCOPES = ['mcp:tools', 'mcp:admin'];
const context: AgentContext = createTestContext({ userId: USER });

/** The demo provider's private token table (it has no revocation endpoint: this is how the AS forgets a token). */
interface DemoToken {
  token: string;
  clientId: string;
  scopes: string[];
  expiresAt: number;
  resource?: URL;
  type: string;
}
const tokenTable = (p: DemoInMemoryAuthProvider): Map<string, DemoToken> => (p as unknown as { tokens: Map<string, DemoToken> }).tokens;
const clientTable = (p: DemoInMemoryAuthProvider): Map<string, OAuthClientInformationFull> =>
  (p.clientsStore as unknown as { clients: Map<string, OAuthClientInformationFull> }).clients;

/** The demo provider as shipped, recording what reached its token endpoint. */
class ObservedDemoProvider extends DemoInMemoryAuthProvider {
  readonly codeGrants: Array<{ clientId: string; resource: string | undefined; redirectUri: string | undefined }> = [];
  readonly refreshGrants: Array<{ clientId: string; scopes: string[] | undefined; resource: string | undefined }> = [];
  override async exchangeAuthorizationCode(
    client: OAuthClientInformationFull,
    code: string,
    verifier?: string,
    redirectUri?: string,
    resource?: URL,
  ): Promise<OAuthTokens> {
    this.codeGrants.push({ clientId: client.client_id, resource: resource?.href, redirectUri });
    return super.exchangeAuthorizationCode(client, code, verifier);
  }
  override async exchangeRefreshToken(client: OAuthClientInformationFull, refreshToken: string, scopes?: string[], resource?: URL): Promise<OAuthTokens> {
    this.refreshGrants.push({ clientId: client.client_id, scopes, resource: resource?.href });
    return super.exchangeRefreshToken(client, refreshToken, scopes, resource);
  }
}

/**
 * The same demo provider, plus refresh tokens (rotated on each use, as the OAuth 2.0 Security BCP asks of public clients): what any real
 * `OAuthServerProvider` does and the demo leaves out ("Not implemented for example demo").
 */
class RefreshingDemoProvider extends ObservedDemoProvider {
  readonly refreshTokens = new Map<string, { clientId: string; scopes: string[]; resource: URL | undefined }>();
  override async exchangeAuthorizationCode(
    client: OAuthClientInformationFull,
    code: string,
    verifier?: string,
    redirectUri?: string,
    resource?: URL,
  ): Promise<OAuthTokens> {
    const tokens = await super.exchangeAuthorizationCode(client, code, verifier, redirectUri, resource);
    const issued = tokenTable(this).get(tokens.access_token) as DemoToken;
    const refresh = crypto.randomUUID();
    this.refreshTokens.set(refresh, { clientId: client.client_id, scopes: issued.scopes, resource: issued.resource });
    return { ...tokens, refresh_token: refresh };
  }
  override async exchangeRefreshToken(client: OAuthClientInformationFull, refreshToken: string, scopes?: string[], resource?: URL): Promise<OAuthTokens> {
    this.refreshGrants.push({ clientId: client.client_id, scopes, resource: resource?.href });
    const grant = this.refreshTokens.get(refreshToken);
    if (grant === undefined || grant.clientId !== client.client_id) throw new InvalidGrantError('Unknown refresh token');
    this.refreshTokens.delete(refreshToken);
    const token = crypto.randomUUID();
    const granted = scopes ?? grant.scopes;
    tokenTable(this).set(token, { token, clientId: client.client_id, scopes: granted, expiresAt: Date.now() + 3_600_000, resource: grant.resource, type: 'access' });
    const next = crypto.randomUUID();
    this.refreshTokens.set(next, { ...grant, scopes: granted });
    return { access_token: token, token_type: 'bearer', expires_in: 3600, scope: granted.join(' '), refresh_token: next };
  }
}

interface Seen {
  method: string;
  rpc: string | undefined;
  authorization: string | undefined;
  status?: number;
}

interface Servers {
  provider: ObservedDemoProvider;
  issuer: string;
  mcpUrl: string;
  /** Every request that reached the MCP endpoint, in order (before any auth check). */
  seen: Seen[];
  /** The query of every authorization request. */
  authorizeQueries: URLSearchParams[];
  /** `'wrapped'`: a bad token is 401 invalid_token; `'demo'`: the demo verifier as is (500). */
  verifierMode: 'wrapped' | 'demo';
  close(): Promise<void>;
}

async function listen(app: express.Express): Promise<{ server: Server; origin: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function rpcName(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as { method?: unknown; params?: { name?: unknown } };
  if (b.method === 'tools/call' && typeof b.params?.name === 'string') return `tools/call:${b.params.name}`;
  return typeof b.method === 'string' ? b.method : undefined;
}

async function startServers(provider: ObservedDemoProvider): Promise<Servers> {
  // ---- the authorization server: the SDK's router and demo provider, default options ----------
  const asApp = express();
  const as = await listen(asApp);
  const issuerUrl = new URL(`${as.origin}/`);
  const authorizeQueries: URLSearchParams[] = [];
  asApp.use('/authorize', (req, _res, next) => {
    authorizeQueries.push(new URL(req.originalUrl, as.origin).searchParams);
    next();
  });
  asApp.use(mcpAuthRouter({ provider, issuerUrl, scopesSupported: ADMIN_SCOPES }));

  // ---- the MCP server: requireBearerAuth + protected resource metadata, both from the SDK -------
  const rsApp = express();
  const rs = await listen(rsApp);
  const mcpUrl = `${rs.origin}/mcp`;
  const metadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(mcpUrl));
  const oauthMetadata = createOAuthMetadata({ provider, issuerUrl, scopesSupported: ADMIN_SCOPES });
  rsApp.use(mcpAuthMetadataRouter({ oauthMetadata, resourceServerUrl: new URL(mcpUrl), scopesSupported: BASE_SCOPES }));

  const servers: Servers = {
    provider,
    issuer: issuerUrl.href,
    mcpUrl,
    seen: [],
    authorizeQueries,
    verifierMode: 'wrapped',
    close: async () => {
      await Promise.all([as.server, rs.server].map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
    },
  };
  const verifier: OAuthTokenVerifier = {
    verifyAccessToken: async (token) => {
      if (servers.verifierMode === 'demo') return provider.verifyAccessToken(token);
      try {
        return await provider.verifyAccessToken(token);
      } catch {
        throw new InvalidTokenError('Invalid or expired token');
      }
    },
  };
  const baseAuth = requireBearerAuth({ verifier, requiredScopes: BASE_SCOPES, resourceMetadataUrl: metadataUrl });
  const adminAuth = requireBearerAuth({ verifier, requiredScopes: ADMIN_SCOPES, resourceMetadataUrl: metadataUrl });
  const record: RequestHandler = (req, res, next) => {
    const entry: Seen = { method: req.method, rpc: rpcName(req.body), authorization: req.headers.authorization };
    servers.seen.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    next();
  };
  // The tool that needs more: its calls go through a second requireBearerAuth with the extra scope.
  const perTool: RequestHandler = (req, res, next) => (rpcName(req.body) === 'tools/call:admin-report' ? adminAuth(req, res, next) : next());
  rsApp.post('/mcp', express.json(), record, baseAuth, perTool, async (req, res) => {
    const mcp = new McpServer({ name: 'sdk-guarded', version: '1.0.0' });
    mcp.registerTool('echo', { description: 'Who the SDK says is calling' }, async () => ({
      content: [{ type: 'text', text: `client ${req.auth?.clientId} scopes ${req.auth?.scopes.join(' ')}` }],
    }));
    mcp.registerTool('admin-report', { description: 'Needs mcp:admin' }, async () => ({
      content: [{ type: 'text', text: 'admin report' }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, req.body);
  });
  // Stateless server: no standalone SSE stream, no sessions (as the SDK's stateless example does).
  rsApp.all('/mcp', record, (_req, res) => {
    res.status(405).set('allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  });
  return servers;
}

/** The README's configuration for an MCP server: resource + dynamic registration + redirect URI, nothing else. */
function defaultClient(s: Servers, extra: Partial<ConnectionConfig> = {}): { tokens: TokenManager; toolFetch: ToolFetch } {
  const tokens = createTokenManager({ connections: [{ id: 'mcp', resource: s.mcpUrl, registration: 'dynamic', redirectUri: REDIRECT, ...extra }] });
  const toolFetch = createToolFetch({
    agent: { id: 'assistant' },
    tools: [{ name: 'mcp', baseUrl: s.mcpUrl, auth: { type: 'oauth2', connection: 'mcp' } }],
    policies: [{ agent: 'assistant', tool: 'mcp' }],
    tokens,
  });
  return { tokens, toolFetch };
}

/** The official SDK client, connected over toolFetch, calls one tool. */
function callTool(s: Servers, toolFetch: ToolFetch, name: string): Promise<{ content: unknown }> {
  return runWithContext(context, async () => {
    const client = new Client({ name: 'assistant', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(s.mcpUrl), { fetch: toolFetch });
    try {
      await client.connect(transport);
      return (await client.callTool({ name, arguments: {} })) as { content: unknown };
    } finally {
      await client.close().catch(() => {});
    }
  });
}

async function consentError(p: Promise<unknown>): Promise<AgentIamError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!isAgentIamError(e)) throw new Error(`expected an AgentIamError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  return e;
}

/** The user agent: follow the authorization URL once; the demo provider redirects at once. */
async function authorize(tokens: TokenManager, authorizationUrl: string): Promise<void> {
  const res = await fetch(authorizationUrl, { redirect: 'manual' });
  expect(res.status).toBe(302);
  const location = res.headers.get('location');
  expect(location).toBeTruthy();
  const callback = new URL(location as string, authorizationUrl);
  expect(callback.origin + callback.pathname).toBe(REDIRECT);
  expect(callback.searchParams.get('code')).toBeTruthy();
  expect(callback.searchParams.get('error')).toBeNull();
  await tokens.completeAuthorization(callback, { expectedUserId: USER });
}

const scopeOf = (url: string): string[] => (new URL(url).searchParams.get('scope') ?? '').split(' ').filter((x) => x !== '');
const bearer = (token: string): string => `Bearer ${token}`;

describe('agent-iam client × MCP SDK authorization server and requireBearerAuth (demo provider, default options)', () => {
  let s: Servers;
  let tokens: TokenManager;
  let toolFetch: ToolFetch;

  beforeAll(async () => {
    s = await startServers(new ObservedDemoProvider());
    ({ tokens, toolFetch } = defaultClient(s));
  });
  afterAll(async () => {
    await s?.close();
  });
  afterEach(() => {
    vi.useRealTimers();
    s.verifierMode = 'wrapped';
  });

  // The tests in this block run in order and share one user's account.
  let firstToken: string;

  it('(1) registration and consent: the first call raises CONSENT_REQUIRED with a usable URL, and nothing reaches the MCP server', async () => {
    const e = await consentError(callTool(s, toolFetch, 'echo'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    expect(e.authorizationUrl).toBeTruthy();
    expect(s.seen).toHaveLength(0); // default: no request without a credential (probeResource is off)

    // Registered once, at the SDK's /register, with a method the server lists
    // (token_endpoint_auth_methods_supported: client_secret_post, none) and a secret.
    const clients = [...clientTable(s.provider).values()];
    expect(clients).toHaveLength(1);
    const client = clients[0] as OAuthClientInformationFull;
    expect(client).toMatchObject({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_post', grant_types: ['authorization_code', 'refresh_token'] });
    expect(typeof client.client_secret).toBe('string');

    const url = new URL(e.authorizationUrl as string);
    expect(url.origin + url.pathname).toBe(new URL('/authorize', s.issuer).href);
    expect(url.searchParams.get('client_id')).toBe(client.client_id);
    expect(url.searchParams.get('redirect_uri')).toBe(REDIRECT);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(s.mcpUrl);
    // Scope selection: nothing configured, so the protected resource metadata's scopes_supported.
    expect(scopeOf(url.href)).toEqual(BASE_SCOPES);

    await authorize(tokens, url.href);
    expect(s.authorizeQueries.map((q) => q.get('scope'))).toEqual(['mcp:tools']);
    expect(s.provider.codeGrants).toEqual([{ clientId: client.client_id, resource: s.mcpUrl, redirectUri: REDIRECT }]);
    const account = await tokens.getAccount({ connection: 'mcp', userId: USER });
    expect(account).toMatchObject({ status: 'active', scopes: BASE_SCOPES });
  });

  it('(2) tool call: the SDK client calls a tool with the token the demo AS issued for the metadata scope and this resource', async () => {
    const result = await callTool(s, toolFetch, 'echo');
    const issued = [...tokenTable(s.provider).values()];
    expect(issued).toHaveLength(1);
    const token = issued[0] as DemoToken;
    expect(token.scopes).toEqual(BASE_SCOPES);
    expect(token.resource?.href).toBe(s.mcpUrl);
    expect(result.content).toEqual([{ type: 'text', text: `client ${token.clientId} scopes mcp:tools` }]);
    firstToken = token.token;
    // Every request carried that token and was accepted.
    expect(s.seen.length).toBeGreaterThan(0);
    expect(s.seen.every((r) => r.authorization === bearer(firstToken))).toBe(true);
    expect(s.seen.filter((r) => r.method === 'POST').every((r) => r.status !== undefined && r.status < 300)).toBe(true);
  });

  it('(3) step-up: 403 insufficient_scope from requireBearerAuth becomes CONSENT_REQUIRED for the union of scopes; after consent the tool answers', async () => {
    const before = s.seen.length;
    const e = await consentError(callTool(s, toolFetch, 'admin-report'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    const denied = s.seen.slice(before).filter((r) => r.rpc === 'tools/call:admin-report');
    expect(denied.map((r) => r.status)).toEqual([403]); // one 403, not retried with the same token
    expect(e.authorizationUrl).toBeTruthy();
    const url = e.authorizationUrl as string;
    expect(new Set(scopeOf(url))).toEqual(new Set(ADMIN_SCOPES));
    expect(new URL(url).searchParams.get('resource')).toBe(s.mcpUrl);

    await authorize(tokens, url);
    expect(new Set(s.authorizeQueries.at(-1)?.get('scope')?.split(' '))).toEqual(new Set(ADMIN_SCOPES));
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'active' });
    expect(new Set((await tokens.getAccount({ connection: 'mcp', userId: USER }))?.scopes)).toEqual(new Set(ADMIN_SCOPES));
    const result = await callTool(s, toolFetch, 'admin-report');
    expect(result.content).toEqual([{ type: 'text', text: 'admin report' }]);
    // Still one registered client: consent again did not register again.
    expect(clientTable(s.provider).size).toBe(1);
  });

  it('(4) revoked token: 401 invalid_token is not answered by sending the same token again; the demo issues no refresh token, so CONSENT_REQUIRED and needs_consent', async () => {
    const current = [...tokenTable(s.provider).values()].find((t) => t.scopes.includes('mcp:admin')) as DemoToken;
    expect(current).toBeDefined();
    tokenTable(s.provider).clear(); // the AS forgets every token it issued (its only way to revoke)
    const before = s.seen.length;

    const e = await consentError(callTool(s, toolFetch, 'echo'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    expect(e.authorizationUrl).toBeTruthy();
    const after = s.seen.slice(before);
    // The server saw the revoked token exactly once (answered 401) and nothing after it.
    expect(after.filter((r) => r.authorization === bearer(current.token)).map((r) => r.status)).toEqual([401]);
    expect(after).toHaveLength(1);
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'needs_consent' });

    // And later calls do not send it either: CONSENT_REQUIRED before anything leaves.
    const again = await consentError(callTool(s, toolFetch, 'echo'));
    expect(again.code).toBe('CONSENT_REQUIRED');
    expect(s.seen.length).toBe(before + 1);

    // Consent again and the tool answers. (Which scopes that URL asks for: see the last block.)
    await authorize(tokens, again.authorizationUrl as string);
    expect((await callTool(s, toolFetch, 'echo')).content).toEqual([{ type: 'text', text: expect.stringContaining('scopes mcp:tools') }]);
  });

  it('(4b) with the demo verifier as shipped, a revoked token is a 500 without a challenge: returned as is, never a refresh or consent', async () => {
    const current = [...tokenTable(s.provider).values()].at(-1) as DemoToken;
    tokenTable(s.provider).clear();
    s.verifierMode = 'demo';
    const before = s.seen.length;
    const e = await callTool(s, toolFetch, 'echo').then(
      () => undefined,
      (err: unknown) => err,
    );
    // The SDK client surfaces the 500 itself (a StreamableHTTPError); agent-iam adds nothing.
    expect(isAgentIamError(e)).toBe(false);
    expect(String(e)).toMatch(/500|Internal Server Error/);
    const after = s.seen.slice(before);
    expect(after.map((r) => [r.authorization === bearer(current.token), r.status])).toEqual([[true, 500]]);
    // A 500 says nothing about the token: the account is left as it was.
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'active' });
  });

  it('(5) expiry: the demo AS issues 1-hour tokens and no refresh token; inside the refresh window the token is still sent, after expiry CONSENT_REQUIRED and nothing is sent', async () => {
    // A fresh consent, so that the account holds a token the AS knows.
    await tokens.revoke({ connection: 'mcp', userId: USER }); // local only: the demo AS has no revocation endpoint
    const e0 = await consentError(callTool(s, toolFetch, 'echo'));
    await authorize(tokens, e0.authorizationUrl as string);
    const current = [...tokenTable(s.provider).values()].at(-1) as DemoToken;
    expect(current.expiresAt - Date.now()).toBeGreaterThan(3_500_000);

    vi.useFakeTimers({ toFake: ['Date'], now: current.expiresAt - 30_000 }); // inside the 60 s refresh skew
    let before = s.seen.length;
    expect((await callTool(s, toolFetch, 'echo')).content).toEqual([{ type: 'text', text: expect.stringContaining('scopes') }]);
    expect(s.seen.slice(before).every((r) => r.authorization === bearer(current.token))).toBe(true);
    expect(s.provider.refreshGrants).toHaveLength(0); // no refresh token, so no refresh attempt

    vi.setSystemTime(current.expiresAt + 1000);
    before = s.seen.length;
    const e = await consentError(callTool(s, toolFetch, 'echo'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    expect(e.authorizationUrl).toBeTruthy();
    expect(s.seen.length).toBe(before); // the expired token never left
    expect(s.provider.refreshGrants).toHaveLength(0);
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'expired' });
  });
});

describe('agent-iam client × MCP SDK authorization server with refresh tokens (demo provider + rotation)', () => {
  let s: Servers;
  let tokens: TokenManager;
  let toolFetch: ToolFetch;
  let provider: RefreshingDemoProvider;

  beforeAll(async () => {
    provider = new RefreshingDemoProvider();
    s = await startServers(provider);
    ({ tokens, toolFetch } = defaultClient(s));
    const e = await consentError(callTool(s, toolFetch, 'echo'));
    await authorize(tokens, e.authorizationUrl as string);
  });
  afterAll(async () => {
    await s?.close();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('(5) refresh: near expiry the token is refreshed at the SDK token endpoint (client_secret_post, resource sent) and the rotated refresh token is used next time', async () => {
    const first = [...tokenTable(provider).values()].at(-1) as DemoToken;
    vi.useFakeTimers({ toFake: ['Date'], now: first.expiresAt - 30_000 }); // inside the 60 s refresh skew
    const before = s.seen.length;
    expect((await callTool(s, toolFetch, 'echo')).content).toEqual([{ type: 'text', text: expect.stringContaining('scopes mcp:tools') }]);
    expect(provider.refreshGrants).toEqual([{ clientId: first.clientId, scopes: undefined, resource: s.mcpUrl }]);
    const second = [...tokenTable(provider).values()].at(-1) as DemoToken;
    expect(second.token).not.toBe(first.token);
    const sent = s.seen.slice(before);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((r) => r.authorization === bearer(second.token))).toBe(true);

    // A second expiry: the rotated refresh token works (the first one is gone at the AS).
    vi.setSystemTime(second.expiresAt - 30_000);
    await callTool(s, toolFetch, 'echo');
    expect(provider.refreshGrants).toHaveLength(2);
    expect(provider.refreshTokens.size).toBe(1);
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'active' });
  });

  it('(4) revoked access token: one 401 invalid_token, one refresh, one retry with the new token; the rejected token is never sent again', async () => {
    const current = [...tokenTable(provider).values()].at(-1) as DemoToken;
    tokenTable(provider).delete(current.token);
    const grantsBefore = provider.refreshGrants.length;
    const before = s.seen.length;
    expect((await callTool(s, toolFetch, 'echo')).content).toEqual([{ type: 'text', text: expect.stringContaining('scopes mcp:tools') }]);
    expect(provider.refreshGrants.length).toBe(grantsBefore + 1);
    const next = [...tokenTable(provider).values()].at(-1) as DemoToken;
    const after = s.seen.slice(before);
    expect(after.filter((r) => r.authorization === bearer(current.token)).map((r) => r.status)).toEqual([401]);
    expect(after[1]?.authorization).toBe(bearer(next.token));
    expect(after.slice(1).every((r) => r.authorization === bearer(next.token))).toBe(true);
  });

  it('(4) revoked grant: the refresh is refused (invalid_grant) → CONSENT_REQUIRED, needs_consent, and the rejected token was sent once', async () => {
    const current = [...tokenTable(provider).values()].at(-1) as DemoToken;
    tokenTable(provider).clear();
    provider.refreshTokens.clear();
    const before = s.seen.length;
    const e = await consentError(callTool(s, toolFetch, 'echo'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    expect(e.authorizationUrl).toBeTruthy();
    const after = s.seen.slice(before);
    expect(after.map((r) => [r.authorization === bearer(current.token), r.status])).toEqual([[true, 401]]);
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'needs_consent' });
  });
});

describe('probeResource against requireBearerAuth (opt-in)', () => {
  let s: Servers;
  beforeAll(async () => {
    s = await startServers(new ObservedDemoProvider());
  });
  afterAll(async () => {
    await s?.close();
  });

  it("the SDK's 401 challenge (scope, resource_metadata) drives discovery and the consent URL; the probe carries no credential", async () => {
    const { tokens, toolFetch } = defaultClient(s, { probeResource: true });
    const e = await consentError(callTool(s, toolFetch, 'echo'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    expect(s.seen.map((r) => [r.authorization, r.status])).toEqual([[undefined, 401]]);
    expect(scopeOf(e.authorizationUrl as string)).toEqual(BASE_SCOPES);
    await authorize(tokens, e.authorizationUrl as string);
    expect((await callTool(s, toolFetch, 'echo')).content).toEqual([{ type: 'text', text: expect.stringContaining('scopes mcp:tools') }]);
  });
});

describe('consent again after the MCP server rejected a stepped-up token', () => {
  let s: Servers;
  beforeAll(async () => {
    s = await startServers(new ObservedDemoProvider());
  });
  afterAll(async () => {
    await s?.close();
  });

  // An account that ends in needs_consent (401 invalid_token, no refresh token) or expired asks
  // again for the scopes it held (here mcp:admin from a step-up), not only scopes_supported: one
  // consent brings back everything the user had.
  it('asks again for the scopes the account held (mcp:tools and mcp:admin), not only scopes_supported', async () => {
    const { tokens, toolFetch } = defaultClient(s);
    const first = await consentError(callTool(s, toolFetch, 'echo'));
    await authorize(tokens, first.authorizationUrl as string);
    const stepUp = await consentError(callTool(s, toolFetch, 'admin-report'));
    await authorize(tokens, stepUp.authorizationUrl as string);
    expect((await callTool(s, toolFetch, 'admin-report')).content).toEqual([{ type: 'text', text: 'admin report' }]);

    tokenTable(s.provider).clear();
    const e = await consentError(callTool(s, toolFetch, 'admin-report'));
    expect(e.code).toBe('CONSENT_REQUIRED');
    expect(await tokens.getAccount({ connection: 'mcp', userId: USER })).toMatchObject({ status: 'needs_consent' });
    expect(new Set(scopeOf(e.authorizationUrl as string))).toEqual(new Set(ADMIN_SCOPES)); // today: ['mcp:tools']
  });
});
