/**
 * Shared by the per-tool scope tests on Express and Hono: the MCP SDK server with a few tools, an
 * in-memory OAuth client provider for the SDK client, and a raw JSON-RPC POST.
 */
import { describe, expect, it } from 'vitest';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { currentContext } from '../../src/context.js';
import { mcpScopes } from '../../src/mcp/index.js';
import type { TestIdentityProvider } from '../../src/testing/index.js';

export const REDIRECT = 'http://127.0.0.1:9/oauth/callback';

/** The base scope every request needs; it is all the metadata advertises. */
export const BASE = 'mcp:tools';

/** Per-tool scopes of the test server: `refund` and `export` need more than the base scope. */
export const toolScopes = mcpScopes({
  tools: { whoami: [], refund: ['payments:write'], export: ['reports:read'] },
  methods: { 'resources/read': ['files:read'] },
});

/** One MCP server per request (stateless Streamable HTTP). `drop_tables` exists but is not in the scope map. */
export function createToolServer(): McpServer {
  const mcp = new McpServer({ name: 'tool-scopes', version: '1.0.0' });
  const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
  mcp.registerTool('whoami', { description: 'Who is calling' }, async () => text(currentContext()?.userId ?? 'nobody'));
  mcp.registerTool('refund', { description: 'Refund a charge' }, async () => text(`refunded for ${currentContext()?.userId ?? 'nobody'}`));
  mcp.registerTool('export', { description: 'Export a report' }, async () => text('exported'));
  mcp.registerTool('drop_tables', { description: 'Not in the scope map: must never run' }, async () => text('dropped'));
  return mcp;
}

export const rpc = (id: number, method: string, params?: Record<string, unknown>) => ({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) });
export const toolCall = (id: number, name: string) => rpc(id, 'tools/call', { name, arguments: {} });

/** POST a JSON-RPC body (object, array, or raw text) as an MCP client would. */
export function post(url: string, body: unknown, options: { token?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The text of a JSON-RPC result, whether answered as JSON or as one SSE event. */
export async function resultText(res: Response): Promise<unknown> {
  const text = await res.text();
  const json = res.headers.get('content-type')?.includes('text/event-stream')
    ? text
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)) as unknown)
    : (JSON.parse(text) as unknown);
  const messages = (Array.isArray(json) ? json : [json]) as Array<{ id: number; result?: { content?: Array<{ text: string }> }; error?: unknown }>;
  return messages.map((m) => m.result?.content?.[0]?.text ?? m.result ?? m.error);
}

/**
 * An in-memory OAuth client provider for the SDK, registered without the refresh_token grant, so a
 * step-up is a new authorization (the SDK 1.x would otherwise refresh, which cannot widen scopes).
 * The "browser" is the IdP's headless `authorize()`.
 */
export class StepUpOAuthProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier = '';
  authorizationUrl?: URL;
  get redirectUrl(): string {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: 'tool-scopes-test',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
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
  forgetAuthorizationUrl() {
    this.authorizationUrl = undefined;
  }
  saveCodeVerifier(v: string) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/** The `scope` claim of a JWT access token (payload only, no verification: the server verified it). */
export function scopeOf(token: string): string {
  const payload = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as { scope?: string };
  return payload.scope ?? '';
}

/** What one protected MCP endpoint under test offers the shared suite. */
export interface ToolScopesTarget {
  /** The MCP endpoint, also the resource (token audience). */
  resource: string;
  /** Its RFC 9728 metadata URL, as challenges carry it. */
  metadataUrl: string;
  idp: TestIdentityProvider;
}

/**
 * The per-tool scope behaviour every adapter must show, against a real server on 127.0.0.1 and the
 * official SDK client. `target()` is read when the tests run (after `beforeAll`).
 */
export function toolScopesSuite(label: string, target: () => ToolScopesTarget): void {
  describe(`per-tool MCP scopes: ${label}`, () => {
    const token = (scopes: string[]) => {
      const t = target();
      return t.idp.tokenFor({ userId: 'alice', scopes, audience: t.resource });
    };

    it('refuses Mcp-Method / Mcp-Name that the body contradicts, and invalid JSON, with 400 REQUEST_INVALID', async () => {
      const { resource } = target();
      const full = await token([BASE, 'payments:write']);
      const refused = async (res: Response) => {
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toBe('REQUEST_INVALID');
      };
      await refused(await post(resource, toolCall(1, 'refund'), { token: full, headers: { 'mcp-method': 'tools/list' } }));
      // A gateway routing on the header would see the harmless tool; the body calls the other one.
      await refused(await post(resource, toolCall(1, 'refund'), { token: full, headers: { 'mcp-method': 'tools/call', 'mcp-name': 'whoami' } }));
      await refused(await post(resource, [toolCall(1, 'refund'), toolCall(2, 'export')], { token: full, headers: { 'mcp-name': 'refund' } }));
      // Even before authentication: the request itself is malformed.
      await refused(await post(resource, toolCall(1, 'refund'), { headers: { 'mcp-method': 'tools/call', 'mcp-name': 'whoami' } }));
      // Invalid JSON: 400 (from express.json() when it runs first, with its own body).
      expect((await post(resource, '{"jsonrpc":"2.0",', { token: full })).status).toBe(400);

      const ok = await post(resource, toolCall(1, 'refund'), { token: full, headers: { 'mcp-method': 'tools/call', 'mcp-name': 'refund' } });
      expect(ok.status).toBe(200);
      expect(await resultText(ok)).toEqual(['refunded for alice']);
    });

    it('answers one challenge whose scope names every scope the call needs (401 without a token, 403 without the tool’s scope)', async () => {
      const { resource, metadataUrl } = target();
      const anonymous = await post(resource, toolCall(1, 'refund'));
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe(`Bearer scope="${BASE} payments:write", resource_metadata="${metadataUrl}"`);

      const short = await post(resource, toolCall(1, 'refund'), { token: await token([BASE]) });
      expect(short.status).toBe(403);
      expect(short.headers.get('www-authenticate')).toBe(`Bearer error="insufficient_scope", scope="${BASE} payments:write", resource_metadata="${metadataUrl}"`);
      expect(await short.json()).toMatchObject({ error: 'INSUFFICIENT_SCOPE', scopes: [BASE, 'payments:write'] });

      // The tool scope alone is not enough either: the challenge still names the whole set.
      const noBase = await post(resource, toolCall(1, 'refund'), { token: await token(['payments:write']) });
      expect(noBase.status).toBe(403);
      expect(noBase.headers.get('www-authenticate')).toContain(`scope="${BASE} payments:write"`);

      // A cheap call needs only the base scope.
      const whoami = await post(resource, toolCall(1, 'whoami'), { token: await token([BASE]) });
      expect(whoami.status).toBe(200);
      expect(await resultText(whoami)).toEqual(['alice']);
    });

    it('needs the union of a batch’s scopes', async () => {
      const { resource } = target();
      const batch = [toolCall(1, 'refund'), toolCall(2, 'export'), toolCall(3, 'whoami')];
      const partial = await post(resource, batch, { token: await token([BASE, 'payments:write']) });
      expect(partial.status).toBe(403);
      expect(partial.headers.get('www-authenticate')).toContain(`error="insufficient_scope", scope="${BASE} payments:write reports:read"`);

      const all = await post(resource, batch, { token: await token([BASE, 'payments:write', 'reports:read']), headers: { 'mcp-method': 'tools/call' } });
      expect(all.status).toBe(200);
      expect(await resultText(all)).toEqual(['refunded for alice', 'exported', 'alice']);
    });

    it('refuses a tool the scope map does not list (deny by default), and only after authentication', async () => {
      const { resource } = target();
      const anonymous = await post(resource, toolCall(1, 'drop_tables'));
      expect(anonymous.status).toBe(401);
      const res = await post(resource, [toolCall(1, 'whoami'), toolCall(2, 'drop_tables')], { token: await token([BASE, 'payments:write', 'reports:read']) });
      expect(res.status).toBe(403);
      expect(res.headers.get('www-authenticate')).toBeNull(); // no step-up can help
      expect(((await res.json()) as { error: string }).error).toBe('TOOL_NOT_REGISTERED');
    });

    it('refuses a body above maxBodyBytes with 413 before parsing it', async () => {
      const { resource } = target();
      const huge = { ...toolCall(1, 'whoami'), params: { name: 'whoami', arguments: { blob: 'x'.repeat(toolScopes.maxBodyBytes + 1) } } };
      const res = await post(resource, huge, { token: await token([BASE]) });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: string }).error).toBe('REQUEST_INVALID');
    });

    it('steps up with the official SDK client: base scope first, challenged on the tool, re-authorized with the union, then succeeds', async () => {
      const { resource, idp } = target();
      const provider = new StepUpOAuthProvider();
      const first = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
      await expect(new Client({ name: 'step-up', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
      // initialize needs only the base scope: that is all the first authorization asks for.
      expect(provider.authorizationUrl?.searchParams.get('scope')).toBe(BASE);
      let callback = new URL(await idp.authorize(provider.authorizationUrl!.href, { userId: 'alice' }));
      await first.finishAuth(callback.searchParams.get('code')!);
      expect(scopeOf(provider.saved!.access_token)).toBe(BASE);

      const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
      const client = new Client({ name: 'step-up', version: '1.0.0' });
      await client.connect(transport);
      expect(await client.callTool({ name: 'whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'alice' }] });

      provider.forgetAuthorizationUrl();
      await expect(client.callTool({ name: 'refund', arguments: {} })).rejects.toBeInstanceOf(UnauthorizedError);
      // The 403 named the whole set, so one authorization covers it.
      expect(provider.authorizationUrl?.searchParams.get('scope')).toBe(`${BASE} payments:write`);
      callback = new URL(await idp.authorize(provider.authorizationUrl!.href, { userId: 'alice' }));
      await transport.finishAuth(callback.searchParams.get('code')!);
      expect(scopeOf(provider.saved!.access_token).split(' ').sort()).toEqual([BASE, 'payments:write']);

      expect(await client.callTool({ name: 'refund', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'refunded for alice' }] });
      await client.close();
    });
  });
}
