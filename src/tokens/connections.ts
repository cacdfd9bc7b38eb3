/**
 * Connection configuration: the zod schema (validated once, at construction) and the public type.
 *
 * @module
 */
import { z } from 'zod';
import { configError } from '../errors.js';
import { secretSchema, type SecretSource } from '../lib/secret.js';
import { checkClientIdUrl, requireSecureUrl } from '../lib/secure-url.js';
import { CLIENT_KEY_ALGS, type ClientKeyAlg } from './client-key.js';

/**
 * How the client authenticates at the token endpoint. `private_key_jwt` (RFC 7523 §2.2) signs a
 * short-lived assertion with `clientPrivateKey`; it is the default when that key is set.
 *
 * @example
 * ```ts
 * { id: 'notion', ...connectionPresets.notion(), tokenEndpointAuthMethod: 'client_secret_basic' }
 * ```
 */
export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

/** A private JSON Web Key (RFC 7517) with its private members (`d`, ...). */
export type PrivateJwk = Record<string, unknown> & { kty: string; d: string };

/**
 * One connection: an OAuth 2.0 authorization server (or an API-key provider) that users connect
 * accounts to. Give explicit endpoints, or `issuer` (RFC 8414 / OpenID discovery), or `resource`
 * (RFC 9728 protected-resource metadata, e.g. an MCP server). Every URL must be https (http only
 * for loopback hosts).
 *
 * @example
 * ```ts
 * const connections: ConnectionConfig[] = [
 *   { id: 'corp', issuer: 'https://idp.example.com', clientId, clientSecret, redirectUri },
 *   { id: 'mcp', resource: 'https://mcp.example.com/mcp', registration: 'dynamic', redirectUri },
 *   { id: 'kaggle', kind: 'apiKey' },
 * ];
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc8414
 * @see https://www.rfc-editor.org/rfc/rfc9728
 * @see https://www.rfc-editor.org/rfc/rfc7591
 */
export interface ConnectionConfig {
  /** Your name for the connection, used in every call (`connection: 'github'`). */
  id: string;
  /** `oauth2` (default) or `apiKey` (accounts are only set with `setApiKey`). */
  kind?: 'oauth2' | 'apiKey';
  /** Issuer identifier; endpoints come from its metadata (RFC 8414, then OpenID discovery). */
  issuer?: string;
  /** A protected resource (e.g. an MCP server URL); its RFC 9728 metadata names the authorization server. */
  resource?: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  revocationEndpoint?: string;
  registrationEndpoint?: string;
  /** A pre-registered client id. */
  clientId?: string;
  /**
   * The client secret: the value, `{ env: 'NAME' }`, or a loader for a secret manager
   * (`() => Promise<string>`, or `{ load, ttlSeconds }`), cached for its TTL and loaded again when the
   * token endpoint answers `invalid_client` (a rotated secret).
   */
  clientSecret?: SecretSource;
  /**
   * The client's private key for `private_key_jwt`: a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) or a
   * private JWK. RSA, EC (P-256/384/521) or Ed25519. Imported once as a non-extractable key; with
   * dynamic registration its public half is registered as `jwks`.
   *
   * @example
   * ```ts
   * { id: 'mcp', resource: 'https://mcp.example.com/mcp', clientId: 'agent', clientPrivateKey: process.env.MCP_CLIENT_KEY_PEM }
   * ```
   */
  clientPrivateKey?: string | PrivateJwk;
  /** The key's signing algorithm (default: from the JWK, else ES256/RS256/ES384/ES512/EdDSA as the key fits). */
  clientPrivateKeyAlg?: ClientKeyAlg;
  /** `kid` header of the assertion (default: the JWK's `kid`, else none). */
  clientPrivateKeyId?: string;
  /** A Client ID Metadata Document URL (https), used when the server advertises `client_id_metadata_document_supported`. */
  clientMetadataUrl?: string;
  /** `'dynamic'`: RFC 7591 dynamic client registration; the registered client is stored and reused. */
  registration?: 'dynamic';
  /** Extra client metadata sent with dynamic registration (e.g. `client_name`, `grant_types`). */
  registrationMetadata?: Record<string, unknown>;
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod;
  /** Where the authorization server sends the user back (your callback). */
  redirectUri?: string;
  /** Default scopes requested. */
  scopes?: string[];
  /** Joins scopes in requests (default `' '`; Slack and Linear use `','`). */
  scopeSeparator?: string;
  /**
   * For a `resource` connection (an MCP server) without endpoints or issuer: when a user has no
   * account yet, toolFetch sends the request once without a credential, as an MCP client does, so
   * that the resource's 401 challenge (`resource_metadata`, `scope`) drives discovery and consent.
   * Default false: nothing reaches a tool before the user has consented.
   */
  probeResource?: boolean;
  /** Send RFC 8707 `resource` (default true when `resource` is set; Microsoft Entra rejects it). */
  sendResource?: boolean;
  /** An `audience` parameter to send with token requests (Auth0-style APIs). */
  audience?: string;
  /** Extra authorization request parameters (e.g. Google `access_type: 'offline'`). Cannot override PKCE/state. */
  authorizationParams?: Record<string, string>;
  /** Extra token request parameters. */
  tokenParams?: Record<string, string>;
  /** Extra `token_type` values to accept besides `bearer` (Slack answers `bot` / `user`). */
  tokenTypes?: string[];
}

const urlString = z.string().min(1).max(2048);

export const connectionSchema = z.strictObject({
  id: z.string().min(1).max(200).regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters'),
  kind: z.enum(['oauth2', 'apiKey']).default('oauth2'),
  issuer: urlString.optional(),
  resource: urlString.optional(),
  authorizationEndpoint: urlString.optional(),
  tokenEndpoint: urlString.optional(),
  revocationEndpoint: urlString.optional(),
  registrationEndpoint: urlString.optional(),
  clientId: z.string().min(1).max(2048).optional(),
  clientSecret: secretSchema(z.string().min(1).max(4096)).optional(),
  clientPrivateKey: z.union([z.string().min(1).max(16384), z.looseObject({ kty: z.string(), d: z.string() })], { error: 'must be a PKCS#8 PEM string or a private JWK (with d)' }).optional(),
  clientPrivateKeyAlg: z.enum(CLIENT_KEY_ALGS).optional(),
  clientPrivateKeyId: z.string().min(1).max(256).optional(),
  clientMetadataUrl: urlString.optional(),
  registration: z.literal('dynamic').optional(),
  registrationMetadata: z.record(z.string(), z.unknown()).optional(),
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']).optional(),
  redirectUri: urlString.optional(),
  scopes: z.array(z.string().min(1).max(512).regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'scope tokens are visible ASCII without space, " or \\')).max(100).optional(),
  scopeSeparator: z.string().min(1).max(3).default(' '),
  sendResource: z.boolean().optional(),
  probeResource: z.boolean().optional(),
  audience: z.string().min(1).max(2048).optional(),
  authorizationParams: z.record(z.string(), z.string()).optional(),
  tokenParams: z.record(z.string(), z.string()).optional(),
  tokenTypes: z.array(z.string().min(1).max(64)).optional(),
});

/** A validated connection. */
export type Connection = z.output<typeof connectionSchema>;

const URL_FIELDS = ['issuer', 'resource', 'authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint', 'registrationEndpoint', 'redirectUri'] as const;

/** Checks zod cannot express: URL safety, one source of endpoints, unique ids. */
export function checkConnections(connections: Connection[]): void {
  const seen = new Set<string>();
  connections.forEach((c, i) => {
    const at = `connections.${i}`;
    if (seen.has(c.id)) throw configError(`${at}.id`, 'duplicate connection id');
    seen.add(c.id);
    for (const f of URL_FIELDS) {
      const v = c[f];
      if (v !== undefined) requireSecureUrl(v, `${at}.${f}`);
    }
    if (c.clientMetadataUrl !== undefined) {
      checkClientIdUrl(c.clientMetadataUrl, `${at}.clientMetadataUrl`);
    }
    if (c.kind === 'apiKey') return;
    if (c.tokenEndpoint === undefined && c.issuer === undefined && c.resource === undefined) {
      throw configError(`${at}.tokenEndpoint`, 'give tokenEndpoint (explicit endpoints), issuer or resource');
    }
    if (c.clientSecret !== undefined && c.clientId === undefined) throw configError(`${at}.clientId`, 'clientSecret needs clientId');
    const method = c.tokenEndpointAuthMethod;
    if (c.clientPrivateKey !== undefined) {
      if (c.clientSecret !== undefined) throw configError(`${at}.clientSecret`, 'give clientSecret or clientPrivateKey, not both');
      if (method !== undefined && method !== 'private_key_jwt') throw configError(`${at}.tokenEndpointAuthMethod`, 'clientPrivateKey is used only with private_key_jwt');
      if (c.clientId === undefined && c.registration !== 'dynamic') throw configError(`${at}.clientId`, "clientPrivateKey needs clientId or registration: 'dynamic'");
    } else if (method === 'private_key_jwt') {
      throw configError(`${at}.clientPrivateKey`, 'required for private_key_jwt');
    } else if (method !== undefined && method !== 'none' && c.clientId !== undefined && c.clientSecret === undefined) {
      throw configError(`${at}.clientSecret`, `required for ${method}`);
    }
  });
}

/** True when a connection can run the authorization-code flow (a redirect URI is configured). */
export function supportsAuthorizationCode(c: Connection): boolean {
  return c.kind === 'oauth2' && c.redirectUri !== undefined;
}

/** The RFC 8707 resource to send, if any. */
export function resourceParam(c: Connection, override?: string): string | undefined {
  if (override !== undefined) return override;
  if (c.resource !== undefined && c.sendResource !== false) return c.resource;
  return undefined;
}
