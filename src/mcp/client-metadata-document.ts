import { z } from 'zod';
import { configError } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { checkClientIdUrl, isLoopbackHost, requireSecureUrl } from '../lib/secure-url.js';
import { publishDocument, type PublishedDocument } from './well-known.js';

/** Options of {@link clientMetadataDocument}. */
export interface ClientMetadataDocumentOptions {
  /** The client id: the https URL this document is served at (http only on loopback); it needs a path. */
  clientId: string;
  /** A human-readable client name, shown on consent screens. */
  clientName: string;
  /** Where the authorization server may send the user back to. */
  redirectUris: string[];
  /** Default `['authorization_code', 'refresh_token']`. */
  grantTypes?: string[];
  /** Default `['code']` when `authorization_code` is among the grant types, else `[]`. */
  responseTypes?: string[];
  /** A space-separated scope string the client may ask for. */
  scope?: string;
  /**
   * Default `'none'` (a public client using PKCE). Shared secrets are not possible with a metadata
   * document: `client_secret_*` methods are refused; `private_key_jwt` needs `jwksUri` or `jwks`.
   */
  tokenEndpointAuthMethod?: 'none' | 'private_key_jwt' | 'tls_client_auth' | 'self_signed_tls_client_auth';
  /** Where the client publishes its public keys (for `private_key_jwt`). */
  jwksUri?: string;
  /** The client's public keys, inline (for `private_key_jwt`). */
  jwks?: { keys: Array<Record<string, unknown>> };
  clientUri?: string;
  logoUri?: string;
  tosUri?: string;
  policyUri?: string;
  contacts?: string[];
  softwareId?: string;
  softwareVersion?: string;
  /** `Cache-Control: max-age` of the served document in seconds; default 3600. */
  maxAge?: number;
  /** Further client metadata members (snake_case), added as given; they never override the members above. */
  extra?: Record<string, unknown>;
}

/** A client metadata document (RFC 7591 client metadata whose `client_id` is its own URL). */
export interface ClientMetadata {
  client_id: string;
  client_name: string;
  redirect_uris: string[];
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: string;
  scope?: string;
  jwks_uri?: string;
  jwks?: { keys: Array<Record<string, unknown>> };
  client_uri?: string;
  logo_uri?: string;
  tos_uri?: string;
  policy_uri?: string;
  contacts?: string[];
  software_id?: string;
  software_version?: string;
  [member: string]: unknown;
}

/** What {@link clientMetadataDocument} returns. */
export type ClientMetadataDocumentResult = PublishedDocument<ClientMetadata>;

const FORBIDDEN_MEMBERS = ['client_secret', 'client_secret_expires_at'];

const schema = z.object({
  clientId: z.string().min(1),
  clientName: z.string().min(1).max(200),
  redirectUris: z.array(z.string().min(1)).min(1),
  grantTypes: z.array(z.string().min(1)).min(1).optional(),
  responseTypes: z.array(z.string().min(1)).optional(),
  scope: z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/, 'must be space-separated scope tokens').optional(),
  tokenEndpointAuthMethod: z.enum(['none', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth']).optional(),
  jwksUri: z.string().min(1).optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
  clientUri: z.string().min(1).optional(),
  logoUri: z.string().min(1).optional(),
  tosUri: z.string().min(1).optional(),
  policyUri: z.string().min(1).optional(),
  contacts: z.array(z.string().min(1)).optional(),
  softwareId: z.string().min(1).optional(),
  softwareVersion: z.string().min(1).optional(),
  maxAge: z.number().int().min(0).optional(),
  extra: z.record(z.string(), z.unknown()).optional(),
});


function checkRedirectUri(value: string, field: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError(field, 'is not a valid URL');
  }
  if (url.hash !== '' || value.includes('#')) throw configError(field, 'must not contain a fragment');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) throw configError(field, 'must use https (http only for loopback hosts)');
  if (url.protocol === 'https:' || url.protocol === 'http:') requireSecureUrl(url, field);
  if (['javascript:', 'data:', 'file:', 'blob:', 'vbscript:'].includes(url.protocol)) throw configError(field, 'uses a forbidden scheme');
}

/**
 * The agent's own OAuth Client ID Metadata Document: the client id is an https URL, and the
 * authorization server fetches the client's metadata from it instead of a registration step. Returns
 * the path to serve it at (the client id's path), its URL, the document, and a Web-API handler.
 *
 * @see https://datatracker.ietf.org/doc/draft-ietf-oauth-client-id-metadata-document/
 *
 * @example
 * ```ts
 * import { clientMetadataDocument } from 'agent-iam/mcp';
 * const cimd = clientMetadataDocument({
 *   clientId: 'https://agent.example.com/oauth/client.json',
 *   clientName: 'Support agent',
 *   redirectUris: ['https://agent.example.com/oauth/callback'],
 * });
 * app.get(cimd.path, (c) => cimd.handler(c.req.raw));   // Hono; Express: res.json(cimd.document)
 * // token manager connection: { id: 'mcp', resource: 'https://mcp.example.com/mcp', clientMetadataUrl: cimd.url, ... }
 * ```
 */
export function clientMetadataDocument(options: ClientMetadataDocumentOptions): ClientMetadataDocumentResult {
  const o = parseOptions(schema, options);
  const url = checkClientIdUrl(o.clientId, 'clientId');
  o.redirectUris.forEach((uri, i) => checkRedirectUri(uri, `redirectUris.${i}`));
  for (const field of ['jwksUri', 'clientUri', 'logoUri', 'tosUri', 'policyUri'] as const) {
    if (o[field] !== undefined) requireSecureUrl(o[field], field);
  }
  const method = o.tokenEndpointAuthMethod ?? 'none';
  if (method === 'private_key_jwt' && o.jwksUri === undefined && o.jwks === undefined) {
    throw configError('jwksUri', 'private_key_jwt needs jwksUri or jwks');
  }
  if (o.jwks !== undefined && o.jwks.keys.some((k) => 'd' in k || 'k' in k)) {
    throw configError('jwks', 'must hold public keys only');
  }
  for (const member of FORBIDDEN_MEMBERS) {
    if (o.extra !== undefined && member in o.extra) throw configError(`extra.${member}`, 'is not allowed in a client metadata document');
  }
  if (o.extra?.token_endpoint_auth_method !== undefined) {
    throw configError('extra.token_endpoint_auth_method', 'use tokenEndpointAuthMethod');
  }
  const grantTypes = o.grantTypes ?? ['authorization_code', 'refresh_token'];
  const document: ClientMetadata = {
    ...(o.extra ?? {}),
    client_id: o.clientId,
    client_name: o.clientName,
    redirect_uris: [...o.redirectUris],
    grant_types: [...grantTypes],
    response_types: [...(o.responseTypes ?? (grantTypes.includes('authorization_code') ? ['code'] : []))],
    token_endpoint_auth_method: method,
  };
  const optional: Array<[keyof ClientMetadata, unknown]> = [
    ['scope', o.scope],
    ['jwks_uri', o.jwksUri],
    ['jwks', o.jwks],
    ['client_uri', o.clientUri],
    ['logo_uri', o.logoUri],
    ['tos_uri', o.tosUri],
    ['policy_uri', o.policyUri],
    ['contacts', o.contacts],
    ['software_id', o.softwareId],
    ['software_version', o.softwareVersion],
  ];
  for (const [member, value] of optional) {
    if (value !== undefined) document[member] = structuredClone(value);
  }
  return publishDocument(url, document, o.maxAge ?? 3600);
}
