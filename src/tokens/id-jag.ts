/**
 * Internal: enterprise-managed authorization (MCP's extension; the IETF Identity Assertion JWT
 * Authorization Grant, "ID-JAG"). Two grants, both by oauth4webapi's generic token endpoint request:
 *
 * 1. at the enterprise IdP, RFC 8693 token exchange of the user's ID token for an ID-JAG
 *    (`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`, `audience` = the resource's
 *    authorization server issuer, `resource` = the resource);
 * 2. at the resource's authorization server, the RFC 7523 `jwt-bearer` grant with the ID-JAG as
 *    `assertion`, authenticated as the connection's client.
 *
 * The ID-JAG is a bearer credential for step 2 only: it is never cached, logged or returned. The
 * access token of step 2 is cached per connection, IdP, ID token (its SHA-256) and scope set, never
 * past the ID token's own `exp`.
 *
 * @see https://datatracker.ietf.org/doc/draft-ietf-oauth-identity-assertion-authz-grant/
 * @module
 */
import * as oauth from 'oauth4webapi';
import { rawTokenOf } from '../context.js';
import { AgentIamError } from '../errors.js';
import { fromBase64Url } from '../lib/encoding.js';
import { sha256HexSync } from '../lib/sha256.js';
import { splitScopes } from './accounts.js';
import { type Connection, resourceParam } from './connections.js';
import { checkedTokens, oauthError, recognizedTokenTypes, requestOptions, withRetry } from './http.js';
import { audit, type Runtime } from './runtime.js';
import { ExpiringCache } from './token-cache.js';
import { TOKEN_EXCHANGE_GRANT } from './token-exchange.js';
import type { AccessTokenResult, EnterpriseTokenRequest } from './types.js';
import { nowMs } from '../lib/clock.js';

export const ID_JAG_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
export const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Options of `TokenManager.enterpriseToken`. */
export type EnterpriseTokenOptions = EnterpriseTokenRequest;

function cacheKey(c: Connection, idp: Connection, idToken: string, scopes: string[]): string {
  return JSON.stringify([c.id, idp.id, sha256HexSync(idToken), [...scopes].sort()]);
}

function expiryOfJwt(token: string): number | undefined {
  const part = token.split('.')[1];
  if (part === undefined || part.length > 65536) return undefined;
  try {
    const exp: unknown = JSON.parse(new TextDecoder().decode(fromBase64Url(part))).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class EnterpriseTokens {
  readonly #cache: ExpiringCache<AccessTokenResult>;

  constructor(size: number) {
    this.#cache = new ExpiringCache(size);
  }

  async get(rt: Runtime, c: Connection, idp: Connection, o: EnterpriseTokenOptions): Promise<AccessTokenResult> {
    const idToken = o.idToken ?? (o.context !== undefined ? rawTokenOf(o.context) : undefined);
    if (idToken === undefined || idToken === '') {
      throw new AgentIamError('TOKEN_MISSING', 'Enterprise authorization needs the user\'s ID token: pass idToken or a context verified from it');
    }
    const scopes = [...new Set(o.scopes ?? c.scopes ?? [])];
    const idExp = expiryOfJwt(idToken);
    const key = cacheKey(c, idp, idToken, scopes);
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit;
    return this.#cache.load(key, async () => {
      const result = Object.freeze(await this.#issue(rt, c, idp, idToken, scopes, o.context?.userId));
      if (result.expiresAt === undefined || idExp === undefined) return { value: result, until: undefined };
      const lifetime = Math.max(0, result.expiresAt - nowMs());
      return { value: result, until: Math.min(result.expiresAt - Math.min(rt.refreshSkewMs, lifetime / 2), idExp) };
    });
  }

  /** Forget the cached token for these options if it is still exactly `accessToken` (a tool rejected it). */
  drop(c: Connection, idp: Connection, o: EnterpriseTokenOptions, accessToken: string): boolean {
    const idToken = o.idToken ?? (o.context !== undefined ? rawTokenOf(o.context) : undefined);
    if (idToken === undefined || idToken === '') return false;
    return this.#cache.deleteIf(cacheKey(c, idp, idToken, [...new Set(o.scopes ?? c.scopes ?? [])]), (v) => v.accessToken === accessToken);
  }

  async #issue(rt: Runtime, c: Connection, idp: Connection, idToken: string, scopes: string[], userId: string | undefined): Promise<AccessTokenResult> {
    const started = nowMs();
    try {
      const result = await rt.withClient(c, async (server, client) => {
        const resource = resourceParam(c);
        // 1. The ID-JAG, from the IdP, for this authorization server (its issuer is the audience).
        const jag = await rt.withClient(idp, (idpServer, idpClient) =>
          withRetry(rt.http, 'enterprise token exchange', async (signal) => {
            const params = new URLSearchParams(idp.tokenParams);
            params.set('requested_token_type', ID_JAG_TOKEN_TYPE);
            params.set('subject_token', idToken);
            params.set('subject_token_type', ID_TOKEN_TYPE);
            params.set('audience', server.as.issuer);
            if (resource !== undefined) params.set('resource', resource);
            if (scopes.length > 0) params.set('scope', scopes.join(c.scopeSeparator));
            const res = await oauth.genericTokenEndpointRequest(idpServer.as, idpClient.client, idpClient.auth, TOKEN_EXCHANGE_GRANT, params, requestOptions(rt.http, signal, idpServer.insecure));
            return checkedTokens(await oauth.processGenericTokenEndpointResponse(idpServer.as, idpClient.client, res, { recognizedTokenTypes: recognizedTokenTypes(['n_a', ...(idp.tokenTypes ?? [])]) ?? {} }), 'enterprise token exchange');
          }),
        );
        if (jag.issued_token_type !== ID_JAG_TOKEN_TYPE) {
          throw oauthError('enterprise token exchange', 'invalid_response', 'the IdP did not issue an ID-JAG (issued_token_type)');
        }
        // 2. The access token, from the resource's authorization server, for the ID-JAG.
        const tokens = await withRetry(rt.http, 'jwt-bearer grant', async (signal) => {
          const params = new URLSearchParams(c.tokenParams);
          params.set('assertion', jag.access_token);
          if (scopes.length > 0) params.set('scope', scopes.join(c.scopeSeparator));
          if (resource !== undefined) params.set('resource', resource);
          const res = await oauth.genericTokenEndpointRequest(server.as, client.client, client.auth, JWT_BEARER_GRANT, params, requestOptions(rt.http, signal, server.insecure));
          const types = recognizedTokenTypes(c.tokenTypes);
          return checkedTokens(await oauth.processGenericTokenEndpointResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {}), 'jwt-bearer grant');
        });
        const out: AccessTokenResult = { accessToken: tokens.access_token, tokenType: tokens.token_type, scopes: splitScopes(tokens.scope, c.scopeSeparator) ?? scopes };
        if (typeof tokens.expires_in === 'number') out.expiresAt = nowMs() + tokens.expires_in * 1000;
        return out;
      });
      audit(rt, { type: 'token.exchange', connection: c.id, userId, decision: 'allow', durationMs: nowMs() - started });
      return result;
    } catch (e) {
      audit(rt, { type: 'token.exchange', connection: c.id, userId, decision: 'error', code: (e as { code?: string }).code ?? 'OAUTH_ERROR', durationMs: nowMs() - started });
      throw e;
    }
  }
}
