/**
 * Presets for well-known identity providers: the real issuer and JWKS URL forms.
 *
 * @module
 */
import { configError } from '../errors.js';
import type { ProviderOptions } from './verifier.js';

/** The fields of {@link ProviderOptions} a preset fills in itself. */
type PresetFields = 'issuer' | 'jwksUri';
/**
 * Everything else of a provider, passed through unchanged by the presets.
 *
 * @example
 * ```ts
 * const extra: ProviderOverrides = { audiences: ['api://default'], userIdClaim: 'uid' };
 * identityProviders.okta({ domain: 'acme.okta.com', ...extra });
 * ```
 */
export type ProviderOverrides = Partial<Omit<ProviderOptions, PresetFields>>;

const DOMAIN = /^(?=.{1,253}(?::\d{1,5})?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?$/;
const PATH_SEGMENT = /^[A-Za-z0-9._~-]{1,200}$/;
const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function check(value: unknown, pattern: RegExp, field: string, what: string): string {
  if (typeof value !== 'string' || !pattern.test(value) || value === '.' || value === '..') throw configError(field, `must be ${what}`);
  return value;
}

function withDefaults(name: string, fixed: Pick<ProviderOptions, PresetFields>, rest: ProviderOverrides): ProviderOptions {
  return { name, ...rest, ...fixed };
}

/**
 * Ready provider definitions. Every other {@link ProviderOptions} field (audiences, userIdClaim,
 * allowedDomains, host, algorithms, ...) passes through. `audiences` is required by
 * `createVerifier`: set it to your own client id / API identifier, since these providers
 * issue tokens for many applications. With `allowedDomains`, an email counts only when the provider
 * says it is verified (`email_verified: true`; Entra: `xms_edov: true`). Google and Keycloak put
 * `email_verified` into their tokens; Auth0 and Okta access tokens carry `email` and
 * `email_verified` only when you add them (an Action / a claim mapping).
 *
 * @example
 * ```ts
 * const verifier = createVerifier({
 *   providers: [
 *     identityProviders.google({ audiences: ['1234.apps.googleusercontent.com'], allowedDomains: ['company.com'] }),
 *     identityProviders.entra({ tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47', audiences: ['api://my-api'], userIdClaim: 'oid', allowedDomains: ['acme.com'] }),
 *     identityProviders.auth0({ domain: 'acme.eu.auth0.com', audiences: ['https://api.acme.com'] }),
 *     identityProviders.okta({ domain: 'acme.okta.com', audiences: ['api://default'] }),
 *     identityProviders.keycloak({ baseUrl: 'https://sso.acme.com', realm: 'staff', audiences: ['agent'] }),
 *   ],
 * });
 * ```
 */
export const identityProviders = {
  /** Google: issuer `https://accounts.google.com`, JWKS `https://www.googleapis.com/oauth2/v3/certs`. */
  google(options: ProviderOverrides = {}): ProviderOptions {
    return withDefaults('google', { issuer: 'https://accounts.google.com', jwksUri: 'https://www.googleapis.com/oauth2/v3/certs' }, options);
  },
  /**
   * Microsoft Entra ID (v2.0 tokens): issuer `https://login.microsoftonline.com/{tenant}/v2.0`, JWKS
   * `.../{tenant}/discovery/v2.0/keys`. Use the tenant id (GUID): tokens name it in `iss` (and `tid`),
   * so the exact `iss` match pins your tenant. Consider `userIdClaim: 'oid'` (`sub` is pairwise per
   * application).
   *
   * Entra sends no `email_verified`, and its `email` claim is whatever the account's mail attribute
   * says, which the tenant that holds the account sets (the "nOAuth" pattern: another tenant can give
   * its user your CEO's address). So with `allowedDomains` this preset trusts an address only when
   * Entra says its domain owner is verified: the optional claim `xms_edov` must be `true` (add
   * `xms_edov` and `email` as optional claims of the token in the app registration; without them
   * every caller is `DOMAIN_NOT_ALLOWED`), and `tenant` must be a tenant id (GUID), never `common`,
   * `organizations` or a domain name. `emailVerifiedClaim` overrides the claim for custom claim
   * mappings.
   *
   * @see https://learn.microsoft.com/entra/identity-platform/optional-claims-reference
   * @see https://learn.microsoft.com/entra/identity-platform/claims-validation
   */
  entra(options: ProviderOverrides & { tenant: string }): ProviderOptions {
    const { tenant, ...rest } = options;
    const t = check(tenant, PATH_SEGMENT, 'tenant', 'a tenant id or domain');
    if (rest.allowedDomains !== undefined && !TENANT_ID.test(t)) {
      throw configError('tenant', 'must be the tenant id (a GUID) when allowedDomains is set: only your own tenant may vouch for your users');
    }
    const base = `https://login.microsoftonline.com/${t}`;
    return withDefaults(
      'entra',
      { issuer: `${base}/v2.0`, jwksUri: `${base}/discovery/v2.0/keys` },
      { ...rest, emailVerifiedClaim: rest.emailVerifiedClaim ?? 'xms_edov' },
    );
  },
  /** Auth0: issuer `https://{domain}/` (with the trailing slash), JWKS `https://{domain}/.well-known/jwks.json`. */
  auth0(options: ProviderOverrides & { domain: string }): ProviderOptions {
    const { domain, ...rest } = options;
    const d = check(domain, DOMAIN, 'domain', 'a host name such as acme.eu.auth0.com');
    return withDefaults('auth0', { issuer: `https://${d}/`, jwksUri: `https://${d}/.well-known/jwks.json` }, rest);
  },
  /** Okta: issuer `https://{domain}/oauth2/{authServerId}` (default `default`), JWKS `.../v1/keys`. */
  okta(options: ProviderOverrides & { domain: string; authServerId?: string }): ProviderOptions {
    const { domain, authServerId = 'default', ...rest } = options;
    const d = check(domain, DOMAIN, 'domain', 'a host name such as acme.okta.com');
    const a = check(authServerId, PATH_SEGMENT, 'authServerId', 'an authorization server id');
    const issuer = `https://${d}/oauth2/${a}`;
    return withDefaults('okta', { issuer, jwksUri: `${issuer}/v1/keys` }, rest);
  },
  /** Keycloak: issuer `{baseUrl}/realms/{realm}`, JWKS `.../protocol/openid-connect/certs`. */
  keycloak(options: ProviderOverrides & { baseUrl: string; realm: string }): ProviderOptions {
    const { baseUrl, realm, ...rest } = options;
    let base: URL;
    try {
      base = new URL(String(baseUrl));
    } catch {
      throw configError('baseUrl', 'is not a valid URL');
    }
    if (base.search !== '' || base.hash !== '') throw configError('baseUrl', 'must not have a query or fragment');
    const r = check(realm, PATH_SEGMENT, 'realm', 'a realm name');
    const issuer = `${base.origin}${base.pathname.replace(/\/+$/, '')}/realms/${r}`;
    return withDefaults('keycloak', { issuer, jwksUri: `${issuer}/protocol/openid-connect/certs` }, rest);
  },
} as const;
