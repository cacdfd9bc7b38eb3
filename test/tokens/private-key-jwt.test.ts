// private_key_jwt (RFC 7523 §2.2) against a real oidc-provider: pre-registered and dynamically
// registered clients, a key the server does not know, and key material kept out of every error.
import { inspect } from 'node:util';
import { decodeJwt, exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { createTokenManager } from '../../src/index.js';
import { assertNoSecret, expectCode, REDIRECT } from './helpers.js';

let idp: TestIdentityProvider;
let pem: string;
let publicJwk: Record<string, unknown>;
let privateJwk: Record<string, unknown>;
const seen: Array<{ path: string; body: string }> = [];

/** Records the token and registration requests the token manager sends (body only, to check what authenticated). */
const recording: typeof fetch = async (input, init) => {
  const url = new URL(String(input instanceof Request ? input.url : input));
  if (init?.method === 'POST') seen.push({ path: url.pathname, body: String(init.body ?? '') });
  return fetch(input, init);
};

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const ec = await generateKeyPair('ES256', { extractable: true });
  pem = await exportPKCS8(ec.privateKey);
  publicJwk = { ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const rsa = await generateKeyPair('RS256', { extractable: true });
  privateJwk = { ...(await exportJWK(rsa.privateKey)), kid: 'rsa-1' };
});
afterAll(async () => {
  await idp?.close();
});

describe('private_key_jwt', () => {
  it('a pre-registered client authenticates with a signed assertion (PEM, ES256): no secret is sent', async () => {
    const reg = await idp.registerClient({ token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [publicJwk] }, grant_types: ['client_credentials'] });
    const tokens = createTokenManager({ fetch: recording, connections: [{ id: 'svc', issuer: idp.issuer, clientId: reg.client_id, clientPrivateKey: pem, clientPrivateKeyId: 'k1' }] });
    seen.length = 0;
    const t = await tokens.clientCredentials({ connection: 'svc' });
    expect(t.accessToken.length).toBeGreaterThan(10);
    const body = new URLSearchParams(seen.find((s) => s.path.endsWith('/token'))?.body);
    expect(body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const claims = decodeJwt(body.get('client_assertion') as string);
    expect(claims.iss).toBe(reg.client_id);
    expect(claims.sub).toBe(reg.client_id);
    expect(claims.aud).toBe(idp.issuer);
    expect(body.has('client_secret')).toBe(false);
  });

  it('dynamic registration with a key registers its public half (jwks) and then signs with it (RSA JWK)', async () => {
    const tokens = createTokenManager({ fetch: recording, connections: [{ id: 'dyn', issuer: idp.issuer, registration: 'dynamic', clientPrivateKey: privateJwk as never, redirectUri: REDIRECT, scopes: ['openid'] }] });
    seen.length = 0;
    const { url } = await tokens.startAuthorization({ connection: 'dyn', userId: 'alice' });
    const registration = JSON.parse(seen.find((s) => s.path === '/reg')?.body ?? '{}') as { token_endpoint_auth_method?: string; jwks?: { keys: Array<Record<string, unknown>> } };
    expect(registration.token_endpoint_auth_method).toBe('private_key_jwt');
    const registered = registration.jwks?.keys[0] ?? {};
    expect(registered.kid).toBe('rsa-1');
    expect(registered.n).toBe(privateJwk.n);
    for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(registered).not.toHaveProperty(m);
    const account = await tokens.completeAuthorization(await idp.authorize(url, { userId: 'alice' }));
    expect(account.status).toBe('active');
    const body = new URLSearchParams(seen.filter((s) => s.path.endsWith('/token')).at(-1)?.body);
    expect(body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  });

  it('a key the server does not know is refused (invalid_client); bad or conflicting key config is CONFIG_INVALID without the key in it', async () => {
    const reg = await idp.registerClient({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [publicJwk] }, grant_types: ['client_credentials'] });
    const other = await exportPKCS8((await generateKeyPair('ES256', { extractable: true })).privateKey);
    const wrong = createTokenManager({ retries: 0, connections: [{ id: 'w', issuer: idp.issuer, clientId: reg.client_id, clientPrivateKey: other }] });
    const e = await expectCode(wrong.clientCredentials({ connection: 'w' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_client');
    assertNoSecret(e, [other.split('\n')[1] as string]);

    const garbage = '-----BEGIN PRIVATE KEY-----\nTUlJQ0lqQU5CZ2txaGtpRzl3MEJBUUVGQUFPQ0FnOEFNSUlDQ2dLQ0FnRUE=\n-----END PRIVATE KEY-----';
    const bad = createTokenManager({ connections: [{ id: 'b', issuer: idp.issuer, clientId: reg.client_id, clientPrivateKey: garbage }] });
    const c = await expectCode(bad.clientCredentials({ connection: 'b' }), 'CONFIG_INVALID');
    expect(c.field).toBe('clientPrivateKey');
    expect(JSON.stringify(c) + inspect(c) + c.message).not.toContain('TUlJQ0lq');

    let cfg = await expectCode(() => createTokenManager({ connections: [{ id: 'p', issuer: idp.issuer, clientId: reg.client_id, clientPrivateKey: publicJwk as never }] }), 'CONFIG_INVALID');
    expect(cfg.message).toContain('private JWK');
    cfg = await expectCode(() => createTokenManager({ connections: [{ id: 'x', issuer: idp.issuer, clientId: 'c', clientSecret: 'shh-secret-value', clientPrivateKey: pem }] }), 'CONFIG_INVALID');
    assertNoSecret(cfg, ['shh-secret-value', pem.split('\n')[1] as string]);
    cfg = await expectCode(() => createTokenManager({ connections: [{ id: 'x', issuer: idp.issuer, clientId: 'c', tokenEndpointAuthMethod: 'private_key_jwt' }] }), 'CONFIG_INVALID');
    expect(cfg.field).toBe('connections.0.clientPrivateKey');
    cfg = await expectCode(() => createTokenManager({ connections: [{ id: 'x', issuer: idp.issuer, clientId: 'c', clientPrivateKey: pem, tokenEndpointAuthMethod: 'client_secret_post' }] }), 'CONFIG_INVALID');
    expect(cfg.field).toBe('connections.0.tokenEndpointAuthMethod');
  });
});
