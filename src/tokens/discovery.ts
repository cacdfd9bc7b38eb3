/**
 * Internal: authorization server metadata — explicit endpoints, RFC 8414 / OpenID discovery by
 * issuer, or RFC 9728 protected-resource metadata first. Every endpoint learned must be https
 * (http only on loopback) and the metadata's `issuer` must equal the one asked for.
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import type { AgentIamError } from '../errors.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import type { Connection } from './connections.js';
import { boundedFetch, type HttpSettings, isTransient, oauthError as oauthErrorFor, requestOptions, toSafeError, withRetry } from './http.js';

/** Metadata plus whether plain http (loopback only) must be allowed for it. */
export interface ServerInfo {
  as: oauth.AuthorizationServer;
  insecure: boolean;
  /** `scopes_supported` of the protected resource's metadata (RFC 9728), when there was one. */
  resourceScopes?: string[];
  /**
   * True when found by the 2025-03-26 fallback (no protected resource metadata was found): a later
   * `resource_metadata` from the resource's own 401 challenge takes precedence over it.
   */
  legacy?: boolean;
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

/** Where a protected resource's metadata can be: path-inserted first, then at the root (RFC 9728 §3.1, MCP). */
function prmCandidates(url: URL): Array<{ at: URL; expect: string[]; direct?: boolean }> {
  const exact = url.href;
  const out: Array<{ at: URL; expect: string[]; direct?: boolean }> = [{ at: url, expect: [exact] }];
  if (url.pathname !== '/' && url.pathname !== '') {
    // The root document may name the resource itself or its origin.
    out.push({ at: new URL(url.origin), expect: [exact, url.origin, `${url.origin}/`] });
  }
  return out;
}

function resourceMismatch(): AgentIamError {
  return oauthErrorFor('resource discovery', 'invalid_resource', 'the protected resource metadata names another resource than the one asked for');
}

/**
 * RFC 9728: the protected resource's metadata names its authorization server. The metadata is
 * looked for path-inserted, then at the root; a document that names another resource is refused
 * (never a reason to try elsewhere). Without any metadata, fall back to the resource host's own
 * authorization server metadata (the 2025-03-26 MCP behaviour).
 */
export async function discoverFromResource(resource: string, http: HttpSettings, metadataUrl?: string): Promise<ServerInfo> {
  const url = requireSecureUrl(resource, 'resource', 'OAUTH_ERROR');
  const insecure = url.protocol === 'http:';
  const candidates = prmCandidates(url);
  if (metadataUrl !== undefined) {
    // Named by the resource's own 401 (`resource_metadata`): first, on the same rules (https, the same resource).
    // Only on the resource's own origin: a resource cannot send us to fetch from elsewhere.
    const at = requireSecureUrl(metadataUrl, 'resource_metadata', 'OAUTH_ERROR');
    if (at.origin === url.origin) candidates.unshift({ at, expect: [url.href], direct: true });
  }
  for (const { at, expect, direct } of candidates) {
    let raw: Response | undefined;
    let rs: oauth.ResourceServer | undefined;
    try {
      rs = await withRetry(http, 'resource discovery', async (signal) => {
        const opts = requestOptions(http, signal, insecure || at.protocol === 'http:');
        const res = direct === true
          ? await boundedFetch(http)(at.href, { headers: { accept: 'application/json' }, redirect: 'error', signal })
          : await oauth.resourceDiscoveryRequest(at, opts);
        raw = res.clone();
        return oauth.processResourceDiscoveryResponse(direct === true ? url : at, res);
      });
    } catch (e) {
      const err = toSafeError(e, 'resource discovery');
      if (isTransient(err)) throw err;
      // A document that is there but names something else: accept the resource's own forms at the
      // root, refuse anything else.
      const named = await namedResource(raw);
      if (named === undefined) continue;
      if (!expect.includes(named)) throw resourceMismatch();
      rs = await namedDocument(raw);
      if (rs === undefined) continue;
    }
    if (rs.resource !== undefined && !expect.includes(rs.resource)) throw resourceMismatch();
    const list = rs.authorization_servers;
    if (!Array.isArray(list) || typeof list[0] !== 'string') continue;
    const info = await discoverIssuer(list[0], http);
    const scopes = rs.scopes_supported;
    if (Array.isArray(scopes) && scopes.every((x) => typeof x === 'string')) info.resourceScopes = [...scopes];
    return info;
  }
  return discoverLegacy(url, http);
}

/**
 * The 2025-03-26 MCP behaviour for a server that publishes no protected resource metadata: the
 * authorization server is the MCP server's origin. Its metadata is read at the origin's root; the
 * document's `issuer` may carry a path (`/oauth`) but must be on that same origin, so the answer can
 * only name the host the MCP server already is. With no metadata at all (404 on both well-known
 * paths), the spec's default endpoints `/authorize`, `/token` and `/register` at the origin are used,
 * with PKCE S256 as the spec requires of such servers.
 */
async function discoverLegacy(resource: URL, http: HttpSettings): Promise<ServerInfo> {
  const origin = new URL(resource.origin);
  const insecure = origin.protocol === 'http:';
  let missing = 0;
  for (const algorithm of ['oauth2', 'oidc'] as const) {
    let doc: { issuer?: unknown } | undefined;
    try {
      const as = await withRetry(http, 'discovery', async (signal) => {
        const res = await oauth.discoveryRequest(origin, { ...requestOptions(http, signal, insecure), algorithm });
        if (res.status === 404) return undefined;
        doc = (await namedDocument(res)) as { issuer?: unknown } | undefined;
        const issuer = typeof doc?.issuer === 'string' ? doc.issuer : undefined;
        let expected = origin;
        if (issuer !== undefined && URL.canParse(issuer) && new URL(issuer).origin === origin.origin) expected = new URL(issuer);
        return oauth.processDiscoveryResponse(expected, res);
      });
      if (as === undefined) {
        missing++;
        continue;
      }
      return { ...checkEndpoints(as, 'metadata'), legacy: true };
    } catch (e) {
      const err = toSafeError(e, 'discovery');
      if (isTransient(err) || (e as { field?: string }).field?.startsWith('metadata') || err.message.includes('does not match')) throw err;
      // Anything else (not JSON, wrong content type): try the next path, never the defaults.
    }
  }
  if (missing < 2) throw oauthErrorFor('discovery', 'invalid_response', 'the authorization server sent an invalid response');
  const base = origin.href.replace(/\/$/, '');
  const info = checkEndpoints(
    {
      issuer: base,
      authorization_endpoint: `${base}/authorize`,
      token_endpoint: `${base}/token`,
      registration_endpoint: `${base}/register`,
      code_challenge_methods_supported: ['S256'],
    },
    'metadata',
  );
  return { ...info, legacy: true };
}

/** The `resource` a 200 JSON metadata answer names, if any (to tell a mismatch from a missing document). */
async function namedResource(res: Response | undefined): Promise<string | undefined> {
  const doc = await namedDocument(res);
  return typeof doc?.resource === 'string' ? doc.resource : undefined;
}

async function namedDocument(res: Response | undefined): Promise<oauth.ResourceServer | undefined> {
  if (res === undefined || res.status !== 200) return undefined;
  try {
    const body: unknown = await res.clone().json();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
    return body as oauth.ResourceServer;
  } catch {
    return undefined;
  }
}

/** Resolve a connection's authorization server. */
export function resolveServer(c: Connection, http: HttpSettings, metadataUrl?: string): Promise<ServerInfo> {
  if (c.tokenEndpoint !== undefined) return Promise.resolve(explicitServer(c));
  if (c.issuer !== undefined) return discoverIssuer(c.issuer, http);
  return discoverFromResource(c.resource as string, http, metadataUrl);
}
