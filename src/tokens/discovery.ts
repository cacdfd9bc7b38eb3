/**
 * Internal: authorization server metadata — explicit endpoints, RFC 8414 / OpenID discovery by
 * issuer, or RFC 9728 protected-resource metadata first. Every endpoint learned must be https
 * (http only on loopback) and the metadata's `issuer` must equal the one asked for.
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import { requireSecureUrl } from '../lib/secure-url.js';
import type { Connection } from './connections.js';
import { type HttpSettings, isTransient, requestOptions, toSafeError, withRetry } from './http.js';

/** Metadata plus whether plain http (loopback only) must be allowed for it. */
export interface ServerInfo {
  as: oauth.AuthorizationServer;
  insecure: boolean;
}

const ENDPOINT_FIELDS = [
  'authorization_endpoint',
  'token_endpoint',
  'revocation_endpoint',
  'registration_endpoint',
  'introspection_endpoint',
  'userinfo_endpoint',
  'jwks_uri',
  'pushed_authorization_request_endpoint',
] as const;

/** Check every endpoint in metadata (https, loopback http) and say whether http must be allowed. */
export function checkEndpoints(as: oauth.AuthorizationServer, where: string): ServerInfo {
  let insecure = new URL(as.issuer).protocol === 'http:';
  for (const f of ENDPOINT_FIELDS) {
    const v = as[f];
    if (v === undefined) continue;
    if (typeof v !== 'string') requireSecureUrl('', `${where}.${f}`, 'OAUTH_ERROR');
    const u = requireSecureUrl(v as string, `${where}.${f}`, 'OAUTH_ERROR');
    if (u.protocol === 'http:') insecure = true;
  }
  requireSecureUrl(as.issuer, `${where}.issuer`, 'OAUTH_ERROR');
  return { as, insecure };
}

/** Endpoints given explicitly in the connection. */
export function explicitServer(c: Connection): ServerInfo {
  const issuer = c.issuer ?? new URL(c.tokenEndpoint as string).origin;
  const as: { -readonly [K in keyof oauth.AuthorizationServer]: oauth.AuthorizationServer[K] } = { issuer };
  if (c.authorizationEndpoint !== undefined) as.authorization_endpoint = c.authorizationEndpoint;
  if (c.tokenEndpoint !== undefined) as.token_endpoint = c.tokenEndpoint;
  if (c.revocationEndpoint !== undefined) as.revocation_endpoint = c.revocationEndpoint;
  if (c.registrationEndpoint !== undefined) as.registration_endpoint = c.registrationEndpoint;
  return checkEndpoints(as, `connection ${c.id}`);
}

/** RFC 8414 first, then OpenID Connect discovery. The document's `issuer` must equal `issuer`. */
export async function discoverIssuer(issuer: string, http: HttpSettings): Promise<ServerInfo> {
  const url = requireSecureUrl(issuer, 'issuer', 'OAUTH_ERROR');
  const insecure = url.protocol === 'http:';
  let lastError: unknown;
  for (const algorithm of ['oauth2', 'oidc'] as const) {
    try {
      const as = await withRetry(http, 'discovery', async (signal) => {
        const res = await oauth.discoveryRequest(url, { ...requestOptions(http, signal, insecure), algorithm });
        return oauth.processDiscoveryResponse(url, res);
      });
      return checkEndpoints(as, 'metadata');
    } catch (e) {
      const err = toSafeError(e, 'discovery');
      if (isTransient(err)) throw err;
      // An issuer mismatch or an unsafe endpoint is a refusal, not a reason to try the next path.
      if ((e as { field?: string }).field?.startsWith('metadata') || err.message.includes('does not match')) throw err;
      lastError = err;
    }
  }
  throw toSafeError(lastError, 'discovery');
}

/**
 * RFC 9728: the protected resource's metadata names its authorization server; without usable
 * metadata, fall back to the resource host's own well-known metadata.
 */
export async function discoverFromResource(resource: string, http: HttpSettings): Promise<ServerInfo> {
  const url = requireSecureUrl(resource, 'resource', 'OAUTH_ERROR');
  const insecure = url.protocol === 'http:';
  let authorizationServer: string | undefined;
  try {
    const rs = await withRetry(http, 'resource discovery', async (signal) => {
      const res = await oauth.resourceDiscoveryRequest(url, requestOptions(http, signal, insecure));
      return oauth.processResourceDiscoveryResponse(url, res);
    });
    const list = rs.authorization_servers;
    if (Array.isArray(list) && typeof list[0] === 'string') authorizationServer = list[0];
  } catch (e) {
    const err = toSafeError(e, 'resource discovery');
    if (isTransient(err)) throw err;
  }
  return discoverIssuer(authorizationServer ?? url.origin, http);
}

/** Resolve a connection's authorization server. */
export function resolveServer(c: Connection, http: HttpSettings): Promise<ServerInfo> {
  if (c.tokenEndpoint !== undefined) return Promise.resolve(explicitServer(c));
  if (c.issuer !== undefined) return discoverIssuer(c.issuer, http);
  return discoverFromResource(c.resource as string, http);
}
