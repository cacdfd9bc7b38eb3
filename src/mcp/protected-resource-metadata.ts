import { z } from 'zod';
import { configError } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { publishDocument, type PublishedDocument } from './well-known.js';

/** Options of {@link protectedResourceMetadata}. */
export interface ProtectedResourceMetadataOptions {
  /**
   * The protected resource's identifier, e.g. `https://agent.example.com/mcp` (https; http only on
   * loopback; no fragment). Prefer no trailing slash: the MCP SDK drops one before looking for the
   * metadata, while RFC 9728's text (and oauth4webapi) keep it.
   */
  resource: string;
  /** Issuer identifiers of the authorization servers that issue tokens for this resource. */
  authorizationServers: string[];
  /**
   * Scopes a client may ask for to call this resource. Keep it minimal: the scopes every request
   * needs (e.g. `mcp:tools`); MCP clients ask for all of them when a challenge names none, and the
   * 401/403 challenges name what each operation needs on top. `offline_access` is refused
   * (`CONFIG_INVALID`): refresh tokens are between the client and the authorization server, and a
   * resource must never advertise that scope (MCP 2026-07-28).
   */
  scopesSupported?: string[];
  /** A human-readable name for the resource. */
  resourceName?: string;
  /** How the bearer token may be sent; default `['header']`. */
  bearerMethodsSupported?: Array<'header' | 'body' | 'query'>;
  /** The resource's own JWKS (only when it signs responses). */
  jwksUri?: string;
  resourceDocumentation?: string;
  resourcePolicyUri?: string;
  resourceTosUri?: string;
  resourceSigningAlgValuesSupported?: string[];
  dpopSigningAlgValuesSupported?: string[];
  dpopBoundAccessTokensRequired?: boolean;
  tlsClientCertificateBoundAccessTokens?: boolean;
  authorizationDetailsTypesSupported?: string[];
  /** `Cache-Control: max-age` of the served document in seconds; default 3600. */
  maxAge?: number;
  /**
   * Further metadata members (snake_case), added as given; they never override the members above.
   * `scopes_supported` is refused here (`CONFIG_INVALID`): use `scopesSupported`.
   */
  extra?: Record<string, unknown>;
}

/** An RFC 9728 protected resource metadata document. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  bearer_methods_supported: string[];
  scopes_supported?: string[];
  resource_name?: string;
  jwks_uri?: string;
  resource_documentation?: string;
  resource_policy_uri?: string;
  resource_tos_uri?: string;
  resource_signing_alg_values_supported?: string[];
  dpop_signing_alg_values_supported?: string[];
  dpop_bound_access_tokens_required?: boolean;
  tls_client_certificate_bound_access_tokens?: boolean;
  authorization_details_types_supported?: string[];
  [member: string]: unknown;
}

/** What {@link protectedResourceMetadata} returns. */
export type ProtectedResourceMetadataResult = PublishedDocument<ProtectedResourceMetadata>;

const WELL_KNOWN = '/.well-known/oauth-protected-resource';
const token = z.string().min(1).regex(/^[\x21-\x7e]+$/, 'must be visible ASCII without spaces');

const schema = z.object({
  resource: z.string().min(1),
  authorizationServers: z.array(z.string().min(1)).min(1),
  scopesSupported: z.array(token).optional(),
  resourceName: z.string().min(1).optional(),
  bearerMethodsSupported: z.array(z.enum(['header', 'body', 'query'])).min(1).optional(),
  jwksUri: z.string().min(1).optional(),
  resourceDocumentation: z.string().min(1).optional(),
  resourcePolicyUri: z.string().min(1).optional(),
  resourceTosUri: z.string().min(1).optional(),
  resourceSigningAlgValuesSupported: z.array(token).optional(),
  dpopSigningAlgValuesSupported: z.array(token).optional(),
  dpopBoundAccessTokensRequired: z.boolean().optional(),
  tlsClientCertificateBoundAccessTokens: z.boolean().optional(),
  authorizationDetailsTypesSupported: z.array(token).optional(),
  maxAge: z.number().int().min(0).optional(),
  extra: z.record(z.string(), z.unknown()).optional(),
});

/**
 * The RFC 9728 §3.1 metadata URL of a resource: `/.well-known/oauth-protected-resource` goes between
 * the host and the resource's path (a query is kept).
 *
 * @example
 * ```ts
 * protectedResourceMetadataUrl('https://mcp.example.com/mcp').href;
 * // 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp'
 * ```
 */
export function protectedResourceMetadataUrl(resource: string | URL): URL {
  const r = requireSecureUrl(resource, 'resource');
  const url = new URL(r.origin);
  url.pathname = r.pathname === '/' ? WELL_KNOWN : `${WELL_KNOWN}${r.pathname}`;
  url.search = r.search;
  return url;
}

/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728) for an MCP server or any API: the path to serve it
 * at, its URL (for `createVerifier({ resourceMetadataUrl })`, so that 401/403 challenges carry
 * `resource_metadata`), the document, and a Web-API handler. Runs on any runtime.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9728
 * @see https://modelcontextprotocol.io/specification/draft/basic/authorization
 *
 * @example
 * ```ts
 * import { protectedResourceMetadata } from 'agent-iam/mcp';
 * const meta = protectedResourceMetadata({
 *   resource: 'https://agent.example.com/mcp',
 *   authorizationServers: ['https://idp.example.com'],
 *   scopesSupported: ['mcp:tools'],
 * });
 * meta.path; // '/.well-known/oauth-protected-resource/mcp'
 * app.get(meta.path, (c) => meta.handler(c.req.raw));              // Hono
 * app.get(meta.path, (_req, res) => res.json(meta.document));      // Express
 * const verifier = createVerifier({ providers, resourceMetadataUrl: meta.url });
 * ```
 */
export function protectedResourceMetadata(options: ProtectedResourceMetadataOptions): ProtectedResourceMetadataResult {
  const o = parseOptions(schema, options);
  o.scopesSupported?.forEach((scope, i) => {
    if (scope === 'offline_access') throw configError(`scopesSupported.${i}`, 'offline_access is an authorization server scope; a resource never advertises it');
  });
  if (o.extra !== undefined && 'scopes_supported' in o.extra) throw configError('extra.scopes_supported', 'use scopesSupported');
  const resource = requireSecureUrl(o.resource, 'resource');
  if (resource.hash !== '' || o.resource.includes('#')) throw configError('resource', 'must not contain a fragment');
  o.authorizationServers.forEach((as, i) => {
    const url = requireSecureUrl(as, `authorizationServers.${i}`);
    if (url.search !== '' || url.hash !== '') throw configError(`authorizationServers.${i}`, 'must not contain a query or fragment');
  });
  const urls = ['jwksUri', 'resourceDocumentation', 'resourcePolicyUri', 'resourceTosUri'] as const;
  for (const field of urls) if (o[field] !== undefined) requireSecureUrl(o[field], field);

  const document: ProtectedResourceMetadata = {
    ...(o.extra ?? {}),
    resource: o.resource,
    authorization_servers: [...o.authorizationServers],
    bearer_methods_supported: [...(o.bearerMethodsSupported ?? ['header'])],
  };
  const optional: Array<[keyof ProtectedResourceMetadata, unknown]> = [
    ['scopes_supported', o.scopesSupported],
    ['resource_name', o.resourceName],
    ['jwks_uri', o.jwksUri],
    ['resource_documentation', o.resourceDocumentation],
    ['resource_policy_uri', o.resourcePolicyUri],
    ['resource_tos_uri', o.resourceTosUri],
    ['resource_signing_alg_values_supported', o.resourceSigningAlgValuesSupported],
    ['dpop_signing_alg_values_supported', o.dpopSigningAlgValuesSupported],
    ['dpop_bound_access_tokens_required', o.dpopBoundAccessTokensRequired],
    ['tls_client_certificate_bound_access_tokens', o.tlsClientCertificateBoundAccessTokens],
    ['authorization_details_types_supported', o.authorizationDetailsTypesSupported],
  ];
  for (const [member, value] of optional) {
    if (value !== undefined) document[member] = Array.isArray(value) ? [...value] : value;
  }
  return publishDocument(protectedResourceMetadataUrl(resource), document, o.maxAge ?? 3600);
}
