import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import express from 'express';
import * as oauth from 'oauth4webapi';
import { discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { OAuthClientMetadataSchema, OAuthProtectedResourceMetadataSchema } from '@modelcontextprotocol/sdk/shared/auth.js';
import {
  clientMetadataDocument,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
} from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const insecure = { [oauth.allowInsecureRequests]: true };

describe('protectedResourceMetadata', () => {
  it('builds the RFC 9728 path, url and document', () => {
    const meta = protectedResourceMetadata({
      resource: 'https://agent.example.com/mcp',
      authorizationServers: ['https://idp.example.com'],
      scopesSupported: ['mcp:tools'],
    });
    expect(meta.path).toBe('/.well-known/oauth-protected-resource/mcp');
    expect(meta.url).toBe('https://agent.example.com/.well-known/oauth-protected-resource/mcp');
    expect(meta.document).toEqual({
      resource: 'https://agent.example.com/mcp',
      authorization_servers: ['https://idp.example.com'],
      scopes_supported: ['mcp:tools'],
      bearer_methods_supported: ['header'],
    });
    expect(OAuthProtectedResourceMetadataSchema.parse(meta.document)).toMatchObject({ resource: meta.document.resource });
    expect(Object.isFrozen(meta.document)).toBe(true);
    expect(Object.isFrozen(meta.document.authorization_servers)).toBe(true);
  });

  it('handles a resource without path, with a trailing slash, a query, and loopback http', () => {
    const root = protectedResourceMetadata({ resource: 'https://api.example.com', authorizationServers: ['https://idp.example.com'] });
    expect(root.path).toBe('/.well-known/oauth-protected-resource');
    expect(root.url).toBe('https://api.example.com/.well-known/oauth-protected-resource');
    expect(root.document.resource).toBe('https://api.example.com');
    const slash = protectedResourceMetadata({ resource: 'https://api.example.com/v1/', authorizationServers: ['https://idp.example.com'] });
    expect(slash.path).toBe('/.well-known/oauth-protected-resource/v1/');
    const query = protectedResourceMetadataUrl('https://api.example.com/r?tenant=a');
    expect(query.href).toBe('https://api.example.com/.well-known/oauth-protected-resource/r?tenant=a');
    const local = protectedResourceMetadata({ resource: 'http://127.0.0.1:3000/mcp', authorizationServers: ['http://localhost:4000'] });
    expect(local.url).toBe('http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp');
  });

  it('validates options at construction with CONFIG_INVALID naming the field', () => {
    const base = { resource: 'https://a.example/mcp', authorizationServers: ['https://idp.example.com'] };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...base, resource: 'http://a.example/mcp' }, 'resource'],
      [{ ...base, resource: 'https://a.example/mcp#frag' }, 'resource'],
      [{ ...base, resource: 'https://user:pw@a.example/mcp' }, 'resource'],
      [{ ...base, resource: 'not a url' }, 'resource'],
      [{ ...base, authorizationServers: [] }, 'authorizationServers'],
      [{ ...base, authorizationServers: ['http://idp.example.com'] }, 'authorizationServers.0'],
      [{ ...base, authorizationServers: ['https://idp.example.com', 'https://idp.example.com?x=1'] }, 'authorizationServers.1'],
      [{ ...base, scopesSupported: ['has space'] }, 'scopesSupported.0'],
      [{ ...base, bearerMethodsSupported: ['cookie'] }, 'bearerMethodsSupported.0'],
      [{ ...base, jwksUri: 'http://a.example/jwks' }, 'jwksUri'],
    ];
    for (const [options, field] of cases) {
      expect(() => protectedResourceMetadata(options as never), field).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field }));
    }
  });

  it('keeps optional members and extra members without letting extra override', () => {
    const meta = protectedResourceMetadata({
      resource: 'https://a.example/mcp',
      authorizationServers: ['https://idp.example.com'],
      resourceName: 'Example MCP',
      dpopBoundAccessTokensRequired: false,
      resourceDocumentation: 'https://a.example/docs',
      extra: { resource: 'https://evil.example', custom_member: 1 },
    });
    expect(meta.document).toMatchObject({
      resource: 'https://a.example/mcp',
      resource_name: 'Example MCP',
      dpop_bound_access_tokens_required: false,
      resource_documentation: 'https://a.example/docs',
      custom_member: 1,
    });
  });

  it('handler answers GET/HEAD with JSON and CORS, OPTIONS as a preflight, other methods 405', async () => {
    const meta = protectedResourceMetadata({ resource: 'https://a.example/mcp', authorizationServers: ['https://idp.example.com'] });
    const get = meta.handler(new Request(meta.url));
    expect(get.status).toBe(200);
    expect(get.headers.get('content-type')).toBe('application/json');
    expect(get.headers.get('access-control-allow-origin')).toBe('*');
    expect(await get.json()).toEqual(meta.document);
    const head = meta.handler(new Request(meta.url, { method: 'HEAD' }));
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const preflight = meta.handler(new Request(meta.url, { method: 'OPTIONS' }));
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    const post = meta.handler(new Request(meta.url, { method: 'POST', body: '{}' }));
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
  });
});

describe('protected resource metadata served for real clients', () => {
  let idp: TestIdentityProvider;
  let honoServer: ServerType;
  let expressServer: import('node:http').Server;
  let honoBase: string;
  let expressBase: string;

  beforeAll(async () => {
    idp = await createTestIdentityProvider();
    // The resource URL needs the port, so listen first and build the metadata on the first request.
    const app = new Hono();
    let meta: ReturnType<typeof protectedResourceMetadata> | undefined;
    app.all('/.well-known/*', (c) => {
      meta ??= protectedResourceMetadata({ resource: `${honoBase}/mcp`, authorizationServers: [idp.issuer], scopesSupported: ['mcp:tools'] });
      return c.req.path === meta.path ? meta.handler(c.req.raw) : c.notFound();
    });
    await new Promise<void>((resolve) => {
      honoServer = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
        honoBase = `http://127.0.0.1:${info.port}`;
        resolve();
      });
    });
    const ex = express();
    await new Promise<void>((resolve) => {
      expressServer = ex.listen(0, '127.0.0.1', () => resolve());
    });
    expressBase = `http://127.0.0.1:${(expressServer.address() as AddressInfo).port}`;
    const exMeta = protectedResourceMetadata({ resource: `${expressBase}/mcp`, authorizationServers: [idp.issuer] });
    ex.get(exMeta.path, (_req, res) => {
      res.json(exMeta.document);
    });
  });

  afterAll(async () => {
    await new Promise((r) => honoServer?.close(r));
    await new Promise((r) => expressServer?.close(r));
    await idp?.close();
  });

  it('is found by the MCP SDK client and by oauth4webapi, and leads to the authorization server', async () => {
    const resource = new URL(`${honoBase}/mcp`);
    const sdk = await discoverOAuthProtectedResourceMetadata(resource);
    expect(sdk.resource).toBe(resource.href);
    expect(sdk.authorization_servers).toEqual([idp.issuer]);

    const prm = await oauth.processResourceDiscoveryResponse(resource, await oauth.resourceDiscoveryRequest(resource, insecure));
    expect(prm.scopes_supported).toEqual(['mcp:tools']);
    const issuer = new URL(prm.authorization_servers![0]!);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
    expect(as.token_endpoint).toBe(idp.tokenEndpoint);
  });

  it('works as a plain Express route', async () => {
    const resource = new URL(`${expressBase}/mcp`);
    const prm = await oauth.processResourceDiscoveryResponse(resource, await oauth.resourceDiscoveryRequest(resource, insecure));
    expect(prm.authorization_servers).toEqual([idp.issuer]);
  });
});

describe('clientMetadataDocument', () => {
  const base = {
    clientId: 'https://agent.example.com/oauth/client.json',
    clientName: 'Support agent',
    redirectUris: ['https://agent.example.com/oauth/callback', 'http://127.0.0.1:8976/callback'],
  };

  it('builds a document whose client_id is its own URL', () => {
    const cimd = clientMetadataDocument({ ...base, scope: 'mcp:tools offline_access', softwareVersion: '1.2.3' });
    expect(cimd.path).toBe('/oauth/client.json');
    expect(cimd.url).toBe(base.clientId);
    expect(cimd.document).toEqual({
      client_id: base.clientId,
      client_name: 'Support agent',
      redirect_uris: base.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp:tools offline_access',
      software_version: '1.2.3',
    });
    expect(OAuthClientMetadataSchema.parse(cimd.document)).toMatchObject({ client_name: 'Support agent' });
    expect(Object.isFrozen(cimd.document.redirect_uris)).toBe(true);
  });

  it('accepts private_key_jwt with public keys only', () => {
    const cimd = clientMetadataDocument({
      ...base,
      tokenEndpointAuthMethod: 'private_key_jwt',
      jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1' }] },
    });
    expect(cimd.document.token_endpoint_auth_method).toBe('private_key_jwt');
    expect(() =>
      clientMetadataDocument({ ...base, tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [{ kty: 'EC', d: 'secret' }] } }),
    ).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'jwks' }));
  });

  it('refuses what the draft forbids, with CONFIG_INVALID naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...base, clientId: 'https://agent.example.com' }, 'clientId'],
      [{ ...base, clientId: 'https://agent.example.com/' }, 'clientId'],
      [{ ...base, clientId: 'http://agent.example.com/client' }, 'clientId'],
      [{ ...base, clientId: 'https://agent.example.com/client#x' }, 'clientId'],
      [{ ...base, clientId: 'https://agent.example.com/client?x=1' }, 'clientId'],
      [{ ...base, clientId: 'https://agent.example.com/a/../client' }, 'clientId'],
      [{ ...base, clientId: 'https://agent.example.com/a/%2E%2E/client' }, 'clientId'],
      [{ ...base, clientId: 'https://AGENT.example.com:443/client' }, 'clientId'],
      [{ ...base, clientId: 'https://u:p@agent.example.com/client' }, 'clientId'],
      [{ ...base, redirectUris: [] }, 'redirectUris'],
      [{ ...base, redirectUris: ['http://agent.example.com/cb'] }, 'redirectUris.0'],
      [{ ...base, redirectUris: ['https://agent.example.com/cb#f'] }, 'redirectUris.0'],
      [{ ...base, redirectUris: ['javascript:alert(1)'] }, 'redirectUris.0'],
      [{ ...base, tokenEndpointAuthMethod: 'client_secret_basic' }, 'tokenEndpointAuthMethod'],
      [{ ...base, tokenEndpointAuthMethod: 'private_key_jwt' }, 'jwksUri'],
      [{ ...base, extra: { client_secret: 'x' } }, 'extra.client_secret'],
      [{ ...base, scope: 'a  b' }, 'scope'],
      [{ ...base, logoUri: 'http://agent.example.com/logo.png' }, 'logoUri'],
    ];
    for (const [options, field] of cases) {
      expect(() => clientMetadataDocument(options as never), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', field }),
      );
    }
    // the error never echoes a secret given in extra (and there is an error: no pass without one)
    let error: unknown;
    try {
      clientMetadataDocument({ ...base, extra: { client_secret: 's3cr3t-value' } });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'CONFIG_INVALID', field: 'extra.client_secret' });
    expect(JSON.stringify(error) + String(error)).not.toContain('s3cr3t-value');
  });

  it('is served by its handler at its own path on a real server', async () => {
    const app = new Hono();
    let cimd: ReturnType<typeof clientMetadataDocument> | undefined;
    let origin = '';
    app.all('/oauth/*', (c) => (cimd && c.req.path === cimd.path ? cimd.handler(c.req.raw) : c.notFound()));
    const server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
        origin = `http://127.0.0.1:${info.port}`;
        resolve(s);
      });
    });
    try {
      cimd = clientMetadataDocument({ ...base, clientId: `${origin}/oauth/client.json` });
      const res = await fetch(cimd.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('public, max-age=3600');
      const doc = (await res.json()) as { client_id: string };
      expect(doc.client_id).toBe(cimd.url);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
