/**
 * A Client ID Metadata Document built by `clientMetadataDocument()`, served on loopback, used as the
 * client id at the test identity provider: the server fetches it, registers the client from it, and a
 * full authorization-code + PKCE flow succeeds with no registration step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import * as oauth from 'oauth4webapi';
import { clientMetadataDocument, type ClientMetadataDocumentResult } from '../../src/mcp/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const insecure = { [oauth.allowInsecureRequests]: true };
const REDIRECT = 'http://127.0.0.1:9/oauth/callback';

let idp: TestIdentityProvider;
let as: oauth.AuthorizationServer;
let server: ServerType;
let origin = '';
const documents = new Map<string, ClientMetadataDocumentResult | Record<string, unknown>>();

beforeAll(async () => {
  idp = await createTestIdentityProvider({ clientIdMetadataDocuments: true });
  const issuer = new URL(idp.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  const app = new Hono();
  app.get('/clients/:name', (c) => {
    const entry = documents.get(c.req.path);
    if (entry === undefined) return c.notFound();
    return 'handler' in entry && typeof entry.handler === 'function' ? (entry as ClientMetadataDocumentResult).handler(c.req.raw) : c.json(entry);
  });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
      origin = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await idp?.close();
});

async function authorizationUrl(clientId: string, verifier: string): Promise<URL> {
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: 'openid',
    state: 'st',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  return url;
}

describe('Client ID Metadata Documents at the test identity provider', () => {
  it('advertises support in its metadata', () => {
    expect(as.client_id_metadata_document_supported).toBe(true);
  });

  it('registers the client from its document and completes a PKCE flow', async () => {
    const cimd = clientMetadataDocument({ clientId: `${origin}/clients/agent.json`, clientName: 'CIMD agent', redirectUris: [REDIRECT] });
    documents.set(cimd.path, cimd);
    const client: oauth.Client = { client_id: cimd.url };
    const verifier = oauth.generateRandomCodeVerifier();
    const callback = new URL(await idp.authorize(await authorizationUrl(cimd.url, verifier), { userId: 'alice' }));
    const params = oauth.validateAuthResponse(as, client, callback, 'st');
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure),
    );
    expect(tokens.access_token).toEqual(expect.any(String));
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it('refuses documents that do not match their URL, carry a secret, or cannot be fetched', async () => {
    const verifier = oauth.generateRandomCodeVerifier();
    documents.set('/clients/mismatch.json', { client_id: `${origin}/clients/other.json`, redirect_uris: [REDIRECT] });
    documents.set('/clients/secret.json', {
      client_id: `${origin}/clients/secret.json`,
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: 'nope',
    });
    const cases: Array<[string, string]> = [
      ['mismatch.json', 'does not match'],
      ['secret.json', 'secret'],
      ['missing.json', 'fetch answered 404'],
    ];
    for (const [name, why] of cases) {
      const url = await authorizationUrl(`${origin}/clients/${name}`, verifier);
      await expect(idp.authorize(url, { userId: 'alice' })).rejects.toMatchObject({ code: 'OAUTH_ERROR', oauthError: 'invalid_client' });
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: string; error_description: string };
      expect(body.error).toBe('invalid_client');
      expect(body.error_description).toContain(why);
      expect(body.error_description).not.toContain('nope');
    }
  });
});
