/**
 * Internal: the authorization-code flow with PKCE (S256) and single-use, expiring state.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 * @see https://www.rfc-editor.org/rfc/rfc9207 (`iss` in the authorization response)
 * @module
 */
import * as oauth from 'oauth4webapi';
import { AgentIamError, stateMismatch } from '../errors.js';
import { storeKey } from '../stores/store.js';
import { type AccountRecord, type OwnerType, splitScopes } from './accounts.js';
import { type Connection, resourceParam } from './connections.js';
import { checkedTokens, oauthError, recognizedTokenTypes, requestOptions, safeOAuthCode, toSafeError, withRetry } from './http.js';
import type { Runtime, TokenResponse } from './runtime.js';
import type { StartAuthorizationResult } from './types.js';
import { nowMs } from '../lib/clock.js';

/** A pending authorization, stored (encrypted) under its state until the callback or expiry. */
interface PendingState {
  v: 1;
  connection: string;
  ownerType: OwnerType;
  ownerId: string;
  userId: string;
  verifier: string;
  scopes: string[];
  redirectUri: string;
  issuer: string;
  clientId: string;
  expiresAt: number;
}

const RESERVED = new Set(['client_id', 'redirect_uri', 'response_type', 'code_challenge', 'code_challenge_method', 'state', 'scope', 'resource']);

function stateKey(state: string): string {
  return storeKey('state', state);
}

function mismatch(why: string): AgentIamError {
  return stateMismatch(`Authorization callback refused: ${why}`);
}

/** `a` then the members of `b` not in it, in order. */
/**
 * `offline_access` as the MCP authorization spec (SEP-2207) asks: for a resource connection (an MCP
 * server) it is added to the other scopes asked for when the authorization server lists it in
 * `scopes_supported` (an agent wants refresh tokens) and never sent when the server does not list
 * it, unless the connection's own `scopes` name it (configured scopes are never dropped).
 */
function offlineAccess(wanted: string[], c: Connection, as: oauth.AuthorizationServer): string[] {
  if (c.resource === undefined || c.issuer !== undefined || c.tokenEndpoint !== undefined) return wanted;
  const listed = Array.isArray(as.scopes_supported) && as.scopes_supported.includes('offline_access');
  // Only beside other scopes: with nothing else known the scope parameter is omitted (the server's
  // default), and a lone offline_access is refused by servers that drop it without openid.
  if (listed) return wanted.length === 0 || wanted.includes('offline_access') ? wanted : [...wanted, 'offline_access'];
  if (c.scopes?.includes('offline_access') === true) return wanted;
  return wanted.filter((s) => s !== 'offline_access');
}

export function unionScopes(a: readonly string[], b: readonly string[]): string[] {
  const out = [...new Set(a)];
  for (const x of b) if (!out.includes(x)) out.push(x);
  return out;
}

export async function startAuthorization(
  rt: Runtime,
  c: Connection,
  owner: { userId: string; orgId?: string },
  scopes: string[] | undefined,
): Promise<StartAuthorizationResult> {
  if (c.kind !== 'oauth2' || c.redirectUri === undefined) {
    throw new AgentIamError('CONFIG_INVALID', `connection ${c.id} has no redirectUri: it cannot run the authorization-code flow`, { field: 'redirectUri' });
  }
  const redirectUri = c.redirectUri;
  return rt.withClient(c, async (server, client) => {
    const endpoint = server.as.authorization_endpoint;
    if (endpoint === undefined) throw new AgentIamError('CONFIG_INVALID', `connection ${c.id}: the server has no authorization endpoint`, { field: 'authorizationEndpoint' });
    // PKCE S256 or nothing: a server that lists other methods only is refused, and so is one that
    // lists none when it was found from an MCP resource (the MCP authorization spec's MUST).
    const methods = server.as.code_challenge_methods_supported;
    const discoveredFromResource = c.resource !== undefined && c.issuer === undefined && c.tokenEndpoint === undefined;
    if (Array.isArray(methods) ? !methods.includes('S256') : discoveredFromResource) {
      throw oauthError('authorization', 'invalid_request', 'the authorization server does not advertise PKCE S256 (code_challenge_methods_supported)');
    }
    const verifier = oauth.generateRandomCodeVerifier();
    const challenge = await oauth.calculatePKCECodeChallenge(verifier);
    const state = oauth.generateRandomState();
    // What the caller (or a step-up challenge) asks for, else what the protected resource lists;
    // the connection's configured scopes are always added, never dropped. None: no scope parameter.
    let wanted = unionScopes(scopes ?? server.resourceScopes ?? [], c.scopes ?? []);
    wanted = offlineAccess(wanted, c, server.as);
    const url = new URL(endpoint);
    for (const [k, v] of Object.entries(c.authorizationParams ?? {})) if (!RESERVED.has(k)) url.searchParams.set(k, v);
    url.searchParams.set('client_id', client.client.client_id);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('code_challenge', challenge);
    url.searchParams.set('code_challenge_method', 'S256');
    url.searchParams.set('state', state);
    if (wanted.length > 0) url.searchParams.set('scope', wanted.join(c.scopeSeparator));
    const resource = resourceParam(c);
    if (resource !== undefined) url.searchParams.set('resource', resource);
    const pending: PendingState = {
      v: 1,
      connection: c.id,
      ownerType: owner.orgId !== undefined ? 'org' : 'user',
      ownerId: owner.orgId ?? owner.userId,
      userId: owner.userId,
      verifier,
      scopes: wanted,
      redirectUri,
      issuer: server.as.issuer,
      clientId: client.client.client_id,
      expiresAt: nowMs() + rt.stateTtlMs,
    };
    // 256 random bits never collide in practice; set-if-absent makes that a guarantee.
    if (!(await rt.store.setIfAbsent(stateKey(state), pending, rt.stateTtlMs))) {
      throw new AgentIamError('STORE_UNAVAILABLE', 'Could not store the authorization state', { reason: 'conflict' });
    }
    return { url: url.href, state };
  });
}

/** Result of a completed authorization: the new account record and who started it. */
export interface CompletedAuthorization {
  record: Omit<AccountRecord, 'generation' | 'createdAt'>;
  userId: string;
}

export async function completeAuthorization(rt: Runtime, callback: string | URL, expectedUserId?: string): Promise<CompletedAuthorization> {
  let url: URL;
  try {
    url = callback instanceof URL ? callback : new URL(callback);
  } catch {
    throw mismatch('not a valid URL');
  }
  const params = new URLSearchParams(url.search);
  const states = params.getAll('state');
  if (states.length !== 1 || states[0] === '') throw mismatch('no state');
  const state = states[0] as string;
  if (state.length > 512) throw mismatch('unknown state');
  const key = stateKey(state);
  // Single use across processes: read and delete in one step, before anything else happens, whatever
  // the outcome. Of two concurrent callbacks with one state, exactly one gets it.
  const pending = await rt.store.consume<PendingState>(key);
  if (pending === undefined || pending === null || pending.v !== 1) throw mismatch('unknown, used or expired state');
  if (pending.expiresAt <= nowMs()) throw mismatch('expired state');
  // Session binding against consent phishing: only the user who started the flow may finish it.
  // The state is already spent, so a phished link is useless to the attacker and to the victim.
  if (expectedUserId !== undefined && pending.userId !== expectedUserId) {
    throw stateMismatch('Authorization callback refused: the flow was started by another user', 403);
  }
  const expectedRedirect = new URL(pending.redirectUri);
  if (url.origin !== expectedRedirect.origin || url.pathname !== expectedRedirect.pathname) throw mismatch('callback URL does not match the redirect URI');
  const c = rt.connection(pending.connection);

  const error = params.get('error');
  if (error !== null) {
    throw oauthError('authorization', safeOAuthCode(error), 'the authorization server refused the request');
  }
  const codes = params.getAll('code');
  if (codes.length !== 1 || codes[0] === '') {
    throw new AgentIamError('OAUTH_ERROR', 'Authorization callback refused: it carries no authorization code', { oauthError: 'invalid_request' });
  }

  const tokens = await rt.withClient(c, async (server, client) => {
    if (server.as.issuer !== pending.issuer || client.client.client_id !== pending.clientId) throw mismatch('the state belongs to another server or client');
    let validated: URLSearchParams;
    try {
      validated = oauth.validateAuthResponse(server.as, client.client, params, state);
    } catch (e) {
      throw toSafeError(e, 'authorization callback');
    }
    const resource = resourceParam(c);
    const extra: Record<string, string> = { ...c.tokenParams };
    if (resource !== undefined) extra.resource = resource;
    return withRetry(rt.http, 'authorization code', async (signal): Promise<TokenResponse> => {
      const res = await oauth.authorizationCodeGrantRequest(server.as, client.client, client.auth, validated, pending.redirectUri, pending.verifier, {
        ...requestOptions(rt.http, signal, server.insecure),
        additionalParameters: extra,
      });
      const types = recognizedTokenTypes(c.tokenTypes);
      return checkedTokens(await oauth.processAuthorizationCodeResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {}), 'authorization code');
    });
  }, false);

  const now = nowMs();
  const record: CompletedAuthorization['record'] = {
    v: 1,
    connection: c.id,
    ownerType: pending.ownerType,
    ownerId: pending.ownerId,
    kind: 'oauth2',
    status: 'active',
    scopes: splitScopes(tokens.scope, c.scopeSeparator) ?? pending.scopes,
    accessToken: tokens.access_token,
    tokenType: tokens.token_type,
    issuer: pending.issuer,
    updatedAt: now,
  };
  if (tokens.refresh_token !== undefined) record.refreshToken = tokens.refresh_token;
  if (typeof tokens.expires_in === 'number') record.expiresAt = now + tokens.expires_in * 1000;
  return { record, userId: pending.userId };
}
