/**
 * End to end: a real oidc-provider (client credentials, RFC 8707 resource indicator, JWT access
 * tokens per RFC 9068) issues tokens that the verifier accepts via the provider's own /jwks.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { createVerifier } from '../../src/inbound/index.js';

const RESOURCE = 'https://api.example.com/agent';
const CLIENT_SECRET = 'a-test-client-secret-that-is-long-enough';
let server: Server;
let issuer: string;

beforeAll(async () => {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'agent-client',
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: {
      keys: [
        { ...(await exportJWK(rsa.privateKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(ec.privateKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
      ],
    },
    cookies: { keys: ['test-cookie-key-0123456789'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== RESOURCE) throw new Error('unknown resource');
          return {
            scope: 'tickets:read tickets:write',
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  } as never);
  handler = provider.callback() as never;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function clientCredentials(scope: string): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: 'agent-client',
      client_secret: CLIENT_SECRET,
      resource: RESOURCE,
      scope,
    }),
  });
  const body = (await res.json()) as { access_token?: string; token_type?: string; error?: string };
  expect(res.status, JSON.stringify(body.error)).toBe(200);
  expect(body.token_type).toBe('Bearer');
  return body.access_token as string;
}

describe('oidc-provider end to end', () => {
  it('accepts a client-credentials JWT access token via the provider /jwks', async () => {
    const token = await clientCredentials('tickets:read');
    expect(token.split('.')).toHaveLength(3);
    const verifier = createVerifier({
      providers: [{ issuer, jwksUri: `${issuer}/jwks`, audiences: [RESOURCE], requireTyp: 'at+jwt', userIdClaim: 'client_id' }],
    });
    const ctx = await verifier.verify(new Request('http://127.0.0.1/tickets', { headers: { authorization: `Bearer ${token}` } }), {
      requiredScopes: ['tickets:read'],
    });
    expect(ctx.userId).toBe('agent-client');
    expect(ctx.issuer).toBe(issuer);
    expect(ctx.scopes).toEqual(['tickets:read']);
    expect(ctx.claims.aud).toBe(RESOURCE);
    await expect(
      verifier.verify(new Request('http://127.0.0.1/tickets', { headers: { authorization: `Bearer ${token}` } }), {
        requiredScopes: ['tickets:write'],
      }),
    ).rejects.toMatchObject({ code: 'INSUFFICIENT_SCOPE', status: 403 });
  });

  it('refuses the same token for another audience or an RS256-only provider', async () => {
    const token = await clientCredentials('tickets:write');
    const wrongAud = createVerifier({ providers: [{ issuer, jwksUri: `${issuer}/jwks`, audiences: ['https://other.example.com'] }] });
    await expect(wrongAud.verify({ headers: { authorization: `Bearer ${token}` } })).rejects.toMatchObject({ code: 'TOKEN_AUDIENCE_MISMATCH' });
    const rsOnly = createVerifier({ providers: [{ issuer, jwksUri: `${issuer}/jwks`, audiences: [RESOURCE], algorithms: ['RS256'] }] });
    await expect(rsOnly.verify({ headers: { authorization: `Bearer ${token}` } })).rejects.toMatchObject({ code: 'TOKEN_ALG_NOT_ALLOWED' });
  });
});
