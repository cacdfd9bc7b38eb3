/**
 * The inbound verifier: turns a request's bearer JWT into a frozen {@link AgentContext}.
 *
 * @module
 */
import { z } from 'zod';
import { actorSubjects, emitAudit, type AuditSink } from '../audit/events.js';
import { anonymousContext, attachRawToken, type Actor, type AgentContext } from '../context.js';
import { configError, isAgentIamError } from '../errors.js';
import { fromBase64Url, hasControlChars } from '../lib/encoding.js';
import { LruCache } from '../lib/lru.js';
import { parseOptions } from '../lib/options.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { InboundErrors } from './challenge.js';
import { JwksCache } from './jwks.js';
import { missingScopes, scopesOf } from './scopes.js';
import { isoNow, nowMs } from '../lib/clock.js';
import { JWS_SHAPE, encoder, cacheKey, isBearer, verifySignature, decodeSegment, normalizeTyp, audienceMatches, parseActors, deepFreeze, readAuthorization, requestIdOf, requestHost, stripPort, requestLine } from './token-parts.js';
import { SUPPORTED_ALGORITHMS, type VerifierOptions, type VerifyRequest, type VerifyOptions, type Verifier } from './verifier-types.js';

export { SUPPORTED_ALGORITHMS } from './verifier-types.js';
export type { ProviderOptions, VerifierOptions, VerifyRequest, VerifyOptions, Verifier } from './verifier-types.js';

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
const EMBEDDED_KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;

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
