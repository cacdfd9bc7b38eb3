import { describe, expect, it } from 'vitest';
import { createVerifier, identityProviders } from '../../src/inbound/index.js';

describe('identityProviders presets', () => {
  it('google', () => {
    expect(identityProviders.google({ allowedDomains: ['company.com'], audiences: ['cid'] })).toEqual({
      name: 'google',
      issuer: 'https://accounts.google.com',
      jwksUri: 'https://www.googleapis.com/oauth2/v3/certs',
      allowedDomains: ['company.com'],
      audiences: ['cid'],
    });
    expect(identityProviders.google().issuer).toBe('https://accounts.google.com');
  });

  it('entra', () => {
    const p = identityProviders.entra({ tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47', userIdClaim: 'oid' });
    expect(p.issuer).toBe('https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0');
    expect(p.jwksUri).toBe('https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys');
    expect(p.userIdClaim).toBe('oid');
    expect(p).not.toHaveProperty('tenant');
  });

  it('auth0', () => {
    const p = identityProviders.auth0({ domain: 'acme.eu.auth0.com', audiences: ['https://api.acme.com'] });
    expect(p.issuer).toBe('https://acme.eu.auth0.com/');
    expect(p.jwksUri).toBe('https://acme.eu.auth0.com/.well-known/jwks.json');
    expect(p.audiences).toEqual(['https://api.acme.com']);
  });

  it('okta, default and custom authorization server', () => {
    const d = identityProviders.okta({ domain: 'acme.okta.com' });
    expect(d.issuer).toBe('https://acme.okta.com/oauth2/default');
    expect(d.jwksUri).toBe('https://acme.okta.com/oauth2/default/v1/keys');
    const c = identityProviders.okta({ domain: 'acme.okta.com', authServerId: 'aus1abc' });
    expect(c.issuer).toBe('https://acme.okta.com/oauth2/aus1abc');
    expect(c.jwksUri).toBe('https://acme.okta.com/oauth2/aus1abc/v1/keys');
  });

  it('keycloak, with and without a base path', () => {
    const p = identityProviders.keycloak({ baseUrl: 'https://sso.acme.com/', realm: 'staff' });
    expect(p.issuer).toBe('https://sso.acme.com/realms/staff');
    expect(p.jwksUri).toBe('https://sso.acme.com/realms/staff/protocol/openid-connect/certs');
    const q = identityProviders.keycloak({ baseUrl: 'https://acme.com/auth', realm: 'r1' });
    expect(q.issuer).toBe('https://acme.com/auth/realms/r1');
  });

  it('presets cannot override issuer and jwksUri, and feed createVerifier', () => {
    const p = identityProviders.google({ issuer: 'https://evil', jwksUri: 'https://evil/jwks' } as never);
    expect(p.issuer).toBe('https://accounts.google.com');
    expect(() => createVerifier({ providers: [{ ...p, audiences: ['cid'] }, identityProviders.okta({ domain: 'acme.okta.com', audiences: ['api://default'] })] })).not.toThrow();
  });

  it.each([
    () => identityProviders.auth0({ domain: 'evil.com/x?' }),
    () => identityProviders.auth0({ domain: 'a@b.com' }),
    () => identityProviders.entra({ tenant: '../common' }),
    () => identityProviders.okta({ domain: 'acme.okta.com', authServerId: 'a/b' }),
    () => identityProviders.keycloak({ baseUrl: 'not a url', realm: 'r' }),
    () => identityProviders.keycloak({ baseUrl: 'https://sso', realm: '..' }),
  ])('bad preset input is CONFIG_INVALID (%#)', (make) => {
    expect(make).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('keycloak over plain http outside loopback fails at createVerifier', () => {
    const p = identityProviders.keycloak({ baseUrl: 'http://sso.acme.com', realm: 'r' });
    expect(() => createVerifier({ providers: [p] })).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'providers.0.jwksUri' }));
  });
});
