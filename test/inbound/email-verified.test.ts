/**
 * allowedDomains trusts an email only when the provider vouches for it: `email_verified` (or the
 * preset's claim, `xms_edov` for Entra) must be exactly true. Real JWKS server on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, identityProviders, type ProviderOptions, type Verifier } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken, type TestKey } from '../helpers/tokens.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
let jwks: JwksServer;
let key: TestKey;
beforeAll(async () => {
  key = await createTestKey('ES256');
  jwks = await startJwksServer([key.publicJwk]);
});
afterAll(() => jwks.close());

async function outcome(v: Verifier, extra: Record<string, unknown>): Promise<string> {
  const token = await signToken(key, claims(jwks.origin, { email: 'alice@company.com', ...extra }));
  try {
    await v.verify({ headers: { authorization: `Bearer ${token}` } });
    return 'ok';
  } catch (e) {
    return (e as { code: string }).code;
  }
}

/** A preset pointed at the loopback JWKS server (the preset's other settings kept). */
function local(preset: ProviderOptions): Verifier {
  return createVerifier({ providers: [{ ...preset, issuer: jwks.origin, jwksUri: jwks.url }] });
}

// Everything that is not exactly true: absent, null, numbers, other spellings, containers.
const NOT_VERIFIED: unknown[] = [undefined, null, false, 0, 1, '', 'false', 'False', 'FALSE', 'True', 'TRUE', '1', 'yes', {}, [], [true], { value: true }];

describe('allowedDomains: email_verified must be exactly true', () => {
  const v = () => createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'], allowedDomains: ['company.com'] }] });

  it.each(NOT_VERIFIED.map((x) => [JSON.stringify(x) ?? 'missing', x]))('email_verified %s is DOMAIN_NOT_ALLOWED', async (_label, value) => {
    expect(await outcome(v(), value === undefined ? {} : { email_verified: value })).toBe('DOMAIN_NOT_ALLOWED');
  });

  it('true and the string "true" (Apple sends a string) pass', async () => {
    expect(await outcome(v(), { email_verified: true })).toBe('ok');
    expect(await outcome(v(), { email_verified: 'true' })).toBe('ok');
  });

  it('a verified address in another domain is still refused', async () => {
    expect(await outcome(v(), { email: 'alice@evil.example', email_verified: true })).toBe('DOMAIN_NOT_ALLOWED');
  });

  it('without allowedDomains, email_verified is not required (the email is only reported)', async () => {
    const open = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] }] });
    expect(await outcome(open, {})).toBe('ok');
  });

  it('emailVerifiedClaim names another claim, and then email_verified does not count', async () => {
    const custom = createVerifier({
      providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'], allowedDomains: ['company.com'], emailVerifiedClaim: 'https://acme/email_verified' }],
    });
    expect(await outcome(custom, { email_verified: true })).toBe('DOMAIN_NOT_ALLOWED');
    expect(await outcome(custom, { 'https://acme/email_verified': true })).toBe('ok');
  });
});

describe('Entra preset with allowedDomains: xms_edov, not an email anyone can set', () => {
  const entra = () => local(identityProviders.entra({ tenant: TENANT, audiences: ['api://test'], userIdClaim: 'oid', allowedDomains: ['company.com'] }));
  const base = { oid: '00000000-0000-0000-0000-00000000a11c', tid: TENANT };

  it('the nOAuth pattern: an email claim without a verified domain owner is refused', async () => {
    expect(await outcome(entra(), base)).toBe('DOMAIN_NOT_ALLOWED');
    // Entra never sends email_verified; a token that carries one proves nothing about the domain.
    expect(await outcome(entra(), { ...base, email_verified: true })).toBe('DOMAIN_NOT_ALLOWED');
  });

  it.each(NOT_VERIFIED.map((x) => [JSON.stringify(x) ?? 'missing', x]))('xms_edov %s is DOMAIN_NOT_ALLOWED', async (_label, value) => {
    expect(await outcome(entra(), value === undefined ? base : { ...base, xms_edov: value })).toBe('DOMAIN_NOT_ALLOWED');
  });

  it('xms_edov: true in an allowed domain passes', async () => {
    expect(await outcome(entra(), { ...base, xms_edov: true })).toBe('ok');
    expect(await outcome(entra(), { ...base, xms_edov: true, email: 'mallory@evil.example' })).toBe('DOMAIN_NOT_ALLOWED');
  });

  it('the preset says which claim it relies on', () => {
    expect(identityProviders.entra({ tenant: TENANT, audiences: ['a'], allowedDomains: ['company.com'] }).emailVerifiedClaim).toBe('xms_edov');
  });

  it.each(['common', 'organizations', 'consumers', 'contoso.onmicrosoft.com', 'company.com'])(
    'tenant %s with allowedDomains is refused at construction: only a pinned tenant id can vouch',
    (tenant) => {
      expect(() => identityProviders.entra({ tenant, audiences: ['a'], allowedDomains: ['company.com'] })).toThrowError(
        expect.objectContaining({ code: 'CONFIG_INVALID', field: 'tenant' }),
      );
    },
  );
});
