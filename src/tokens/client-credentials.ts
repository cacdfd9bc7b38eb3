/**
 * Internal: the client-credentials grant (service-account tokens), cached per connection, scope
 * set and resource/audience until shortly before expiry, with one request in flight per key.
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import { splitScopes } from './accounts.js';
import { type Connection, resourceParam } from './connections.js';
import { checkedTokens, recognizedTokenTypes, requestOptions, withRetry } from './http.js';
import { audit, type Runtime } from './runtime.js';
import { ExpiringCache } from './token-cache.js';
import type { AccessTokenResult, ClientCredentialsOptions } from './types.js';
import { nowMs } from '../lib/clock.js';

export class ClientCredentialsCache {
  readonly #cache: ExpiringCache<AccessTokenResult>;

  constructor(size: number) {
    this.#cache = new ExpiringCache(size);
  }

  /** Forget the cached token for these options if it is still exactly `accessToken` (a tool rejected it). */
  drop(c: Connection, o: ClientCredentialsOptions, accessToken: string): boolean {
    const scopes = [...new Set(o.scopes ?? c.scopes ?? [])].sort();
    const key = JSON.stringify([c.id, scopes, resourceParam(c, o.resource) ?? null, o.audience ?? c.audience ?? null]);
    return this.#cache.deleteIf(key, (v) => v.accessToken === accessToken);
  }

  async get(rt: Runtime, c: Connection, o: ClientCredentialsOptions): Promise<AccessTokenResult> {
    const scopes = [...new Set(o.scopes ?? c.scopes ?? [])].sort();
    const resource = resourceParam(c, o.resource);
    const audience = o.audience ?? c.audience;
    const key = JSON.stringify([c.id, scopes, resource ?? null, audience ?? null]);
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit;
    return this.#cache.load(key, async () => {
      const started = nowMs();
      try {
        const tokens = await rt.withClient(c, (server, client) =>
          withRetry(rt.http, 'client credentials', async (signal) => {
            const params: Record<string, string> = { ...c.tokenParams };
            if (scopes.length > 0) params.scope = scopes.join(c.scopeSeparator);
            if (resource !== undefined) params.resource = resource;
            if (audience !== undefined) params.audience = audience;
            const res = await oauth.clientCredentialsGrantRequest(server.as, client.client, client.auth, params, requestOptions(rt.http, signal, server.insecure));
            const types = recognizedTokenTypes(c.tokenTypes);
            return checkedTokens(await oauth.processClientCredentialsResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {}), 'client credentials');
          }),
        );
        const now = nowMs();
        const result: AccessTokenResult = {
          accessToken: tokens.access_token,
          tokenType: tokens.token_type,
          scopes: splitScopes(tokens.scope, c.scopeSeparator) ?? scopes,
        };
        let until: number | undefined;
        if (typeof tokens.expires_in === 'number') {
          result.expiresAt = now + tokens.expires_in * 1000;
          until = result.expiresAt - Math.min(rt.refreshSkewMs, (tokens.expires_in * 1000) / 2);
        }
        audit(rt, { type: 'token.issue', connection: c.id, decision: 'allow', durationMs: now - started });
        return { value: Object.freeze(result), until };
      } catch (e) {
        audit(rt, { type: 'token.issue', connection: c.id, decision: 'error', code: (e as { code?: string }).code ?? 'OAUTH_ERROR', durationMs: nowMs() - started });
        throw e;
      }
    });
  }
}
