/**
 * Internal: RFC 8693 token exchange. Delegated tokens only narrow: asking for a scope the subject
 * token does not hold fails before any request, and an answer without `issued_token_type` or with
 * scopes beyond those asked is refused.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8693
 * @module
 */
import * as oauth from 'oauth4webapi';
import { actorSubjects } from '../audit/events.js';
import { rawTokenOf } from '../context.js';
import { AgentIamError } from '../errors.js';
import { fromBase64Url } from '../lib/encoding.js';
import { splitScopes } from './accounts.js';
import { type Connection, resourceParam } from './connections.js';
import { oauthError, recognizedTokenTypes, requestOptions, withRetry } from './http.js';
import { audit, type Runtime } from './runtime.js';
import type { AccessTokenResult, TokenExchangeOptions } from './types.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** The scopes a JWT's payload holds (`scope` string or `scp` array/string); undefined when not a JWT. */
export function scopesOfJwt(token: string): string[] | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || (parts[1] as string).length > 65536) return undefined;
  try {
    const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(parts[1] as string))) as Record<string, unknown>;
    const s = payload.scope ?? payload.scp;
    if (typeof s === 'string') return s.split(' ').filter((x) => x !== '');
    if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string');
    return [];
  } catch {
    return undefined;
  }
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

export async function exchangeToken(rt: Runtime, c: Connection, o: TokenExchangeOptions): Promise<AccessTokenResult> {
  const subjectToken = o.subjectToken ?? (o.context ? rawTokenOf(o.context) : undefined);
  if (subjectToken === undefined || subjectToken === '') {
    throw new AgentIamError('TOKEN_MISSING', 'Token exchange needs a subject token: pass subjectToken or a context verified from a bearer token');
  }
  const held = o.context !== undefined && o.subjectToken === undefined ? [...o.context.scopes] : scopesOfJwt(subjectToken);
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

  const started = Date.now();
  try {
    const tokens = await rt.withClient(c, (server, client) =>
      withRetry(rt.http, 'token exchange', async (signal) => {
        const params = new URLSearchParams(c.tokenParams);
        params.set('subject_token', subjectToken);
        params.set('subject_token_type', o.subjectTokenType ?? ACCESS_TOKEN_TYPE);
        if (o.actorToken !== undefined) {
          params.set('actor_token', o.actorToken);
          params.set('actor_token_type', o.actorTokenType ?? ACCESS_TOKEN_TYPE);
        }
        const audience = o.audience ?? c.audience;
        if (audience !== undefined) params.set('audience', audience);
        const resource = resourceParam(c, o.resource);
        if (resource !== undefined) params.set('resource', resource);
        if (asked.length > 0) params.set('scope', asked.join(c.scopeSeparator));
        params.set('requested_token_type', ACCESS_TOKEN_TYPE);
        const res = await oauth.genericTokenEndpointRequest(server.as, client.client, client.auth, TOKEN_EXCHANGE_GRANT, params, requestOptions(rt.http, signal, server.insecure));
        const types = recognizedTokenTypes(['n_a', ...(c.tokenTypes ?? [])]);
        return oauth.processGenericTokenEndpointResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {});
      }),
    );
    if (typeof tokens.issued_token_type !== 'string' || tokens.issued_token_type === '') {
      throw oauthError('token exchange', 'invalid_response', 'the answer has no issued_token_type');
    }
    const granted = splitScopes(tokens.scope, c.scopeSeparator) ?? asked;
    const askedSet = new Set(asked);
    const extra = granted.filter((s) => !askedSet.has(s));
    if (extra.length > 0) throw escalation(extra, 'the server granted scopes beyond those asked');
    const result: AccessTokenResult = { accessToken: tokens.access_token, tokenType: tokens.token_type, scopes: granted };
    if (typeof tokens.expires_in === 'number') result.expiresAt = Date.now() + tokens.expires_in * 1000;
    audit(rt, { type: 'token.exchange', connection: c.id, userId: o.context?.userId, decision: 'allow', durationMs: Date.now() - started, ...chainOf(o) });
    return result;
  } catch (e) {
    audit(rt, { type: 'token.exchange', connection: c.id, userId: o.context?.userId, decision: 'error', code: (e as { code?: string }).code ?? 'OAUTH_ERROR', durationMs: Date.now() - started, ...chainOf(o) });
    throw e;
  }
}
