/**
 * The inbound verifier: turns a request's bearer JWT into a frozen {@link AgentContext}.
 *
 * @module
 */
import { z } from 'zod';
import { actorSubjects, emitAudit, type AuditSink } from '../audit/events.js';
import { anonymousContext, attachRawToken, newRequestId, type Actor, type AgentContext } from '../context.js';
import { configError, isAgentIamError } from '../errors.js';
import { fromBase64Url, hasControlChars } from '../lib/encoding.js';
import { LruCache } from '../lib/lru.js';
import { parseOptions } from '../lib/options.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { InboundErrors } from './challenge.js';
import { JwksCache } from './jwks.js';
import { missingScopes, scopesOf } from './scopes.js';
import { isoNow, nowMs } from '../lib/clock.js';

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

const providerSchema = z.strictObject({
  issuer: z.string().min(1).max(2048),
  jwksUri: z.string().min(1).max(2048),
  audiences: z.array(z.string().min(1)).min(1).optional(),
  dangerouslyAllowAnyAudience: z.literal(true).optional(),
  userIdClaim: z.string().min(1).max(256).optional(),
  allowedDomains: z
    .array(z.string().regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'must be a bare domain name'))
    .min(1)
    .optional(),
  emailVerifiedClaim: z.string().min(1).max(256).optional(),
  host: z.string().min(1).max(300).regex(/^[A-Za-z0-9.\-[\]:]+$/, 'must be a host name').optional(),
  algorithms: z.array(z.enum(SUPPORTED_ALGORITHMS)).min(1).optional(),
  clockTolerance: z.number().min(0).max(3600).optional(),
  requireTyp: z.string().min(1).max(100).optional(),
  maxDelegationDepth: z.number().int().min(0).max(32).optional(),
  name: z.string().max(200).optional(),
});

const verifierSchema = z.strictObject({
  mode: z.enum(['authenticated', 'open']).optional(),
  providers: z.array(providerSchema),
  resourceMetadataUrl: z.string().min(1).optional(),
  realm: z.string().max(200).optional(),
  maxTokenLength: z.number().int().min(256).max(1_048_576).optional(),
  maxUserIdLength: z.number().int().min(1).max(4096).optional(),
  jwksTimeoutMs: z.number().int().min(1).max(120_000).optional(),
  jwksCooldownMs: z.number().int().min(100).max(86_400_000).optional(),
  jwksMaxBytes: z.number().int().min(1024).max(16_777_216).optional(),
  jwksMaxAgeMs: z.number().int().min(1000).optional(),
  cacheSize: z.number().int().min(0).max(1_000_000).optional(),
  audit: z
    .custom<AuditSink>(
      (v) => typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'),
      'must be a function or an object with write()',
    )
    .optional(),
  fetch: z.custom<typeof fetch>((v) => typeof v === 'function', 'must be a function').optional(),
});

interface Provider {
  issuer: string;
  audiences: ReadonlySet<string> | undefined;
  userIdClaim: string;
  allowedDomains: ReadonlySet<string> | undefined;
  emailVerifiedClaim: string;
  /** Lower-case host; `hostHasPort` says whether to compare the port too. */
  host: string | undefined;
  hostHasPort: boolean;
  algorithms: ReadonlySet<string>;
  tolerance: number;
  requireTyp: string | undefined;
  maxDepth: number;
  jwks: JwksCache;
}

/** What the cache remembers of a verified token: everything but the per-request parts. */
interface CachedToken {
  /** The whole token: a hit must be this exact string (the cache key is only its tail). */
  token: string;
  provider: Provider;
  generation: number;
  /** Seconds. */
  exp: number;
  nbf: number;
  userId: string;
  subject: string | undefined;
  issuer: string;
  scopes: readonly string[];
  claims: Readonly<Record<string, unknown>>;
  email: string | undefined;
  domain: string | undefined;
  actorChain: readonly Actor[];
}

/**
 * Seconds of clock skew accepted by default (jose: 0; express-oauth2-jwt-bearer: 5). Small on
 * purpose: it is how long a token stays usable after its `exp`.
 */
const DEFAULT_CLOCK_TOLERANCE = 5;
const VERIFIER = Symbol.for('agent-iam.verifier');
/** The synchronous entry the adapters use (shared by the ESM and CJS builds, hence `Symbol.for`). */
const VERIFY_NOW = Symbol.for('agent-iam.verifier.verifyNow');
/** How many tokens the verified-token cache holds now (benchmarks and tests). */
const CACHE_SIZE = Symbol.for('agent-iam.verifier.cacheSize');
const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** 43 base64url characters: 258 bits of a signature. */
const CACHE_KEY_LENGTH = 43;
const EMBEDDED_KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
const EMPTY_ACTORS: readonly Actor[] = Object.freeze([]);
const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

const VERIFY_PARAMS: Record<string, AlgorithmIdentifier | RsaPssParams | EcdsaParams> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  RS384: { name: 'RSASSA-PKCS1-v1_5' },
  RS512: { name: 'RSASSA-PKCS1-v1_5' },
  PS256: { name: 'RSA-PSS', saltLength: 32 },
  PS384: { name: 'RSA-PSS', saltLength: 48 },
  PS512: { name: 'RSA-PSS', saltLength: 64 },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  ES384: { name: 'ECDSA', hash: 'SHA-384' },
  ES512: { name: 'ECDSA', hash: 'SHA-512' },
  EdDSA: { name: 'Ed25519' },
  Ed25519: { name: 'Ed25519' },
};

/**
 * Build a verifier for one or more identity providers. Options are checked here, once: a bad one
 * throws `CONFIG_INVALID` naming the field (e.g. `providers.0.jwksUri`).
 *
 * Rejections (each an `AgentIamError` with `status` and `wwwAuthenticate`): no token
 * `TOKEN_MISSING`; several `Authorization` headers `TOKEN_MALFORMED` with status 400 and
 * `error="invalid_request"`; too long, not a compact JWS, embedded key headers (`jwk`, `jku`,
 * `x5u`, `x5c`), `crit`, wrong `typ`, delegation deeper than `maxDelegationDepth`
 * `TOKEN_MALFORMED`; `none`, HS* or an unlisted `alg` `TOKEN_ALG_NOT_ALLOWED`; unknown `kid` (after at
 * most one refetch per cool-down) or bad signature `TOKEN_SIGNATURE_INVALID`; `exp` missing or
 * past `TOKEN_EXPIRED`; `nbf` or `iat` in the future `TOKEN_NOT_YET_VALID`; and so on per the README's error table.
 *
 * Verified tokens are remembered (bounded LRU keyed by the exact token string) until their `exp`,
 * and forgotten when the provider's key set changes; a remembered token still gets the host and
 * scope checks and a fresh `requestId`.
 *
 * @example
 * ```ts
 * import { createVerifier, identityProviders } from 'agent-iam';
 *
 * const verifier = createVerifier({
 *   providers: [
 *     { issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['https://api.example.com'] },
 *     identityProviders.google({ audiences: ['1234.apps.googleusercontent.com'], allowedDomains: ['company.com'] }),
 *   ],
 * });
 * const ctx = await verifier.verify(request, { requiredScopes: ['tickets:read'] });
 * console.log(ctx.userId, ctx.scopes);
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const o = parseOptions(verifierSchema, options);
  const mode = o.mode ?? 'authenticated';
  if (mode === 'authenticated' && o.providers.length === 0) {
    throw configError('providers', 'needs at least one provider in authenticated mode');
  }
  if (o.resourceMetadataUrl !== undefined) requireSecureUrl(o.resourceMetadataUrl, 'resourceMetadataUrl');
  const errors = new InboundErrors({
    ...(o.realm !== undefined ? { realm: o.realm } : {}),
    ...(o.resourceMetadataUrl !== undefined ? { resourceMetadata: o.resourceMetadataUrl } : {}),
  });
  const fetchImpl = o.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const byIssuer = new Map<string, Provider[]>();
  let hostsUsed = false;
  o.providers.forEach((p, i) => {
    const jwksUri = requireSecureUrl(p.jwksUri, `providers.${i}.jwksUri`).href;
    if (p.audiences === undefined && p.dangerouslyAllowAnyAudience !== true) {
      throw configError(
        `providers.${i}.audiences`,
        'is required: list the aud values meant for this API (or, for an issuer that mints tokens for nobody else, set dangerouslyAllowAnyAudience: true)',
      );
    }
    if (p.audiences !== undefined && p.dangerouslyAllowAnyAudience === true) {
      throw configError(`providers.${i}.dangerouslyAllowAnyAudience`, 'cannot be combined with audiences');
    }
    const host = p.host?.toLowerCase().replace(/\.$/, '');
    const provider: Provider = {
      issuer: p.issuer,
      audiences: p.audiences ? new Set(p.audiences) : undefined,
      userIdClaim: p.userIdClaim ?? 'sub',
      allowedDomains: p.allowedDomains ? new Set(p.allowedDomains.map((d) => d.toLowerCase())) : undefined,
      emailVerifiedClaim: p.emailVerifiedClaim ?? 'email_verified',
      host,
      hostHasPort: host !== undefined && /:\d+$/.test(host),
      algorithms: new Set(p.algorithms ?? SUPPORTED_ALGORITHMS),
      tolerance: p.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE,
      requireTyp: p.requireTyp === undefined ? undefined : normalizeTyp(p.requireTyp),
      maxDepth: p.maxDelegationDepth ?? 4,
      jwks: new JwksCache({
        uri: jwksUri,
        timeoutMs: o.jwksTimeoutMs ?? 5000,
        cooldownMs: o.jwksCooldownMs ?? 30_000,
        maxBytes: o.jwksMaxBytes ?? 262_144,
        maxAgeMs: o.jwksMaxAgeMs ?? 600_000,
        fetch: fetchImpl,
        errors,
      }),
    };
    if (host !== undefined) hostsUsed = true;
    const list = byIssuer.get(p.issuer) ?? [];
    if (list.some((q) => q.host === host)) {
      throw configError(`providers.${i}.issuer`, 'is configured twice for the same host');
    }
    list.push(provider);
    byIssuer.set(p.issuer, list);
  });

  const maxTokenLength = o.maxTokenLength ?? 16_384;
  const maxUserIdLength = o.maxUserIdLength ?? 256;
  const cacheSize = o.cacheSize ?? 1000;
  const cache = cacheSize > 0 ? new LruCache<string, CachedToken>(cacheSize) : undefined;
  const audit = o.audit;

  function selectProvider(iss: string, request: Request | VerifyRequest): Provider | undefined {
    const list = byIssuer.get(iss);
    if (list === undefined) return undefined;
    if (!hostsUsed) return list[0];
    const host = requestHost(request);
    let fallback: Provider | undefined;
    for (const p of list) {
      if (p.host === undefined) fallback = p;
      else if (host !== undefined && (p.hostHasPort ? host : stripPort(host)) === p.host) return p;
    }
    return fallback;
  }

  function fromCache(entry: CachedToken, requestId: string): AgentContext {
    return Object.freeze({
      userId: entry.userId,
      subject: entry.subject,
      issuer: entry.issuer,
      scopes: entry.scopes,
      claims: entry.claims,
      email: entry.email,
      domain: entry.domain,
      actorChain: entry.actorChain,
      requestId,
      authenticated: true,
    });
  }

  /**
   * The verified-token cache, synchronously: a fresh context for a remembered token that is still
   * inside its `exp`/`nbf` window, whose provider's key set has not changed since, and whose provider
   * is still the one this request's host selects; else undefined (and a stale entry is dropped).
   */
  function fromCacheIfValid(token: string, request: Request | VerifyRequest, requestId: string): AgentContext | undefined {
    const key = cacheKey(token);
    const entry = (cache as LruCache<string, CachedToken>).get(key);
    if (entry === undefined || entry.token !== token) return undefined;
    const now = nowMs() / 1000;
    const provider = entry.provider;
    if (
      entry.generation === provider.jwks.generation &&
      now < entry.exp &&
      now >= entry.nbf &&
      (!hostsUsed || selectProvider(entry.issuer, request) === provider)
    ) {
      provider.jwks.touch(); // a key set past its max age is re-read in the background
      return fromCache(entry, requestId);
    }
    (cache as LruCache<string, CachedToken>).delete(key);
    return undefined;
  }

  async function verifyToken(token: string, request: Request | VerifyRequest, requestId: string): Promise<AgentContext> {
    if (!JWS_SHAPE.test(token)) throw errors.error('TOKEN_MALFORMED', 'The bearer token is not a compact JWS');
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    const header = decodeSegment(token.slice(0, dot1));
    if (header === undefined) throw errors.error('TOKEN_MALFORMED', 'The token header is not valid base64url JSON');
    const alg = header.alg;
    if (typeof alg !== 'string' || !Object.hasOwn(VERIFY_PARAMS, alg)) {
      throw errors.error('TOKEN_ALG_NOT_ALLOWED', 'The token alg is not allowed');
    }
    for (const name of EMBEDDED_KEY_HEADERS) {
      if (name in header) throw errors.error('TOKEN_MALFORMED', 'Tokens with embedded key headers (jwk, jku, x5u, x5c) are refused');
    }
    if ('crit' in header) throw errors.error('TOKEN_MALFORMED', 'The token has crit header parameters that are not understood');
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== 'string') throw errors.error('TOKEN_MALFORMED', 'The token kid is not a string');
    if (dot2 === token.length - 1) throw errors.error('TOKEN_MALFORMED', 'The token has no signature');
    const payload = decodeSegment(token.slice(dot1 + 1, dot2));
    if (payload === undefined) throw errors.error('TOKEN_MALFORMED', 'The token payload is not valid base64url JSON');
    const iss = payload.iss;
    if (typeof iss !== 'string') throw errors.error('TOKEN_ISSUER_UNKNOWN', 'The token has no issuer');
    const provider = selectProvider(iss, request);
    if (provider === undefined) throw errors.error('TOKEN_ISSUER_UNKNOWN', 'The token issuer is not accepted here');
    if (!provider.algorithms.has(alg)) throw errors.error('TOKEN_ALG_NOT_ALLOWED', 'The token alg is not allowed for this issuer');
    if (provider.requireTyp !== undefined && (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== provider.requireTyp)) {
      throw errors.error('TOKEN_MALFORMED', 'The token typ is not the required one');
    }

    let signature: Uint8Array;
    try {
      signature = fromBase64Url(token.slice(dot2 + 1));
    } catch {
      throw errors.error('TOKEN_MALFORMED', 'The token signature is not valid base64url');
    }
    const signingInput = encoder.encode(token.slice(0, dot2));
    const params = VERIFY_PARAMS[alg] as AlgorithmIdentifier;
    const cachedKey = provider.jwks.cached(kid as string | undefined, alg);
    const generation = provider.jwks.generation;
    let valid = false;
    if (cachedKey !== undefined) {
      valid = await verifySignature(params, cachedKey, signature, signingInput);
    } else {
      for (const key of await provider.jwks.resolve(kid as string | undefined, alg)) {
        if (await verifySignature(params, key, signature, signingInput)) {
          valid = true;
          break;
        }
      }
    }
    if (!valid) throw errors.error('TOKEN_SIGNATURE_INVALID', 'The token signature does not verify');

    // Claims, only once the signature holds.
    const now = nowMs() / 1000;
    const tol = provider.tolerance;
    const exp = payload.exp;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw errors.error('TOKEN_EXPIRED', 'The token has no exp claim');
    if (exp <= now - tol) throw errors.error('TOKEN_EXPIRED', 'The token has expired');
    const nbf = payload.nbf;
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) {
      throw errors.error('TOKEN_MALFORMED', 'The token nbf claim is not a number');
    }
    if (nbf !== undefined && nbf > now + tol) throw errors.error('TOKEN_NOT_YET_VALID', 'The token is not yet valid');
    const iat = payload.iat;
    if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat))) {
      throw errors.error('TOKEN_MALFORMED', 'The token iat claim is not a number');
    }
    if (iat !== undefined && iat > now + tol) throw errors.error('TOKEN_NOT_YET_VALID', 'The token was issued in the future');

    if (provider.audiences !== undefined && !audienceMatches(payload.aud, provider.audiences)) {
      throw errors.error('TOKEN_AUDIENCE_MISMATCH', 'The token audience is not accepted here');
    }
    const sub = payload.sub;
    if (sub !== undefined && typeof sub !== 'string') throw errors.error('TOKEN_MALFORMED', 'The token sub claim is not a string');
    const userId = payload[provider.userIdClaim];
    if (typeof userId !== 'string' || userId === '' || userId.length > maxUserIdLength || hasControlChars(userId)) {
      throw errors.error('USER_CLAIM_MISSING', `The token claim ${provider.userIdClaim} is not a usable user id`);
    }
    let email: string | undefined;
    let domain: string | undefined;
    const rawEmail = payload.email;
    if (typeof rawEmail === 'string' && rawEmail.length <= 320 && !hasControlChars(rawEmail)) {
      const at = rawEmail.lastIndexOf('@');
      if (at > 0 && at < rawEmail.length - 1 && rawEmail.indexOf('@') === at) {
        email = rawEmail;
        domain = rawEmail.slice(at + 1).toLowerCase();
      }
    }
    if (provider.allowedDomains !== undefined) {
      // Only an address the provider vouches for: exactly true (Apple sends the string "true").
      const verified = payload[provider.emailVerifiedClaim];
      if (domain === undefined || !provider.allowedDomains.has(domain) || (verified !== true && verified !== 'true')) {
        throw errors.error('DOMAIN_NOT_ALLOWED', 'The user email domain is not allowed');
      }
    }
    const actorChain = parseActors(payload.act, provider.maxDepth);
    if (actorChain === undefined) throw errors.error('TOKEN_MALFORMED', 'The token act claim is invalid or too deep');

    const entry: CachedToken = {
      token,
      provider,
      generation,
      exp,
      // Served from the cache only from nbf on, and never while iat is ahead of the clock (a clock moved back).
      nbf: Math.max(typeof nbf === 'number' ? nbf : Number.NEGATIVE_INFINITY, typeof iat === 'number' ? iat - tol : Number.NEGATIVE_INFINITY),
      userId,
      subject: sub,
      issuer: iss,
      scopes: scopesOf(payload),
      claims: deepFreeze(payload),
      email,
      domain,
      actorChain,
    };
    if (cache !== undefined && now < exp && now >= entry.nbf) cache.set(cacheKey(token), entry);
    return fromCache(entry, requestId);
  }

  function requireScopes(context: AgentContext, scopes: readonly string[]): void {
    if (scopes.length === 0) return;
    if (!context.authenticated) throw errors.missingTokenForScopes(scopes);
    if (missingScopes(context.scopes, scopes).length > 0) throw errors.insufficientScope(scopes);
  }

  /** A cache miss: verify the signature and claims, then the per-request checks. */
  async function verifyMiss(
    token: string,
    request: Request | VerifyRequest,
    requestId: string,
    options: VerifyOptions | undefined,
  ): Promise<AgentContext> {
    const context = await verifyToken(token, request, requestId);
    attachRawToken(context, token);
    if (options?.requiredScopes !== undefined) requireScopes(context, options.requiredScopes);
    return context;
  }

  /**
   * Every check, synchronously as far as it goes: header hygiene, length cap, then the verified-token
   * cache (with its exp/nbf, key-set and host checks) and the required scopes. Returns the context
   * itself when no I/O or crypto is needed, a promise on a cache miss; throws synchronously.
   */
  function verifyCore(request: Request | VerifyRequest, requestId: string, options: VerifyOptions | undefined): AgentContext | Promise<AgentContext> {
    const auth = readAuthorization(request, errors);
    let token: string | undefined;
    if (auth !== undefined && auth !== '') {
      if (auth.length > maxTokenLength + 32) throw errors.error('TOKEN_MALFORMED', 'The bearer token is too long');
      if (auth.includes(',')) throw errors.invalidRequest('The request carries more than one Authorization header');
      if (isBearer(auth)) {
        token = auth.slice(7).trim();
        if (token === '') throw errors.error('TOKEN_MALFORMED', 'The bearer token is empty');
        if (token.length > maxTokenLength) throw errors.error('TOKEN_MALFORMED', 'The bearer token is too long');
      }
    }
    let context: AgentContext | undefined;
    if (token === undefined) {
      if (mode === 'authenticated') {
        // With required scopes, say which (RFC 6750 §3; MCP clients read `scope` from the 401).
        const required = options?.requiredScopes;
        throw required !== undefined && required.length > 0 ? errors.missingTokenForScopes(required) : errors.error('TOKEN_MISSING', 'A bearer token is required');
      }
      context = anonymousContext(requestId);
    } else {
      if (cache !== undefined) context = fromCacheIfValid(token, request, requestId);
      if (context === undefined) return verifyMiss(token, request, requestId, options);
      attachRawToken(context, token);
    }
    if (options?.requiredScopes !== undefined) requireScopes(context, options.requiredScopes);
    return context;
  }

  function audited(request: Request | VerifyRequest, requestId: string, started: number, context: AgentContext): AgentContext {
    emitAudit(audit, {
      type: 'inbound.verify',
      time: isoNow(),
      ...(context.userId !== undefined ? { userId: context.userId } : {}),
      ...(context.actorChain.length > 0 ? { actorChain: actorSubjects(context.actorChain) } : {}),
      ...requestLine(request),
      decision: 'allow',
      durationMs: nowMs() - started,
      requestId,
    });
    return context;
  }

  function auditedFailure(request: Request | VerifyRequest, requestId: string, started: number, error: unknown): never {
    emitAudit(audit, {
      type: 'inbound.verify',
      time: isoNow(),
      ...requestLine(request),
      decision: 'deny',
      code: isAgentIamError(error) ? error.code : 'INTERNAL_ERROR',
      durationMs: nowMs() - started,
      requestId,
    });
    throw error;
  }

  /** {@link verifyCore} with the request id and the audit event; a context, a promise of one, or a throw. */
  function verifyNow(request: Request | VerifyRequest, options: VerifyOptions | undefined): AgentContext | Promise<AgentContext> {
    const requestId = requestIdOf(request);
    if (audit === undefined) return verifyCore(request, requestId, options);
    const started = nowMs();
    let result: AgentContext | Promise<AgentContext>;
    try {
      result = verifyCore(request, requestId, options);
    } catch (error) {
      return auditedFailure(request, requestId, started, error);
    }
    if (result instanceof Promise) {
      return result.then(
        (context) => audited(request, requestId, started, context),
        (error: unknown) => auditedFailure(request, requestId, started, error),
      );
    }
    return audited(request, requestId, started, result);
  }

  const verifier: Verifier & { [VERIFIER]: true; [VERIFY_NOW]: typeof verifyNow; [CACHE_SIZE]: () => number } = {
    [VERIFIER]: true,
    [VERIFY_NOW]: verifyNow,
    [CACHE_SIZE]: () => cache?.size ?? 0,
    mode,
    verify(request, options) {
      // Not an async function: a cache hit costs one resolved promise, not three nested ones.
      try {
        const result = verifyNow(request, options);
        return result instanceof Promise ? result : Promise.resolve(result);
      } catch (error) {
        return Promise.reject(error as Error);
      }
    },
    requireScopes(context, scopes) {
      requireScopes(context, scopes);
    },
  };
  return Object.freeze(verifier);
}

/**
 * True when `value` was built by {@link createVerifier} (from either the ESM or the CJS build).
 *
 * @example
 * ```ts
 * const verifier = isVerifier(arg) ? arg : createVerifier(arg);
 * ```
 */
export function isVerifier(value: unknown): value is Verifier {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[VERIFIER] === true;
}

/**
 * @internal For the adapters: verify without a promise when the verified-token cache answers. Returns
 * the context itself on a cache hit (or an anonymous request), a promise on a miss, and throws
 * synchronously on a failure found before any I/O. Falls back to `verifier.verify` for a verifier
 * object that lacks the internal entry.
 */
export function verifyNow(verifier: Verifier, request: Request | VerifyRequest, options?: VerifyOptions): AgentContext | Promise<AgentContext> {
  const fn = (verifier as { [VERIFY_NOW]?: (r: Request | VerifyRequest, o: VerifyOptions | undefined) => AgentContext | Promise<AgentContext> })[VERIFY_NOW];
  return fn === undefined ? verifier.verify(request, options) : fn(request, options);
}

/**
 * @internal For benchmarks and tests: how many tokens the verifier's verified-token cache holds (at
 * most its `cacheSize`; only verified tokens are ever stored). 0 for a verifier object without it.
 */
export function verifierCacheSize(verifier: Verifier): number {
  const fn = (verifier as { [CACHE_SIZE]?: () => number })[CACHE_SIZE];
  return fn === undefined ? 0 : fn();
}

/**
 * The verified-token cache's key: the token's last {@link CACHE_KEY_LENGTH} characters (the end of
 * its signature). Hashing a whole token costs ~1 µs per request (the header string is new on every
 * request, so its hash is never cached); hashing this tail costs a few ns. A hit is then only the
 * entry whose whole token is the exact same string, so two tokens with one tail cannot be confused:
 * the later one just replaces the earlier one's entry. Only verified tokens are stored, and a
 * signature's tail cannot be chosen without the issuer's key, so this does not let anyone evict
 * another user's entry either.
 */
function cacheKey(token: string): string {
  return token.length > CACHE_KEY_LENGTH ? token.slice(token.length - CACHE_KEY_LENGTH) : token;
}

/** `Bearer` (any case) alone or followed by a space, without allocating. */
function isBearer(auth: string): boolean {
  if (auth.length < 6 || (auth.length > 6 && auth.charCodeAt(6) !== 0x20)) return false;
  // b e a r e r, with the ASCII case bit forced on
  return (
    (auth.charCodeAt(0) | 0x20) === 0x62 &&
    (auth.charCodeAt(1) | 0x20) === 0x65 &&
    (auth.charCodeAt(2) | 0x20) === 0x61 &&
    (auth.charCodeAt(3) | 0x20) === 0x72 &&
    (auth.charCodeAt(4) | 0x20) === 0x65 &&
    (auth.charCodeAt(5) | 0x20) === 0x72
  );
}

async function verifySignature(params: AlgorithmIdentifier, key: CryptoKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  try {
    return await crypto.subtle.verify(params, key, signature as BufferSource, data as BufferSource);
  } catch {
    return false;
  }
}

/** Base64url JSON object, or undefined. */
function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(decoder.decode(fromBase64Url(segment)));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    return value as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function normalizeTyp(typ: string): string {
  const t = typ.toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}

function audienceMatches(aud: unknown, accepted: ReadonlySet<string>): boolean {
  if (typeof aud === 'string') return accepted.has(aud);
  if (!Array.isArray(aud)) return false;
  for (const a of aud) if (typeof a === 'string' && accepted.has(a)) return true;
  return false;
}

/** RFC 8693 §4.1 nested `act` claims, outermost (current actor) first; undefined when invalid or too deep. */
function parseActors(act: unknown, maxDepth: number): readonly Actor[] | undefined {
  if (act === undefined) return EMPTY_ACTORS;
  const chain: Actor[] = [];
  let current: unknown = act;
  while (current !== undefined) {
    if (chain.length >= maxDepth) return undefined;
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    const { act: next, ...rest } = current as Record<string, unknown>;
    const sub = rest.sub;
    if (typeof sub !== 'string' || sub === '' || sub.length > 1024 || hasControlChars(sub)) return undefined;
    const iss = rest.iss;
    if (iss !== undefined && typeof iss !== 'string') return undefined;
    chain.push(Object.freeze({ subject: sub, ...(iss !== undefined ? { issuer: iss } : {}), claims: Object.freeze(rest) }));
    current = next;
  }
  return Object.freeze(chain);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

function isHeaders(h: unknown): h is Headers {
  return typeof (h as Headers).get === 'function';
}

/** The single `Authorization` value, or undefined. Throws when the request carries several. */
function readAuthorization(request: Request | VerifyRequest, errors: InboundErrors): string | undefined {
  const headers = request.headers;
  let value: string | string[] | undefined;
  if (isHeaders(headers)) {
    value = headers.get('authorization') ?? undefined;
  } else {
    // Every spelling counts: { authorization, Authorization } is two headers, not one.
    for (const name in headers) {
      if (name.length === 13 && name.toLowerCase() === 'authorization') {
        const v = headers[name];
        if (v === undefined) continue;
        if (value !== undefined) throw errors.invalidRequest('The request carries more than one Authorization header');
        value = v;
      }
    }
  }
  if (Array.isArray(value)) {
    if (value.length > 1) throw errors.invalidRequest('The request carries more than one Authorization header');
    value = value[0];
  }
  const raw = (request as VerifyRequest).rawHeaders;
  if (raw !== undefined) {
    let count = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') count++;
    }
    if (count > 1) throw errors.invalidRequest('The request carries more than one Authorization header');
  }
  return value;
}

function headerValue(request: Request | VerifyRequest, name: string): string | undefined {
  const headers = request.headers;
  if (isHeaders(headers)) return headers.get(name) ?? undefined;
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function requestIdOf(request: Request | VerifyRequest): string {
  const id = headerValue(request, 'x-request-id');
  return id !== undefined && REQUEST_ID.test(id) ? id : newRequestId();
}

function requestHost(request: Request | VerifyRequest): string | undefined {
  let host = (request as VerifyRequest).host ?? headerValue(request, 'host');
  if (host === undefined && request.url) {
    try {
      host = new URL(request.url).host;
    } catch {
      host = undefined;
    }
  }
  return host?.toLowerCase().replace(/\.(?=:\d+$|$)/, '');
}

function stripPort(host: string): string {
  return host.replace(/:\d+$/, '');
}

/** Method and path (never the query) of a request, for audit events. */
function requestLine(request: Request | VerifyRequest): { method?: string; path?: string } {
  const out: { method?: string; path?: string } = {};
  if (request.method) out.method = request.method;
  if (request.url) {
    try {
      out.path = new URL(request.url, 'http://localhost').pathname;
    } catch {
      // no path
    }
  }
  return out;
}
