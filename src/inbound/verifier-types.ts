// The verifier's public types and algorithm list (createVerifier is in verifier.ts).
import { type AuditSink } from '../audit/events.js';
import { type AgentContext } from '../context.js';

/**
 * The asymmetric JWS algorithms a provider may allow (the default allow-list). `none` and HS* are
 * never accepted from a JWKS provider.
 *
 * @example
 * ```ts
 * createVerifier({ providers: [{ issuer, jwksUri, algorithms: ['ES256'] }] }); // narrow the list per provider
 * SUPPORTED_ALGORITHMS.includes('RS256'); // true
 * ```
 */
export const SUPPORTED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

/**
 * One identity provider whose tokens a verifier accepts.
 *
 * @example
 * ```ts
 * const corp: ProviderOptions = {
 *   issuer: 'https://idp.example.com',
 *   jwksUri: 'https://idp.example.com/.well-known/jwks.json',
 *   audiences: ['https://api.example.com'],
 *   userIdClaim: 'email',
 *   allowedDomains: ['example.com'],
 *   requireTyp: 'at+jwt',
 * };
 * ```
 */
export interface ProviderOptions {
  /** The exact `iss` value of its tokens. */
  issuer: string;
  /** Where its public keys are (https; plain http only on loopback). */
  jwksUri: string;
  /**
   * The token's `aud` must contain one of these (your API identifier or client id). Required, unless
   * {@link ProviderOptions.dangerouslyAllowAnyAudience} is set: without an audience check a token the
   * issuer minted for any other application would pass (RFC 8725 §3.9; the MCP authorization spec).
   */
  audiences?: string[];
  /**
   * Accept tokens of this issuer whatever their `aud`. Only for an issuer that mints tokens for you
   * alone (and never with a shared one such as Google or Entra). Must be exactly `true`, and cannot be
   * combined with `audiences`.
   */
  dangerouslyAllowAnyAudience?: true;
  /** The claim that holds the user id (default `sub`). */
  userIdClaim?: string;
  /**
   * Accept only users whose `email` domain is one of these (exact, case-insensitive), and only when
   * the provider vouches for the address: the claim named by {@link ProviderOptions.emailVerifiedClaim}
   * must be `true` (or the string `"true"`, which Apple sends). Missing, `null`, `false`, `0`,
   * `"false"`, `"False"` and anything else are `DOMAIN_NOT_ALLOWED`.
   */
  allowedDomains?: string[];
  /**
   * The claim that says the provider verified the `email` address, checked with `allowedDomains`
   * (default `email_verified`, OpenID Connect Core §5.1). The Entra preset sets `xms_edov`.
   */
  emailVerifiedClaim?: string;
  /** Only requests for this host (`Host` header; with `:port` to compare the port too) may use this provider. */
  host?: string;
  /** Allowed `alg` values (default: every asymmetric algorithm of {@link SUPPORTED_ALGORITHMS}). */
  algorithms?: string[];
  /** Clock skew accepted for `exp`, `nbf` and `iat`, in seconds (default 5, at most 3600). */
  clockTolerance?: number;
  /** Require this JOSE `typ` (e.g. `at+jwt` for RFC 9068 access tokens; `application/` prefix optional). */
  requireTyp?: string;
  /** Longest accepted chain of nested `act` claims (default 4); deeper is `TOKEN_MALFORMED`. */
  maxDelegationDepth?: number;
  /** A label for diagnostics. */
  name?: string;
}

/**
 * Options of {@link createVerifier}. Unknown keys are refused (`CONFIG_INVALID`), so a typo such as
 * `audience` cannot silently switch a check off.
 *
 * @example
 * ```ts
 * const options: VerifierOptions = {
 *   mode: 'open',
 *   providers: [identityProviders.auth0({ domain: 'acme.eu.auth0.com', audiences: ['https://api.acme.com'] })],
 *   resourceMetadataUrl: 'https://api.acme.com/.well-known/oauth-protected-resource',
 *   audit: (event) => console.log(JSON.stringify(event)),
 * };
 * ```
 */
export interface VerifierOptions {
  /** `authenticated` (default) requires a token; `open` lets requests without one through as anonymous. */
  mode?: 'authenticated' | 'open';
  /** The accepted identity providers; chosen per token by `iss` (and by host when a provider sets `host`). */
  providers: ProviderOptions[];
  /** RFC 9728 protected-resource metadata URL, sent as `resource_metadata` in every challenge. */
  resourceMetadataUrl?: string;
  /** The `realm` of every challenge. */
  realm?: string;
  /** Longest accepted bearer token, in characters, checked before any decoding (default 16384). */
  maxTokenLength?: number;
  /** Longest accepted user id (default 256). */
  maxUserIdLength?: number;
  /** Timeout of one JWKS fetch, in ms (default 5000). */
  jwksTimeoutMs?: number;
  /** Least time between two JWKS fetches triggered by an unknown `kid`, in ms (default 30000, at least 100). */
  jwksCooldownMs?: number;
  /** Largest accepted JWKS answer, in bytes (default 262144). */
  jwksMaxBytes?: number;
  /**
   * Age after which a key set is re-read, in ms (default 600000). The re-read runs in the background
   * (stale-while-revalidate): a token whose key the cached set holds verifies at once, and the stale
   * keys keep serving when the re-read fails. Only an unknown `kid` or an empty cache waits for a fetch.
   */
  jwksMaxAgeMs?: number;
  /** How many verified tokens to remember (default 1000; 0 disables the cache). */
  cacheSize?: number;
  /** Receives an `inbound.verify` event for every verification. */
  audit?: AuditSink;
  /** The fetch used for JWKS (default: global fetch). */
  fetch?: typeof fetch;
}

/**
 * A framework-neutral request: what an adapter hands to {@link Verifier.verify} when it has no
 * Web `Request`.
 *
 * @example
 * ```ts
 * // Node http / Express
 * await verifier.verify({ headers: req.headers, rawHeaders: req.rawHeaders, method: req.method, url: req.url });
 * ```
 */
export interface VerifyRequest {
  /** Request headers; an array value means the header was sent more than once. */
  headers: Headers | Record<string, string | string[] | undefined>;
  /** The request's host (default: the `Host` header, else the host of `url`). */
  host?: string;
  method?: string;
  url?: string;
  /**
   * Node's `req.rawHeaders` (name, value, name, value...), when available: Node keeps only one of
   * several `Authorization` lines in `req.headers`, so the duplicates are only visible here.
   */
  rawHeaders?: readonly string[];
}

/**
 * Per-call options of {@link Verifier.verify}.
 *
 * @example
 * ```ts
 * await verifier.verify(request, { requiredScopes: ['tickets:write'] });
 * ```
 */
export interface VerifyOptions {
  /** Scopes the token must all grant, else `INSUFFICIENT_SCOPE` (403). */
  requiredScopes?: string[];
}

/**
 * A configured verifier. Build one with {@link createVerifier}.
 *
 * @example
 * ```ts
 * const ctx = await verifier.verify(request);
 * verifier.requireScopes(ctx, ['reports:read']); // throws INSUFFICIENT_SCOPE (403) otherwise
 * ```
 */
export interface Verifier {
  /**
   * Verify the request's bearer token. Resolves to a frozen context, or rejects with an
   * `AgentIamError` carrying `status` and `wwwAuthenticate`.
   */
  verify(request: Request | VerifyRequest, options?: VerifyOptions): Promise<AgentContext>;
  /**
   * Throws INSUFFICIENT_SCOPE (403, WWW-Authenticate error="insufficient_scope", scope="...") unless ctx holds all;
   * for an anonymous context (open mode, no token) throws TOKEN_MISSING (401, `Bearer scope="..."`, no error).
   */
  requireScopes(context: AgentContext, scopes: string[]): void;
  /** The mode the verifier was built with. */
  readonly mode: 'authenticated' | 'open';
}
