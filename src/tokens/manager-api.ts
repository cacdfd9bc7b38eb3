/**
 * The public shape of the token manager: its options (and their schema) and the
 * {@link TokenManager} interface.
 *
 * @module
 */
import type Keyv from 'keyv';
import { z } from 'zod';
import type { AuditSink } from '../audit/events.js';
import type { EncryptionKeyInput } from '../stores/encryption.js';
import type { KeyValueStore } from '../stores/store.js';
import type { ConnectionConfig } from './connections.js';
import { connectionSchema } from './connections.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from './http.js';
import type { AccessTokenResult, AccountRef, ClientCredentialsOptions, ConnectedAccount, StartAuthorizationOptions, StartAuthorizationResult, TokenExchangeOptions, TokenSource } from './types.js';
import type { EnterpriseTokenOptions } from './id-jag.js';

/**
 * Encryption keys from a secret manager: a loader of the key list (newest first), called at first
 * use and again every `ttlSeconds` (default 300), so a key added by rotation is used without a
 * restart. A failing load is `TOKEN_ENDPOINT_UNAVAILABLE` (`reason: 'secret_unavailable'`) for that
 * call; the keys loaded before stay in use.
 *
 * @example
 * ```ts
 * const tokens = createTokenManager({
 *   encryptionKey: { load: async () => JSON.parse(await vault.read('agent-iam/keys')) as string[], ttlSeconds: 600 },
 *   connections,
 * });
 * ```
 */
export type EncryptionKeySource =
  | (() => Promise<EncryptionKeyInput | EncryptionKeyInput[]>)
  | { load: () => Promise<EncryptionKeyInput | EncryptionKeyInput[]>; ttlSeconds?: number };

/**
 * Options for {@link createTokenManager}.
 *
 * @example
 * ```ts
 * const options: TokenManagerOptions = {
 *   store: redisStore({ url: 'redis://127.0.0.1:6379' }),      // from 'agent-iam/redis'
 *   encryptionKey: [process.env.KEY_2025!, process.env.KEY_2024!], // newest first
 *   connections: [{ id: 'corp', issuer: 'https://idp.example.com', clientId, clientSecret, redirectUri }],
 *   timeoutMs: 5000, retries: 2, refreshSkewSeconds: 60,
 * };
 * ```
 */
export interface TokenManagerOptions {
  /**
   * Where accounts, authorization states and registered clients live (default: in memory, one
   * process). For several replicas use `redisStore()` from `agent-iam/redis` or `postgresStore()`
   * from `agent-iam/postgres`: refresh leases, account writes fenced by their version, single-use
   * states and register-once are then exact across processes. Any Keyv instance also works, but
   * with Keyv those guarantees are exact inside one process only and **best effort across
   * processes** (two replicas can refresh one account at once and lose it to refresh-token reuse
   * detection).
   */
  store?: Keyv | KeyValueStore;
  /** AES-256-GCM key(s), newest first, for encryption at rest (base64url of 32 bytes, a CryptoKey, or `{ id, key }`). */
  encryptionKey?: EncryptionKeyInput | EncryptionKeyInput[] | EncryptionKeySource;
  /** The connections (authorization servers and API-key providers). */
  connections: ConnectionConfig[];
  /** Receives token.issue / token.refresh / token.revoke / token.exchange / consent.* events. */
  audit?: AuditSink;
  /** fetch used for every request to an authorization server (default: global fetch). */
  fetch?: typeof fetch;
  /** Bound on one protocol call including retries, ms (default 10000). */
  timeoutMs?: number;
  /** Retries on network errors, timeouts and 5xx (default 2). */
  retries?: number;
  /**
   * Largest answer read from an authorization server or metadata endpoint, bytes (default 262144).
   * A larger one is refused with `OAUTH_ERROR` (`invalid_response`) without reading it all.
   */
  maxResponseBytes?: number;
  /** Refresh this many seconds before the access token expires (default 60). */
  refreshSkewSeconds?: number;
  /** Lifetime of a pending authorization state, seconds (default 600). */
  stateTtlSeconds?: number;
  /** Bound on each store call, ms (default 5000). */
  storeTimeoutMs?: number;
  /** Size of the in-process cache of decrypted access tokens (default 1000; 0 disables). */
  cacheSize?: number;
  /** Longest time a cached access token is served without re-reading the store, seconds (default 30). */
  cacheTtlSeconds?: number;
  /**
   * Cache tokens obtained by {@link TokenManager.exchange} (default: on, 1000 entries, unless
   * `cacheSize` is 0). An entry is keyed by SHA-256 hashes of the subject and actor tokens plus the
   * connection, audience, resource, scope set and token types; it is served until `refreshSkewSeconds`
   * before the issued token expires and never after the subject token's own `exp` (a subject token
   * without a readable `exp` is not cached). Concurrent identical exchanges share one request.
   * `SCOPE_ESCALATION` is still checked on every call. A cache hit emits no `token.exchange` event
   * (that event records an exchange at the server). `false` turns caching off; a number sets the
   * maximum number of entries.
   */
  exchangeCache?: boolean | number;
}

/**
 * Whose accounts {@link TokenManager.listAccounts} lists: a user's, an organisation's, or both.
 *
 * @example
 * ```ts
 * await tokens.listAccounts({ userId: 'alice', orgId: 'acme' });
 * ```
 */
/** Options for {@link TokenManager.completeAuthorization}. */
export interface CompleteAuthorizationOptions {
  /**
   * The authenticated user presenting the callback. When given, a callback for a flow that another
   * user started is refused (`OAUTH_STATE_MISMATCH`, 403) before any token request: session binding
   * against consent phishing. The consent routes always pass it.
   */
  expectedUserId?: string;
}

export interface ListAccountsFilter {
  userId?: string;
  orgId?: string;
}

/**
 * Options for {@link TokenManager.setApiKey}.
 *
 * @example
 * ```ts
 * await tokens.setApiKey({ connection: 'kaggle', userId: 'alice', key: kaggleKey });
 * ```
 */
export interface SetApiKeyOptions {
  connection: string;
  userId?: string;
  orgId?: string;
  /** The API key; stored encrypted like any token, never returned by getAccount/listAccounts. */
  key: string;
  scopes?: string[];
}

/**
 * The token manager. Implements {@link TokenSource} for `toolFetch`.
 *
 * @example
 * ```ts
 * try {
 *   const { accessToken } = await tokens.getAccessToken({ connection: 'github', userId, orgId });
 * } catch (e) {
 *   if (isAgentIamError(e) && e.code === 'CONSENT_REQUIRED') redirect(e.authorizationUrl);
 * }
 * ```
 */
export interface TokenManager extends TokenSource {
  /** Begin per-user consent: `{ url, state }` with PKCE S256 and a single-use, expiring state. */
  startAuthorization(options: StartAuthorizationOptions): Promise<StartAuthorizationResult>;
  /** Finish consent from the callback URL: validates state (and `iss`), redeems the code, stores the account. */
  completeAuthorization(callbackUrl: string | URL, options?: CompleteAuthorizationOptions): Promise<ConnectedAccount>;
  /** A usable access token for the user's (else the organisation's) account, refreshed when near expiry. */
  getAccessToken(options: AccountRef): Promise<AccessTokenResult>;
  /** The account's public view (never tokens), or undefined. */
  getAccount(options: AccountRef): Promise<ConnectedAccount | undefined>;
  /** Every account of a user (or of an organisation). */
  listAccounts(owner: string | ListAccountsFilter): Promise<ConnectedAccount[]>;
  /** RFC 7009 revocation at the server (when it has an endpoint), then the account is `revoked` and its tokens deleted. */
  revoke(options: AccountRef): Promise<ConnectedAccount | undefined>;
  /**
   * Disconnect an account: RFC 7009 revocation at the server (as {@link TokenManager.revoke}), then
   * the account is deleted (it no longer shows in `listAccounts`). Resolves with the account as it
   * was revoked, or undefined when there was none.
   *
   * @example
   * ```ts
   * await tokens.disconnect({ connection: 'github', userId: 'alice' });
   * ```
   */
  disconnect(options: AccountRef): Promise<ConnectedAccount | undefined>;
  /** A service-account token (client credentials), cached per connection, scope set and resource/audience. */
  clientCredentials(options: ClientCredentialsOptions): Promise<AccessTokenResult>;
  /** RFC 8693 token exchange; never widens scopes, and a JWT issued for another audience than the one asked is refused (`OAUTH_ERROR` invalid_response). The issued token is cached per subject token, actor token, audience, resource and scope set (see `exchangeCache`). */
  exchange(options: TokenExchangeOptions): Promise<AccessTokenResult>;
  /**
   * Enterprise-managed authorization (MCP extension, the IETF ID-JAG grant): exchange the user's ID
   * token at the enterprise IdP (`idp` connection) for an Identity Assertion JWT Authorization Grant
   * aimed at `connection`'s authorization server, then redeem it there with the `jwt-bearer` grant.
   * No consent screen: the IdP's policy decides. The access token is cached per ID token and scope
   * set, never past the ID token's expiry; the ID-JAG itself is never kept.
   *
   * @example
   * ```ts
   * const tokens = createTokenManager({ connections: [
   *   { id: 'okta', tokenEndpoint: 'https://acme.okta.com/oauth2/v1/token', clientId, clientSecret },
   *   { id: 'mcp', resource: 'https://mcp.example.com/mcp', clientId: mcpClientId, clientSecret: mcpSecret },
   * ] });
   * const { accessToken } = await tokens.enterpriseToken({ connection: 'mcp', idp: 'okta', idToken });
   * ```
   */
  enterpriseToken(options: EnterpriseTokenOptions): Promise<AccessTokenResult>;
  /** Store an API key as a connected account (non-OAuth providers). */
  setApiKey(options: SetApiKeyOptions): Promise<ConnectedAccount>;
  /** The validated connection ids. */
  readonly connections: readonly string[];
}

export const optionsSchema = z.strictObject({
  store: z.custom<Keyv | KeyValueStore>((v) => v === undefined || (typeof v === 'object' && v !== null), 'must be a Keyv instance or a KeyValueStore').optional(),
  encryptionKey: z.unknown().optional(),
  connections: z.array(connectionSchema).min(1),
  audit: z.custom<AuditSink>((v) => v === undefined || typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'), 'must be a function or an object with write()').optional(),
  fetch: z.custom<typeof fetch>((v) => v === undefined || typeof v === 'function', 'must be a function').optional(),
  timeoutMs: z.number().int().min(1).max(300_000).default(10_000),
  retries: z.number().int().min(0).max(10).default(2),
  maxResponseBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(DEFAULT_MAX_RESPONSE_BYTES),
  refreshSkewSeconds: z.number().min(0).max(86_400).default(60),
  stateTtlSeconds: z.number().int().min(1).max(86_400).default(600),
  storeTimeoutMs: z.number().int().min(1).max(300_000).default(5000),
  cacheSize: z.number().int().min(0).max(1_000_000).default(1000),
  cacheTtlSeconds: z.number().min(0).max(3600).default(30),
  exchangeCache: z.union([z.boolean(), z.number().int().min(0).max(1_000_000)]).optional(),
});

/** The options after validation and defaults. */
export type ParsedOptions = z.output<typeof optionsSchema>;
