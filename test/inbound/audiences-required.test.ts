/**
 * Every provider names the audiences meant for this API, unless it says, loudly, that it accepts any
 * (RFC 8725 §3.9; MCP authorization). Real JWKS server on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, identityProviders } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken, type TestKey } from '../helpers/tokens.js';

let jwks: JwksServer;
let key: TestKey;
beforeAll(async () => {
  key = await createTestKey('ES256');
  jwks = await startJwksServer([key.publicJwk]);
});
afterAll(() => jwks.close());

function configError(build: () => unknown): { code?: string; field?: string; message?: string } | undefined {
  try {
    build();
  } catch (e) {
    return e as never;
  }
  return undefined;
}

describe('audiences are required', () => {
  it('a provider without audiences is refused at construction, and the message names the opt-out', () => {
    const e = configError(() => createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url }] }));
    expect(e).toMatchObject({ code: 'CONFIG_INVALID', field: 'providers.0.audiences' });
    expect(e?.message).toContain('dangerouslyAllowAnyAudience');
  });

  it('in open mode too, and for the second provider', () => {
    const ok = { issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] };
    expect(configError(() => createVerifier({ mode: 'open', providers: [{ issuer: jwks.origin, jwksUri: jwks.url }] }))).toMatchObject({ field: 'providers.0.audiences' });
    expect(configError(() => createVerifier({ providers: [ok, { issuer: 'https://other.example', jwksUri: 'https://other.example/jwks' }] }))).toMatchObject({
      field: 'providers.1.audiences',
    });
  });

  it.each([
    ['google', () => identityProviders.google()],
    ['entra', () => identityProviders.entra({ tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47' })],
    ['auth0', () => identityProviders.auth0({ domain: 'acme.eu.auth0.com' })],
    ['okta', () => identityProviders.okta({ domain: 'acme.okta.com' })],
    ['keycloak', () => identityProviders.keycloak({ baseUrl: 'https://sso.acme.com', realm: 'staff' })],
  ])('the %s preset without audiences is refused', (_name, preset) => {
    expect(configError(() => createVerifier({ providers: [preset()] }))).toMatchObject({ code: 'CONFIG_INVALID', field: 'providers.0.audiences' });
  });

  it('an empty list, or an opt-out that is not exactly true, is refused', () => {
    const p = { issuer: jwks.origin, jwksUri: jwks.url };
    expect(configError(() => createVerifier({ providers: [{ ...p, audiences: [] }] }))).toMatchObject({ field: 'providers.0.audiences' });
    for (const value of [false, 'true', 1]) {
      expect(configError(() => createVerifier({ providers: [{ ...p, dangerouslyAllowAnyAudience: value as never }] }))).toMatchObject({
        field: 'providers.0.dangerouslyAllowAnyAudience',
      });
    }
    expect(configError(() => createVerifier({ providers: [{ ...p, audiences: ['a'], dangerouslyAllowAnyAudience: true }] }))).toMatchObject({
      field: 'providers.0.dangerouslyAllowAnyAudience',
    });
  });

  it('with audiences, a token minted for another application is refused', async () => {
    const v = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] }] });
    const other = await signToken(key, claims(jwks.origin, { aud: 'api://someone-else' }));
    await expect(v.verify({ headers: { authorization: `Bearer ${other}` } })).rejects.toMatchObject({ code: 'TOKEN_AUDIENCE_MISMATCH' });
  });

  it('dangerouslyAllowAnyAudience: true accepts any aud (and none)', async () => {
    const v = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, dangerouslyAllowAnyAudience: true }] });
    for (const aud of ['api://someone-else', ['x', 'y'], undefined]) {
      const token = await signToken(key, claims(jwks.origin, { aud }));
      expect((await v.verify({ headers: { authorization: `Bearer ${token}` } })).userId).toBe('user-1');
    }
  });
});
