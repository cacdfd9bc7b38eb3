/**
 * Internal: RFC 8693 token exchange. Delegated tokens only narrow: asking for a scope the subject
 * token does not hold fails before any request, and an answer without `issued_token_type`, with
 * scopes beyond those asked, or a JWT for another audience than the one asked is refused. Issued
 * tokens are cached (see {@link TokenExchanger}), so that repeated calls for one user through one
 * delegation hop cost one exchange per token lifetime.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8693
 * @module
 */
import * as oauth from 'oauth4webapi';
import { actorSubjects } from '../audit/events.js';
import { type AgentContext, rawTokenOf } from '../context.js';
import { AgentIamError } from '../errors.js';
import { fromBase64Url } from '../lib/encoding.js';
import { splitScopes } from './accounts.js';
import { type Connection, resourceParam } from './connections.js';
import { checkedTokens, oauthError, recognizedTokenTypes, requestOptions, withRetry } from './http.js';
import { audit, type Runtime } from './runtime.js';
import { sha256HexSync } from '../lib/sha256.js';
import { ExpiringCache } from './token-cache.js';
import type { AccessTokenResult, TokenExchangeOptions } from './types.js';
import { nowMs } from '../lib/clock.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** The payload of a compact JWT, decoded without verification; undefined when the token is not one. */
function jwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || (parts[1] as string).length > 65536) return undefined;
  try {
    const payload: unknown = JSON.parse(new TextDecoder().decode(fromBase64Url(parts[1] as string)));
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function scopesOfPayload(payload: Record<string, unknown>): string[] {
  const s = payload.scope ?? payload.scp;
  if (typeof s === 'string') return s.split(' ').filter((x) => x !== '');
  if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string');
  return [];
}

/** `exp` of a JWT payload as epoch ms; undefined when absent or not a finite number. */
function expiryOf(payload: Record<string, unknown> | undefined | Readonly<Record<string, unknown>>): number | undefined {
  const exp = payload?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/** The scopes a JWT's payload holds (`scope` string or `scp` array/string); undefined when not a JWT. */
export function scopesOfJwt(token: string): string[] | undefined {
  const payload = jwtPayload(token);
  return payload === undefined ? undefined : scopesOfPayload(payload);
}

/** The caller's delegation chain and request id, for the audit event (the chain the new token extends). */
function chainOf(o: TokenExchangeOptions): { actorChain?: string[]; requestId?: string } {
  if (o.context === undefined) return {};
  const actorChain = actorSubjects(o.context.actorChain);
  return actorChain === undefined ? { requestId: o.context.requestId } : { actorChain, requestId: o.context.requestId };
}

function escalation(scopes: string[], why: string): AgentIamError {
  return new AgentIamError('SCOPE_ESCALATION', `Token exchange refused: ${why}`, { scopes });
}

/** What one exchange sends, resolved from the options and the connection. */
interface ExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  actorToken: string | undefined;
  actorTokenType: string;
  audience: string | undefined;
  resource: string | undefined;
  /** Deduplicated, in the caller's order (the order sent). */
  scopes: string[];
}

/**
 * RFC 8693 token exchange, with an optional bounded cache of the issued tokens.
 *
 * A cache entry is keyed by the SHA-256 of the subject token and of the actor token (never the
 * tokens themselves), the connection, audience, resource, sorted scope set and token types. It is
 * served until `refreshSkewSeconds` before the issued token expires (capped at half its lifetime), and never
 * after the subject token's (or a JWT actor token's) own `exp`. A subject token without a readable
 * `exp`, or an answer without expiry, is not cached. Concurrent identical exchanges share one request.
 * The scope check runs on every call, before the cache. A cache hit sends nothing and emits no
 * `token.exchange` audit event: that event records an exchange at the authorization server.
 */
export class TokenExchanger {
  readonly #cache: ExpiringCache<AccessTokenResult> | undefined;

  /** `maxEntries` 0 turns the cache (and single flight) off: every call is an exchange. */
  constructor(maxEntries: number) {
    this.#cache = maxEntries > 0 ? new ExpiringCache(maxEntries) : undefined;
  }

  /**
   * Forget the cached token these options obtained, if the entry still holds exactly `accessToken`
   * (a tool rejected it). The key holds the subject token's hash, so one user's rejection can only
   * ever drop that user's (that subject token's) entry.
   */
  drop(c: Connection, o: TokenExchangeOptions, accessToken: string): boolean {
    const cache = this.#cache;
    if (cache === undefined) return false;
    const subjectToken = o.subjectToken ?? (o.context ? rawTokenOf(o.context) : undefined);
    if (subjectToken === undefined || subjectToken === '' || !Array.isArray(o.scopes)) return false;
    const key = cacheKey(c, subjectToken, {
      subjectTokenType: o.subjectTokenType ?? ACCESS_TOKEN_TYPE,
      actorToken: o.actorToken,
      actorTokenType: o.actorTokenType ?? ACCESS_TOKEN_TYPE,
      audience: o.audience ?? c.audience,
      resource: resourceParam(c, o.resource),
      scopes: [...new Set(o.scopes)],
    });
    return cache.deleteIf(key, (v) => v.accessToken === accessToken);
  }

  async exchange(rt: Runtime, c: Connection, o: TokenExchangeOptions): Promise<AccessTokenResult> {
    const fromContext = o.subjectToken === undefined && o.context !== undefined;
    const subjectToken = o.subjectToken ?? (o.context ? rawTokenOf(o.context) : undefined);
    if (subjectToken === undefined || subjectToken === '') {
      throw new AgentIamError('TOKEN_MISSING', 'Token exchange needs a subject token: pass subjectToken or a context verified from a bearer token');
    }
    const payload = fromContext ? undefined : jwtPayload(subjectToken);
    const held = fromContext ? (o.context as AgentContext).scopes : payload === undefined ? undefined : scopesOfPayload(payload);
    const asked = [...new Set(o.scopes)];
    const heldSet = held === undefined ? undefined : new Set(held);
    const beyond = heldSet === undefined ? asked : asked.filter((s) => !heldSet.has(s));
    if (heldSet === undefined || beyond.length > 0) {
      // A refusal is a decision too: record it, although nothing was sent.
      audit(rt, { type: 'token.exchange', connection: c.id, userId: o.context?.userId, decision: 'deny', code: 'SCOPE_ESCALATION', ...chainOf(o) });
      throw heldSet === undefined
        ? escalation(asked, 'the subject token is opaque, so its scopes cannot be checked')
        : escalation(beyond, 'scopes asked that the subject token does not hold');
    }
    const request: ExchangeRequest = {
      subjectToken,
      subjectTokenType: o.subjectTokenType ?? ACCESS_TOKEN_TYPE,
      actorToken: o.actorToken,
      actorTokenType: o.actorTokenType ?? ACCESS_TOKEN_TYPE,
      audience: o.audience ?? c.audience,
      resource: resourceParam(c, o.resource),
      scopes: asked,
    };
    const cache = this.#cache;
    // The verified context's claims hold the subject token's exp; a token passed as is gets decoded.
    const subjectExp = fromContext ? expiryOf((o.context as AgentContext).claims) : expiryOf(payload);
    if (cache === undefined || subjectExp === undefined || subjectExp <= nowMs()) return exchangeAtServer(rt, c, o, request);
    const key = cacheKey(c, subjectToken, request);
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    return cache.load(key, async () => {
      const result = await exchangeAtServer(rt, c, o, request);
      Object.freeze(result.scopes);
      Object.freeze(result); // shared by every caller of this flight and every later hit
      const expiresAt = result.expiresAt ?? expiryOf(jwtPayload(result.accessToken));
      if (expiresAt === undefined) return { value: result, until: undefined };
      const lifetime = Math.max(0, expiresAt - nowMs());
      let until = Math.min(expiresAt - Math.min(rt.refreshSkewMs, lifetime / 2), subjectExp);
      const actorExp = request.actorToken === undefined ? undefined : expiryOf(jwtPayload(request.actorToken));
      if (actorExp !== undefined) until = Math.min(until, actorExp);
      return { value: result, until };
    });
  }
}

/** The cache key of one exchange: hashes of the tokens, never the tokens. */
function cacheKey(c: Connection, subjectToken: string, r: Omit<ExchangeRequest, 'subjectToken'>): string {
  return JSON.stringify([
    c.id,
    sha256HexSync(subjectToken),
    r.subjectTokenType,
    r.actorToken === undefined ? null : sha256HexSync(r.actorToken),
    r.actorTokenType,
    r.audience ?? null,
    r.resource ?? null,
    [...r.scopes].sort(),
    ACCESS_TOKEN_TYPE,
  ]);
}

/** An audience compared as a URL when it is one (`https://api.example.com` = `https://api.example.com/`), else as sent. */
function sameTarget(u: string): string {
  try {
    return new URL(u).href;
  } catch {
    return u;
  }
}

/**
 * False when the issued token is a JWT whose `aud` names none of the audience and resource asked
 * for: a token for another service than the one it is about to be sent to (a mixed-up or hostile
 * server), which that service could replay where it is valid. Extra audiences beside the one asked
 * are accepted (Auth0 adds its userinfo URL); an opaque token or a JWT without `aud` cannot be
 * checked and passes. Nothing asked: nothing to compare.
 */
function forAudienceAsked(token: string, r: ExchangeRequest): boolean {
  const asked = [r.audience, r.resource].filter((t): t is string => t !== undefined).map(sameTarget);
  if (asked.length === 0) return true;
  const payload = jwtPayload(token);
  if (payload === undefined || payload.aud === undefined) return true;
  const aud = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud.filter((a): a is string => typeof a === 'string') : [];
  return aud.some((a) => asked.includes(sameTarget(a)));
}

/** One exchange at the authorization server, audited. */
async function exchangeAtServer(rt: Runtime, c: Connection, o: TokenExchangeOptions, r: ExchangeRequest): Promise<AccessTokenResult> {
  const started = nowMs();
  try {
    const tokens = await rt.withClient(c, (server, client) =>
      withRetry(rt.http, 'token exchange', async (signal) => {
        const params = new URLSearchParams(c.tokenParams);
        params.set('subject_token', r.subjectToken);
        params.set('subject_token_type', r.subjectTokenType);
        if (r.actorToken !== undefined) {
          params.set('actor_token', r.actorToken);
          params.set('actor_token_type', r.actorTokenType);
        }
        if (r.audience !== undefined) params.set('audience', r.audience);
        if (r.resource !== undefined) params.set('resource', r.resource);
        if (r.scopes.length > 0) params.set('scope', r.scopes.join(c.scopeSeparator));
        params.set('requested_token_type', ACCESS_TOKEN_TYPE);
        const res = await oauth.genericTokenEndpointRequest(server.as, client.client, client.auth, TOKEN_EXCHANGE_GRANT, params, requestOptions(rt.http, signal, server.insecure));
        const types = recognizedTokenTypes(['n_a', ...(c.tokenTypes ?? [])]);
        return checkedTokens(await oauth.processGenericTokenEndpointResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {}), 'token exchange');
      }),
    );
    if (typeof tokens.issued_token_type !== 'string' || tokens.issued_token_type === '') {
      throw oauthError('token exchange', 'invalid_response', 'the answer has no issued_token_type');
    }
    const granted = splitScopes(tokens.scope, c.scopeSeparator) ?? r.scopes;
    const askedSet = new Set(r.scopes);
    const extra = granted.filter((s) => !askedSet.has(s));
    if (extra.length > 0) throw escalation(extra, 'the server granted scopes beyond those asked');
    if (!forAudienceAsked(tokens.access_token, r)) throw oauthError('token exchange', 'invalid_response', 'the issued token is for another audience than the one asked');
    const result: AccessTokenResult = { accessToken: tokens.access_token, tokenType: tokens.token_type, scopes: granted };
    if (typeof tokens.expires_in === 'number') result.expiresAt = nowMs() + tokens.expires_in * 1000;
    audit(rt, { type: 'token.exchange', connection: c.id, userId: o.context?.userId, decision: 'allow', durationMs: nowMs() - started, ...chainOf(o) });
    return result;
  } catch (e) {
    audit(rt, { type: 'token.exchange', connection: c.id, userId: o.context?.userId, decision: 'error', code: (e as { code?: string }).code ?? 'OAUTH_ERROR', durationMs: nowMs() - started, ...chainOf(o) });
    throw e;
  }
}
