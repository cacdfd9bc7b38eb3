/**
 * The framework-free core of per-tool MCP scopes: configuration checks, the scopes a JSON-RPC body
 * needs (one message or a batch), the `Mcp-Method` / `Mcp-Name` cross-check, and `verifyMcpRequest`
 * for plain Web-API servers (against the local test IdP's real tokens).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type Verifier } from '../../src/inbound/index.js';
import { isMcpScopes, mcpScopes, protectedResourceMetadata, verifyMcpRequest } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const call = (name: string, id: number | string = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });
const scopes = mcpScopes({
  tools: { whoami: [], refund: ['payments:write'], export: ['reports:read', 'payments:read'] },
  methods: { 'resources/read': ['files:read'], 'tools/list': ['tools:list'] },
});

describe('mcpScopes: configuration', () => {
  it('refuses bad options with CONFIG_INVALID naming the field, offline_access included', () => {
    const cases: Array<[unknown, string]> = [
      [{ tools: { refund: ['offline_access'] } }, 'mcpScopes.tools.refund.0'],
      [{ methods: { 'resources/read': ['has space'] } }, 'mcpScopes.methods.resources/read.0'],
      [{ unlistedTools: ['offline_access'] }, 'mcpScopes.unlistedTools.0'],
      [{ tools: { refund: 'payments:write' } }, 'mcpScopes.tools.refund'],
      [{ tools: {}, maxBodyBytes: 10 }, 'mcpScopes.maxBodyBytes'],
      [{ tools: {}, default: [] }, 'mcpScopes.default'],
    ];
    for (const [options, field] of cases) {
      expect(() => mcpScopes(options as never), field).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field }));
    }
    expect(isMcpScopes(scopes)).toBe(true);
    expect(isMcpScopes({ requirement: () => ({}) })).toBe(false);
  });

  it('protectedResourceMetadata never advertises offline_access', () => {
    const base = { resource: 'https://mcp.example.com/mcp', authorizationServers: ['https://idp.example.com'] };
    expect(() => protectedResourceMetadata({ ...base, scopesSupported: ['mcp:tools', 'offline_access'] })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'scopesSupported.1' }),
    );
    expect(() => protectedResourceMetadata({ ...base, extra: { scopes_supported: ['offline_access'] } })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'extra.scopes_supported' }),
    );
    expect(protectedResourceMetadata({ ...base, scopesSupported: ['mcp:tools'] }).document.scopes_supported).toEqual(['mcp:tools']);
  });
});

describe('mcpScopes: what a body needs', () => {
  it('takes the tool of tools/call, the method scopes, and the union over a batch', () => {
    expect(scopes.requirement(call('refund'))).toEqual({ calls: [{ method: 'tools/call', name: 'refund' }], scopes: ['payments:write'], unlistedTools: [] });
    expect(scopes.requirement(call('whoami')).scopes).toEqual([]);
    expect(scopes.requirement({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }).scopes).toEqual([]);
    expect(scopes.requirement({ jsonrpc: '2.0', method: 'notifications/initialized' }).scopes).toEqual([]);
    expect(scopes.requirement({ jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///a' } })).toEqual({
      calls: [{ method: 'resources/read', name: 'file:///a' }],
      scopes: ['files:read'],
      unlistedTools: [],
    });
    const batch = [call('refund', 1), call('export', 2), { jsonrpc: '2.0', id: 3, method: 'tools/list' }, call('refund', 4)];
    expect(scopes.requirement(batch).scopes).toEqual(['payments:write', 'reports:read', 'payments:read', 'tools:list']);
    // A client's response to a server request carries no method and needs nothing.
    expect(scopes.requirement({ jsonrpc: '2.0', id: 'srv-1', result: {} })).toEqual({ calls: [], scopes: [], unlistedTools: [] });
  });

  it('denies unlisted tools by default; unlistedTools sets their scopes; methods["tools/call"] adds to every tool', () => {
    expect(scopes.requirement(call('drop_tables')).unlistedTools).toEqual(['drop_tables']);
    expect(scopes.requirement([call('refund'), call('__proto__', 2), call('constructor', 3)]).unlistedTools).toEqual(['__proto__', 'constructor']);
    const open = mcpScopes({ tools: { refund: ['payments:write'] }, unlistedTools: ['tools:other'], methods: { 'tools/call': ['mcp:tools'] } });
    expect(open.requirement(call('drop_tables'))).toMatchObject({ scopes: ['mcp:tools', 'tools:other'], unlistedTools: [] });
    expect(open.requirement(call('refund')).scopes).toEqual(['mcp:tools', 'payments:write']);
    expect(mcpScopes({}).requirement(call('anything')).unlistedTools).toEqual(['anything']);
  });

  it('refuses what is not a JSON-RPC request it can decide on with REQUEST_INVALID (400)', () => {
    const bad: unknown[] = [
      [],
      'tools/call',
      null,
      { id: 1, method: 'tools/call', params: { name: 'refund' } },
      { jsonrpc: '1.0', id: 1, method: 'tools/call', params: { name: 'refund' } },
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} },
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 7 } },
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: ['refund'] },
      { jsonrpc: '2.0', id: 1, method: 'tools/call' },
      { jsonrpc: '2.0', id: {}, method: 'tools/list' },
      [call('whoami'), 'junk'],
      JSON.parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"__proto__":{"name":"whoami"}}}'),
    ];
    for (const body of bad) {
      expect(() => scopes.requirement(body), JSON.stringify(body)).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID', status: 400 }));
    }
  });
});

describe('mcpScopes: Mcp-Method and Mcp-Name must agree with the body', () => {
  const ok = (headers: Record<string, string>, body: unknown = call('refund')) => scopes.requirement(body, new Headers(headers));
  const refused = (headers: Record<string, string | string[]>, body: unknown = call('refund'), raw?: string[]) =>
    expect(() => scopes.requirement(body, headers, raw), JSON.stringify(headers)).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID', status: 400 }));

  it('accepts matching headers, absent headers, and a Base64-wrapped Mcp-Name', () => {
    expect(ok({ 'mcp-method': 'tools/call', 'mcp-name': 'refund' }).scopes).toEqual(['payments:write']);
    expect(ok({ 'Mcp-Method': 'tools/call' }).scopes).toEqual(['payments:write']);
    expect(ok({}).scopes).toEqual(['payments:write']);
    const uri = 'file:///projects/naïve config.json';
    const b64 = btoa(String.fromCharCode(...new TextEncoder().encode(uri)));
    expect(ok({ 'mcp-method': 'resources/read', 'mcp-name': `=?base64?${b64}?=` }, { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri } }).scopes).toEqual(['files:read']);
    expect(ok({ 'mcp-method': 'prompts/get', 'mcp-name': 'review' }, { jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'review' } }).calls).toEqual([
      { method: 'prompts/get', name: 'review' },
    ]);
  });

  it('never authorizes by a header that the body contradicts', () => {
    refused({ 'mcp-method': 'tools/list' });
    refused({ 'mcp-method': 'tools/call', 'mcp-name': 'whoami' }); // the cheap tool in the header, the expensive one in the body
    refused({ 'mcp-name': 'Refund' });
    refused({ 'mcp-name': `=?base64?${btoa('whoami')}?=` });
    refused({ 'mcp-name': '=?base64?not base64!?=' });
    refused({ 'mcp-name': `=?base64?${btoa('\xff\xfe')}?=` }); // not UTF-8
    refused({ 'mcp-method': 'tools/call' }, { jsonrpc: '2.0', id: 'srv-1', result: {} }); // a response claims a method
    refused({ 'mcp-name': 'x' }, { jsonrpc: '2.0', id: 1, method: 'tools/list' }); // orphan Mcp-Name
    refused({ 'mcp-method': ['tools/call', 'tools/call'] }); // Node: an array is several header lines
    refused({ 'mcp-method': 'tools/call' }, call('refund'), ['Mcp-Method', 'tools/call', 'mcp-method', 'tools/call']);
  });

  it('checks a batch message by message: the headers must match every one', () => {
    expect(ok({ 'mcp-method': 'tools/call' }, [call('refund'), call('whoami', 2)]).scopes).toEqual(['payments:write']);
    refused({ 'mcp-method': 'tools/call', 'mcp-name': 'whoami' }, [call('whoami'), call('refund', 2)]);
    refused({ 'mcp-method': 'tools/call' }, [call('whoami'), { jsonrpc: '2.0', id: 2, method: 'tools/list' }]);
  });
});

describe('verifyMcpRequest on a plain Web-API server', () => {
  let idp: TestIdentityProvider;
  let verifier: Verifier;
  const resource = 'https://mcp.example.com/mcp';
  const metadataUrl = 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp';

  beforeAll(async () => {
    idp = await createTestIdentityProvider();
    verifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [resource] }], resourceMetadataUrl: metadataUrl });
  });
  afterAll(async () => {
    await idp?.close();
  });

  const post = (body: unknown, token?: string, headers: Record<string, string> = {}) =>
    new Request(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('verifies with the base scopes and the body’s, and leaves the request readable', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: ['mcp:tools', 'payments:write'], audience: resource });
    const request = post(call('refund'), token, { 'mcp-method': 'tools/call', 'mcp-name': 'refund' });
    const { context, body } = await verifyMcpRequest(verifier, request, scopes, { requiredScopes: ['mcp:tools'] });
    expect(context.userId).toBe('alice');
    expect(body).toEqual(call('refund'));
    expect(await request.json()).toEqual(call('refund'));
  });

  it('answers one challenge naming every scope, 401 without a token and 403 without the tool’s scope', async () => {
    const missing = await verifyMcpRequest(verifier, post(call('refund')), scopes, { requiredScopes: ['mcp:tools'] }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'TOKEN_MISSING', status: 401 });
    expect((missing as { wwwAuthenticate: string }).wwwAuthenticate).toBe(`Bearer scope="mcp:tools payments:write", resource_metadata="${metadataUrl}"`);

    const base = await idp.tokenFor({ userId: 'alice', scopes: ['mcp:tools'], audience: resource });
    const short = await verifyMcpRequest(verifier, post([call('refund'), call('export', 2)], base), scopes, { requiredScopes: ['mcp:tools'] }).catch((e: unknown) => e);
    expect(short).toMatchObject({ code: 'INSUFFICIENT_SCOPE', status: 403, scopes: ['mcp:tools', 'payments:write', 'reports:read', 'payments:read'] });
    expect((short as { wwwAuthenticate: string }).wwwAuthenticate).toBe(
      `Bearer error="insufficient_scope", scope="mcp:tools payments:write reports:read payments:read", resource_metadata="${metadataUrl}"`,
    );
  });

  it('refuses unlisted tools only after authentication, bad JSON and oversized bodies before', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: ['mcp:tools'], audience: resource });
    await expect(verifyMcpRequest(verifier, post(call('drop_tables')), scopes)).rejects.toMatchObject({ code: 'TOKEN_MISSING' });
    await expect(verifyMcpRequest(verifier, post(call('drop_tables'), token), scopes)).rejects.toMatchObject({ code: 'TOOL_NOT_REGISTERED', status: 403 });
    await expect(verifyMcpRequest(verifier, post('{"jsonrpc":', token), scopes)).rejects.toMatchObject({ code: 'REQUEST_INVALID', status: 400 });
    const small = mcpScopes({ tools: { whoami: [] }, maxBodyBytes: 1024 });
    const big = { ...call('whoami'), params: { name: 'whoami', arguments: { blob: 'x'.repeat(2000) } } };
    await expect(verifyMcpRequest(verifier, post(big, token), small)).rejects.toMatchObject({ code: 'REQUEST_INVALID', status: 413 });
    // GET (the SSE stream) has no body: the base scopes alone.
    const get = new Request(resource, { headers: { authorization: `Bearer ${token}` } });
    await expect(verifyMcpRequest(verifier, get, scopes, { requiredScopes: ['mcp:tools'] })).resolves.toMatchObject({ body: undefined });
  });
});
