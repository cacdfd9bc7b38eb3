/**
 * The token manager: connected accounts per user or organisation (authorization code + PKCE),
 * refresh with rotation and single flight, client credentials, RFC 8693 token exchange, RFC 7009
 * revocation and API keys, in any Keyv store, encrypted at rest.
 *
 * @module
 */
import type Keyv from 'keyv';
import { z } from 'zod';
import type { AuditSink } from '../audit/events.js';
import { AgentIamError, isAgentIamError } from '../errors.js';
import { SingleFlight, sleep } from '../lib/async.js';
import { randomToken } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { createEncryptor, type EncryptionKeyInput, type Encryptor } from '../stores/encryption.js';
import { createSecureStore } from '../stores/secure-store.js';
import { createKeyValueStore, type KeyValueStore, storeKey } from '../stores/store.js';
import { type AccountRecord, accountKey, effectiveStatus, indexKey, isAccountRecord, type OwnerType, splitScopes, toConnectedAccount } from './accounts.js';
import { completeAuthorization, startAuthorization } from './authorization-code.js';
import { ClientCredentialsCache } from './client-credentials.js';
import { checkConnections, type Connection, type ConnectionConfig, connectionSchema, supportsAuthorizationCode } from './connections.js';
import { resolveServer, type ServerInfo } from './discovery.js';
import { type HttpSettings, recognizedTokenTypes, requestOptions, toSafeError, withRetry } from './http.js';
import { type ClientInfo, resolveClient } from './registration.js';
import { audit, type Runtime } from './runtime.js';
import { TokenExchanger } from './token-exchange.js';
import type {
  AccessTokenResult,
  AccountRef,
  ClientCredentialsOptions,
  ConnectedAccount,
  StartAuthorizationOptions,
  StartAuthorizationResult,
  TokenExchangeOptions,
  TokenSource,
  RejectedTokenRequest,
} from './types.js';
import { DROP_REJECTED_TOKEN } from './types.js';
import * as oauth from 'oauth4webapi';

/**
 * Options for {@link createTokenManager}.
 *
 * @example
 * ```ts
 * const options: TokenManagerOptions = {
 *   store: new Keyv(new KeyvRedis('redis://127.0.0.1:6379')),
 *   encryptionKey: [process.env.KEY_2025!, process.env.KEY_2024!], // newest first
 *   connections: [{ id: 'corp', issuer: 'https://idp.example.com', clientId, clientSecret, redirectUri }],
 *   timeoutMs: 5000, retries: 2, refreshSkewSeconds: 60,
 * };
 * ```
 */
export interface TokenManagerOptions {
  /** Any Keyv instance (Redis, Postgres, SQLite adapters) or a {@link KeyValueStore}; default in-memory. */
  store?: Keyv | KeyValueStore;
  /** AES-256-GCM key(s), newest first, for encryption at rest (base64url of 32 bytes, a CryptoKey, or `{ id, key }`). */
  encryptionKey?: EncryptionKeyInput | EncryptionKeyInput[];
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
  /** A service-account token (client credentials), cached per connection, scope set and resource/audience. */
  clientCredentials(options: ClientCredentialsOptions): Promise<AccessTokenResult>;
  /** RFC 8693 token exchange; never widens scopes. The issued token is cached per subject token, actor token, audience, resource and scope set (see `exchangeCache`). */
  exchange(options: TokenExchangeOptions): Promise<AccessTokenResult>;
  /** Store an API key as a connected account (non-OAuth providers). */
  setApiKey(options: SetApiKeyOptions): Promise<ConnectedAccount>;
  /** The validated connection ids. */
  readonly connections: readonly string[];
}

const optionsSchema = z.object({
  store: z.custom<Keyv | KeyValueStore>((v) => v === undefined || (typeof v === 'object' && v !== null), 'must be a Keyv instance or a KeyValueStore').optional(),
  encryptionKey: z.unknown().optional(),
  connections: z.array(connectionSchema).min(1),
  audit: z.custom<AuditSink>((v) => v === undefined || typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'), 'must be a function or an object with write()').optional(),
  fetch: z.custom<typeof fetch>((v) => v === undefined || typeof v === 'function', 'must be a function').optional(),
  timeoutMs: z.number().int().min(1).max(300_000).default(10_000),
  retries: z.number().int().min(0).max(10).default(2),
  refreshSkewSeconds: z.number().min(0).max(86_400).default(60),
  stateTtlSeconds: z.number().int().min(1).max(86_400).default(600),
  storeTimeoutMs: z.number().int().min(1).max(300_000).default(5000),
  cacheSize: z.number().int().min(0).max(1_000_000).default(1000),
  cacheTtlSeconds: z.number().min(0).max(3600).default(30),
  exchangeCache: z.union([z.boolean(), z.number().int().min(0).max(1_000_000)]).optional(),
});

const USER_ID_MAX = 1024;
const LOCK_SETTLE_MS = 25;

/**
 * Key of the in-process token cache. Connection ids and owner ids never contain control characters
 * (validated before anything is cached), so NUL-separated parts cannot collide.
 */
function hotKey(connection: string, type: 'u' | 'o', id: string): string {
  return connection + '\u0000' + type + '\u0000' + id;
}

/** A bounded map of decrypted tokens; the oldest entry goes first when full (no reordering on hits). */
class HotCache {
  readonly #max: number;
  readonly #map = new Map<string, CachedToken>();
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): CachedToken | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: CachedToken): void {
    this.#map.delete(key);
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, value);
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
}

interface CachedToken {
  result: AccessTokenResult;
  /** Serve until this time (the earlier of refresh time and the cache TTL). */
  until: number;
}

function badRequest(field: string, why: string): AgentIamError {
  return new AgentIamError('REQUEST_INVALID', `Invalid ${field}: ${why}`, { field });
}

function checkId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '' || value.length > USER_ID_MAX || /[\u0000-\u001f\u007f]/.test(value)) {
    throw badRequest(field, 'must be a non-empty string without control characters');
  }
  return value;
}

/** A store whose encryptor is created once (createEncryptor may be async). */
function lazySecureStore(base: KeyValueStore, encryptor: Promise<Encryptor> | Encryptor | undefined): KeyValueStore {
  if (encryptor === undefined) return createSecureStore(base);
  if (!(encryptor instanceof Promise)) return createSecureStore(base, encryptor);
  let ready: KeyValueStore | undefined;
  const pending = encryptor.then((e) => (ready = createSecureStore(base, e)));
  pending.catch(() => {});
  const get = async (): Promise<KeyValueStore> => ready ?? (await pending);
  return {
    async get<T>(key: string) {
      return (ready ?? (await get())).get<T>(key);
    },
    async set(key: string, value: unknown, ttlMs?: number) {
      return (ready ?? (await get())).set(key, value, ttlMs);
    },
    async delete(key: string) {
      return (ready ?? (await get())).delete(key);
    },
  };
}

/**
 * Create a token manager.
 *
 * @example
 * ```ts
 * import { createTokenManager, connectionPresets } from 'agent-iam';
 *
 * const tokens = createTokenManager({
 *   encryptionKey: process.env.AGENT_IAM_KEY,            // base64url of 32 random bytes
 *   connections: [
 *     { id: 'github', ...connectionPresets.github(), clientId, clientSecret, redirectUri: 'https://app.example.com/cb' },
 *     { id: 'corp', issuer: 'https://idp.example.com', clientId, clientSecret, redirectUri },
 *   ],
 * });
 * const { url } = await tokens.startAuthorization({ connection: 'github', userId: 'alice' });
 * // ... user consents, the callback hits your server:
 * await tokens.completeAuthorization(request.url);
 * const { accessToken } = await tokens.getAccessToken({ connection: 'github', userId: 'alice' });
 * ```
 */
export function createTokenManager(options: TokenManagerOptions): TokenManager {
  const o = parseOptions(optionsSchema, options);
  const connections = o.connections as Connection[];
  checkConnections(connections);
  let encryptor: Promise<Encryptor> | Encryptor | undefined;
  if (o.encryptionKey !== undefined) {
    try {
      encryptor = createEncryptor(o.encryptionKey as EncryptionKeyInput | EncryptionKeyInput[]);
    } catch (e) {
      if (isAgentIamError(e) && e.code === 'CONFIG_INVALID') throw e;
      throw new AgentIamError('CONFIG_INVALID', 'Invalid option encryptionKey', { field: 'encryptionKey' });
    }
  }
  const base = createKeyValueStore(o.store, { timeoutMs: o.storeTimeoutMs });
  const store = lazySecureStore(base, encryptor);
  return new Manager(o, connections, store);
}

type ParsedOptions = z.output<typeof optionsSchema>;

class Manager implements TokenManager {
  readonly connections: readonly string[];
  readonly #byId = new Map<string, Connection>();
  readonly #rt: Runtime;
  readonly #servers = new Map<string, Promise<ServerInfo>>();
  readonly #clients = new Map<string, Promise<ClientInfo>>();
  readonly #cache: HotCache | undefined;
  readonly #cacheTtlMs: number;
  readonly #refreshFlight = new SingleFlight<AccountRecord>();
  readonly #readFlight = new SingleFlight<AccessTokenResult | undefined>();
  readonly #cc: ClientCredentialsCache;
  readonly #exchanger: TokenExchanger;
  readonly #instance = randomToken(9);

  constructor(o: ParsedOptions, connections: Connection[], store: KeyValueStore) {
    for (const c of connections) this.#byId.set(c.id, c);
    this.connections = Object.freeze(connections.map((c) => c.id));
    const http: HttpSettings = { timeoutMs: o.timeoutMs, retries: o.retries };
    if (o.fetch !== undefined) http.fetch = o.fetch;
    this.#cache = o.cacheSize > 0 ? new HotCache(o.cacheSize) : undefined;
    this.#cacheTtlMs = o.cacheTtlSeconds * 1000;
    this.#cc = new ClientCredentialsCache(Math.max(1, Math.min(o.cacheSize, 1000)));
    const ex = o.exchangeCache;
    this.#exchanger = new TokenExchanger(ex === undefined ? (o.cacheSize > 0 ? 1000 : 0) : ex === true ? 1000 : ex === false ? 0 : ex);
    const self = this;
    this.#rt = {
      http,
      store,
      audit: o.audit,
      refreshSkewMs: o.refreshSkewSeconds * 1000,
      stateTtlMs: o.stateTtlSeconds * 1000,
      connection: (id) => self.#connection(id),
      server: (c) => self.#server(c),
      withClient: (c, fn, reRegister = true) => self.#withClient(c, fn, reRegister),
    };
  }

  // ---- connections, servers, clients -------------------------------------------------------

  #connection(id: unknown): Connection {
    const c = typeof id === 'string' ? this.#byId.get(id) : undefined;
    if (c === undefined) throw badRequest('connection', 'no connection with this id is configured');
    return c;
  }

  #oauthConnection(id: unknown): Connection {
    const c = this.#connection(id);
    if (c.kind !== 'oauth2') throw badRequest('connection', 'this connection holds API keys only');
    return c;
  }

  #server(c: Connection): Promise<ServerInfo> {
    let p = this.#servers.get(c.id);
    if (p === undefined) {
      p = resolveServer(c, this.#rt.http);
      this.#servers.set(c.id, p);
      p.catch(() => this.#servers.delete(c.id));
    }
    return p;
  }

  #client(c: Connection, server: ServerInfo, force: boolean): Promise<ClientInfo> {
    let p = force ? undefined : this.#clients.get(c.id);
    if (p === undefined) {
      p = resolveClient(c, server, this.#rt.store, this.#rt.http, force);
      this.#clients.set(c.id, p);
      const mine = p;
      p.catch(() => {
        if (this.#clients.get(c.id) === mine) this.#clients.delete(c.id);
      });
    }
    return p;
  }

  async #withClient<T>(c: Connection, fn: (server: ServerInfo, client: ClientInfo) => Promise<T>, reRegister: boolean): Promise<T> {
    const server = await this.#server(c);
    const client = await this.#client(c, server, false);
    try {
      return await fn(server, client);
    } catch (e) {
      const err = toSafeError(e, 'token request');
      if (!(reRegister && client.dynamic && err.code === 'OAUTH_ERROR' && err.oauthError === 'invalid_client')) throw err;
      // The server forgot the registered client (or its secret expired): register again, once.
      const again = this.#clients.get(c.id) !== undefined && (await this.#clients.get(c.id)) !== client
        ? await this.#client(c, server, false)
        : await this.#client(c, server, true);
      return fn(server, again);
    }
  }

  // ---- authorization code ------------------------------------------------------------------

  async startAuthorization(options: StartAuthorizationOptions): Promise<StartAuthorizationResult> {
    const c = this.#oauthConnection(options?.connection);
    const userId = checkId(options.userId, 'userId');
    const owner: { userId: string; orgId?: string } = { userId };
    if (options.orgId !== undefined) owner.orgId = checkId(options.orgId, 'orgId');
    return startAuthorization(this.#rt, c, owner, options.scopes);
  }

  async completeAuthorization(callbackUrl: string | URL, options: CompleteAuthorizationOptions = {}): Promise<ConnectedAccount> {
    const started = Date.now();
    let done;
    try {
      done = await completeAuthorization(this.#rt, callbackUrl, options.expectedUserId);
    } catch (e) {
      const err = toSafeError(e, 'authorization');
      audit(this.#rt, { type: 'consent.complete', decision: err.code === 'OAUTH_ERROR' && err.oauthError === 'access_denied' ? 'deny' : 'error', code: err.code, durationMs: Date.now() - started });
      throw err;
    }
    const { record, userId } = done;
    const key = accountKey(record.connection, record.ownerType, record.ownerId);
    const prev = await this.#readRecord(key);
    const full: AccountRecord = { ...record, generation: (prev?.generation ?? 0) + 1, createdAt: prev?.createdAt ?? record.updatedAt };
    await this.#writeAccount(key, full, prev === undefined);
    audit(this.#rt, { type: 'consent.complete', userId, connection: record.connection, decision: 'allow', durationMs: Date.now() - started });
    audit(this.#rt, { type: 'token.issue', userId, connection: record.connection, decision: 'allow' });
    return toConnectedAccount(full);
  }

  // ---- store helpers -----------------------------------------------------------------------

  async #readRecord(key: string): Promise<AccountRecord | undefined> {
    const v = await this.#rt.store.get<unknown>(key);
    if (v === undefined || v === null) return undefined;
    if (!isAccountRecord(v)) throw new AgentIamError('STORE_UNAVAILABLE', 'A stored account record has an unexpected shape');
    return v;
  }

  async #writeAccount(key: string, record: AccountRecord, addToIndex: boolean): Promise<void> {
    await this.#rt.store.set(key, record);
    this.#cache?.delete(hotKey(record.connection, record.ownerType === 'user' ? 'u' : 'o', record.ownerId));
    if (addToIndex) await this.#addToIndex(record.ownerType, record.ownerId, record.connection);
  }

  async #addToIndex(ownerType: OwnerType, ownerId: string, connection: string): Promise<void> {
    const k = indexKey(ownerType, ownerId);
    const list = (await this.#rt.store.get<string[]>(k)) ?? [];
    if (!Array.isArray(list) || list.includes(connection)) return;
    await this.#rt.store.set(k, [...list, connection]);
  }

  // ---- access tokens -----------------------------------------------------------------------

  getAccessToken(options: AccountRef): Promise<AccessTokenResult> {
    // Hot path: one Map lookup in the bounded cache of decrypted tokens (no store read, no decrypt).
    if (this.#cache !== undefined && options !== null && typeof options === 'object') {
      const id = options.userId ?? options.orgId;
      if (typeof id === 'string') {
        const hit = this.#cache.get(hotKey(options.connection, options.userId !== undefined ? 'u' : 'o', id));
        if (hit !== undefined && Date.now() < hit.until) return Promise.resolve(hit.result);
      }
    }
    return this.#getAccessTokenSlow(options);
  }

  async #getAccessTokenSlow(options: AccountRef): Promise<AccessTokenResult> {
    const c = this.#connection(options.connection);
    const userId = options.userId === undefined ? undefined : checkId(options.userId, 'userId');
    const orgId = options.orgId === undefined ? undefined : checkId(options.orgId, 'orgId');
    if (userId === undefined && orgId === undefined) throw badRequest('userId', 'give userId or orgId');
    let userError: AgentIamError | undefined;
    if (userId !== undefined) {
      try {
        const r = await this.#tokenFor(c, 'user', userId);
        if (r !== undefined) return r;
      } catch (e) {
        if (!isAgentIamError(e) || e.code !== 'CONSENT_REQUIRED' || orgId === undefined) throw e;
        userError = e;
      }
    }
    if (orgId !== undefined) {
      try {
        const r = await this.#tokenFor(c, 'org', orgId);
        if (r !== undefined) return r;
      } catch (e) {
        if (userError === undefined || !isAgentIamError(e) || e.code !== 'CONSENT_REQUIRED') throw e;
      }
    }
    if (userError !== undefined) throw userError;
    throw await this.#consentRequired(c, userId, orgId, 'no connected account');
  }

  async #consentRequired(c: Connection, userId: string | undefined, orgId: string | undefined, why: string): Promise<AgentIamError> {
    audit(this.#rt, { type: 'consent.required', userId, connection: c.id, decision: 'consent', code: 'CONSENT_REQUIRED' });
    if (userId !== undefined && supportsAuthorizationCode(c)) {
      try {
        const start: StartAuthorizationOptions = { connection: c.id, userId };
        const { url } = await this.startAuthorization(start);
        return new AgentIamError('CONSENT_REQUIRED', `Consent required for connection ${c.id}: ${why}`, { authorizationUrl: url });
      } catch {
        // The server cannot be reached to build a URL right now: still say that consent is needed.
      }
    }
    if (c.kind === 'apiKey') return new AgentIamError('CONSENT_REQUIRED', `Connection ${c.id} needs an API key: ${why}`);
    return new AgentIamError('CONSENT_REQUIRED', `Consent required for connection ${c.id}: ${why}`);
  }

  #resultOf(r: AccountRecord): AccessTokenResult {
    const result: AccessTokenResult = {
      accessToken: r.accessToken as string,
      tokenType: r.kind === 'apiKey' ? 'api_key' : (r.tokenType ?? 'bearer'),
      scopes: r.scopes,
    };
    if (r.expiresAt !== undefined) result.expiresAt = r.expiresAt;
    return Object.freeze(result);
  }

  #remember(r: AccountRecord, result: AccessTokenResult): void {
    if (this.#cache === undefined) return;
    const key = hotKey(r.connection, r.ownerType === 'user' ? 'u' : 'o', r.ownerId);
    const now = Date.now();
    let until = now + this.#cacheTtlMs;
    if (r.expiresAt !== undefined) until = Math.min(until, r.expiresAt - this.#rt.refreshSkewMs);
    if (until > now) this.#cache.set(key, { result, until });
  }

  /** Active with an access token that has not expired (possibly inside the refresh skew). */
  #usable(r: AccountRecord, now: number): boolean {
    return r.status === 'active' && r.accessToken !== undefined && (r.expiresAt === undefined || now < r.expiresAt);
  }

  #fresh(r: AccountRecord, now: number): boolean {
    return r.status === 'active' && r.accessToken !== undefined && (r.expiresAt === undefined || now < r.expiresAt - this.#rt.refreshSkewMs);
  }

  /** The token of one account; undefined when there is no account. Concurrent callers share one read. */
  #tokenFor(c: Connection, ownerType: OwnerType, ownerId: string): Promise<AccessTokenResult | undefined> {
    const key = accountKey(c.id, ownerType, ownerId);
    return this.#readFlight.run(key, () => this.#tokenForKey(c, key, ownerType, ownerId));
  }

  async #tokenForKey(c: Connection, key: string, ownerType: OwnerType, ownerId: string): Promise<AccessTokenResult | undefined> {
    const r = await this.#readRecord(key);
    if (r === undefined) return undefined;
    const userId = ownerType === 'user' ? ownerId : undefined;
    const orgId = ownerType === 'org' ? ownerId : undefined;
    const now = Date.now();
    if (r.status === 'revoked' || r.status === 'needs_consent' || r.accessToken === undefined) {
      throw await this.#consentRequired(c, userId, orgId, `the account is ${r.status}`);
    }
    if (this.#fresh(r, now)) {
      const result = this.#resultOf(r);
      this.#remember(r, result);
      return result;
    }
    if (r.refreshToken === undefined) {
      if (r.expiresAt !== undefined && r.expiresAt > now) return this.#resultOf(r); // inside the skew, still valid
      throw await this.#consentRequired(c, userId, orgId, `the account is ${effectiveStatus(r, now)}`);
    }
    const next = await this.#refreshFlight.run(key, () => this.#refresh(c, key, r, userId, orgId));
    const result = this.#resultOf(next);
    this.#remember(next, result);
    return result;
  }

  /**
   * One refresh of one account. Re-reads the store first (another process may have refreshed),
   * takes a best-effort store lock so that processes sharing a store rarely refresh twice, writes
   * only if the generation it read is still current, and stores a rotated refresh token before the
   * new access token is handed out.
   */
  async #refresh(c: Connection, key: string, seen: AccountRecord, userId: string | undefined, orgId: string | undefined, retried = false): Promise<AccountRecord> {
    let current = (await this.#readRecord(key)) ?? seen;
    if (current.generation !== seen.generation && this.#fresh(current, Date.now())) return current;
    const lock = await this.#lock(key, current);
    if (lock.record !== undefined) return lock.record;
    current = lock.current;
    if (this.#fresh(current, Date.now())) {
      await this.#unlock(key);
      return current;
    }
    if (current.refreshToken === undefined || current.status !== 'active') {
      await this.#unlock(key);
      throw await this.#consentRequired(c, userId, orgId, `the account is ${effectiveStatus(current, Date.now())}`);
    }
    const refreshToken = current.refreshToken;
    const started = Date.now();
    try {
      const tokens = await this.#rt.withClient(c, (server, client) =>
        withRetry(this.#rt.http, 'refresh', async (signal) => {
          const res = await oauth.refreshTokenGrantRequest(server.as, client.client, client.auth, refreshToken, {
            ...requestOptions(this.#rt.http, signal, server.insecure),
            additionalParameters: { ...c.tokenParams, ...(c.resource !== undefined && c.sendResource !== false ? { resource: c.resource } : {}) },
          });
          const types = recognizedTokenTypes(c.tokenTypes);
          return oauth.processRefreshTokenResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {});
        }),
      );
      const now = Date.now();
      const next: AccountRecord = {
        ...current,
        status: 'active',
        accessToken: tokens.access_token,
        tokenType: tokens.token_type,
        // A refresh answer without refresh_token keeps the old one.
        refreshToken: tokens.refresh_token ?? refreshToken,
        scopes: splitScopes(tokens.scope, c.scopeSeparator) ?? current.scopes,
        generation: current.generation + 1,
        updatedAt: now,
      };
      if (typeof tokens.expires_in === 'number') next.expiresAt = now + tokens.expires_in * 1000;
      else delete next.expiresAt;
      const latest = await this.#readRecord(key);
      if (latest !== undefined && latest.generation !== current.generation && this.#usable(latest, now)) {
        // Someone else wrote meanwhile: their record wins; ours is dropped.
        audit(this.#rt, { type: 'token.refresh', userId, connection: c.id, decision: 'allow', durationMs: now - started });
        return latest;
      }
      await this.#writeAccount(key, next, false); // rotated refresh token stored before the access token is returned
      audit(this.#rt, { type: 'token.refresh', userId, connection: c.id, decision: 'allow', durationMs: now - started });
      return next;
    } catch (e) {
      const err = toSafeError(e, 'refresh');
      audit(this.#rt, { type: 'token.refresh', userId, connection: c.id, decision: 'error', code: err.code, durationMs: Date.now() - started });
      if (err.code === 'OAUTH_ERROR' && err.oauthError === 'invalid_grant') {
        // Another process may have rotated the refresh token: use what it stored.
        const latest = await this.#readRecord(key);
        if (latest !== undefined && latest.generation !== current.generation) {
          if (this.#usable(latest, Date.now())) return latest;
          if (retried === false && latest.status === 'active' && latest.refreshToken !== undefined && latest.refreshToken !== refreshToken) {
            return this.#refresh(c, key, latest, userId, orgId, true);
          }
        }
        if (latest !== undefined && latest.generation === current.generation) {
          const marked: AccountRecord = { ...latest, status: 'needs_consent', generation: latest.generation + 1, updatedAt: Date.now() };
          delete marked.accessToken;
          delete marked.refreshToken;
          await this.#writeAccount(key, marked, false);
        }
        if (supportsAuthorizationCode(c)) throw await this.#consentRequired(c, userId, orgId, 'the authorization server no longer accepts the refresh token');
        throw err;
      }
      throw err; // transient or other: the stored account is untouched
    } finally {
      await this.#unlock(key).catch(() => {});
    }
  }

  #lockKey(key: string): string {
    return storeKey('lock', key);
  }

  /**
   * A best-effort cross-process lock in the store (Keyv has no compare-and-set): take it when free,
   * else wait for the holder's write (a new generation) or the lock's expiry.
   */
  async #lock(key: string, current: AccountRecord): Promise<{ record?: AccountRecord; current: AccountRecord }> {
    const lk = this.#lockKey(key);
    const ttl = this.#rt.http.timeoutMs + 1000;
    const deadline = Date.now() + ttl;
    for (;;) {
      const held = await this.#rt.store.get<{ owner: string; until: number }>(lk);
      if (held === undefined || held === null || held.until <= Date.now() || held.owner === this.#instance) {
        await this.#rt.store.set(lk, { owner: this.#instance, until: Date.now() + ttl }, ttl);
        // Two takers can both read "free" and both write: the last write wins. Wait a moment and
        // check again, so the earlier writer sees it was overwritten and backs off.
        await sleep(LOCK_SETTLE_MS);
        const confirm = await this.#rt.store.get<{ owner: string }>(lk);
        if (confirm?.owner === this.#instance) {
          const latest = (await this.#readRecord(key)) ?? current;
          return { current: latest };
        }
      }
      await sleep(25 + Math.random() * 25);
      const latest = await this.#readRecord(key);
      if (latest !== undefined && latest.generation !== current.generation) {
        if (this.#fresh(latest, Date.now()) || latest.status !== 'active') return { record: this.#fresh(latest, Date.now()) ? latest : undefined, current: latest } as { record?: AccountRecord; current: AccountRecord };
        current = latest;
      }
      if (Date.now() > deadline) return { current: (await this.#readRecord(key)) ?? current };
    }
  }

  async #unlock(key: string): Promise<void> {
    const lk = this.#lockKey(key);
    const held = await this.#rt.store.get<{ owner: string }>(lk);
    if (held?.owner === this.#instance) await this.#rt.store.delete(lk);
  }

  // ---- accounts ----------------------------------------------------------------------------

  async getAccount(options: AccountRef): Promise<ConnectedAccount | undefined> {
    const c = this.#connection(options?.connection);
    if (options.userId !== undefined) {
      const r = await this.#readRecord(accountKey(c.id, 'user', checkId(options.userId, 'userId')));
      if (r !== undefined || options.orgId === undefined) return r && toConnectedAccount(r);
    }
    if (options.orgId !== undefined) {
      const r = await this.#readRecord(accountKey(c.id, 'org', checkId(options.orgId, 'orgId')));
      return r && toConnectedAccount(r);
    }
    throw badRequest('userId', 'give userId or orgId');
  }

  async listAccounts(owner: string | ListAccountsFilter): Promise<ConnectedAccount[]> {
    const filter: ListAccountsFilter = typeof owner === 'string' ? { userId: owner } : (owner ?? {});
    const out: ConnectedAccount[] = [];
    const owners: Array<[OwnerType, string]> = [];
    if (filter.userId !== undefined) owners.push(['user', checkId(filter.userId, 'userId')]);
    if (filter.orgId !== undefined) owners.push(['org', checkId(filter.orgId, 'orgId')]);
    if (owners.length === 0) throw badRequest('userId', 'give userId or orgId');
    for (const [type, id] of owners) {
      const list = (await this.#rt.store.get<string[]>(indexKey(type, id))) ?? [];
      for (const connection of Array.isArray(list) ? list : []) {
        if (!this.#byId.has(connection)) continue;
        const r = await this.#readRecord(accountKey(connection, type, id));
        if (r !== undefined) out.push(toConnectedAccount(r));
      }
    }
    return out;
  }

  async revoke(options: AccountRef): Promise<ConnectedAccount | undefined> {
    const c = this.#connection(options?.connection);
    const ownerType: OwnerType = options.userId !== undefined ? 'user' : 'org';
    const ownerId = checkId(options.userId ?? options.orgId, options.userId !== undefined ? 'userId' : 'orgId');
    const key = accountKey(c.id, ownerType, ownerId);
    const r = await this.#readRecord(key);
    if (r === undefined) return undefined;
    const started = Date.now();
    let code: string | undefined;
    if (c.kind === 'oauth2' && (r.refreshToken !== undefined || r.accessToken !== undefined)) {
      try {
        await this.#rt.withClient(c, async (server, client) => {
          if (server.as.revocation_endpoint === undefined) return;
          // Revoking the refresh token ends the grant (RFC 7009 §2.1); the access token is revoked
          // only when there is no refresh token (servers often cannot revoke JWT access tokens).
          const tokens: Array<[string, string]> = [];
          if (r.refreshToken !== undefined) tokens.push([r.refreshToken, 'refresh_token']);
          else if (r.accessToken !== undefined) tokens.push([r.accessToken, 'access_token']);
          for (const [token, hint] of tokens) {
            await withRetry(this.#rt.http, 'revocation', async (signal) => {
              const res = await oauth.revocationRequest(server.as, client.client, client.auth, token, {
                ...requestOptions(this.#rt.http, signal, server.insecure),
                additionalParameters: { token_type_hint: hint },
              });
              try {
                return await oauth.processRevocationResponse(res);
              } catch (e) {
                // unsupported_token_type: the server cannot revoke this kind of token; nothing to do.
                if (e instanceof oauth.ResponseBodyError && e.error === 'unsupported_token_type') return undefined;
                throw e;
              }
            });
          }
        });
      } catch (e) {
        code = toSafeError(e, 'revocation').code; // the local account is revoked regardless
      }
    }
    const now = Date.now();
    const next: AccountRecord = { ...r, status: 'revoked', generation: r.generation + 1, updatedAt: now };
    delete next.accessToken;
    delete next.refreshToken;
    await this.#writeAccount(key, next, false);
    audit(this.#rt, { type: 'token.revoke', userId: ownerType === 'user' ? ownerId : undefined, connection: c.id, decision: code === undefined ? 'allow' : 'error', ...(code !== undefined ? { code } : {}), durationMs: now - started });
    return toConnectedAccount(next, now);
  }

  async setApiKey(options: SetApiKeyOptions): Promise<ConnectedAccount> {
    const c = this.#connection(options?.connection);
    if (typeof options.key !== 'string' || options.key === '' || options.key.length > 8192 || /[\u0000-\u001f\u007f]/.test(options.key)) {
      throw badRequest('key', 'must be a non-empty string without control characters');
    }
    const ownerType: OwnerType = options.userId !== undefined ? 'user' : 'org';
    const ownerId = checkId(options.userId ?? options.orgId, options.userId !== undefined ? 'userId' : 'orgId');
    const key = accountKey(c.id, ownerType, ownerId);
    const prev = await this.#readRecord(key);
    const now = Date.now();
    const record: AccountRecord = {
      v: 1,
      connection: c.id,
      ownerType,
      ownerId,
      kind: 'apiKey',
      status: 'active',
      scopes: options.scopes ?? [],
      accessToken: options.key,
      generation: (prev?.generation ?? 0) + 1,
      createdAt: prev?.createdAt ?? now,
      updatedAt: now,
    };
    await this.#writeAccount(key, record, prev === undefined);
    audit(this.#rt, { type: 'token.issue', userId: ownerType === 'user' ? ownerId : undefined, connection: c.id, decision: 'allow' });
    return toConnectedAccount(record, now);
  }

  // ---- service tokens ----------------------------------------------------------------------

  clientCredentials(options: ClientCredentialsOptions): Promise<AccessTokenResult> {
    const c = this.#oauthConnection(options?.connection);
    return this.#cc.get(this.#rt, c, options);
  }

  async exchange(options: TokenExchangeOptions): Promise<AccessTokenResult> {
    const c = this.#oauthConnection(options?.connection);
    if (!Array.isArray(options.scopes)) throw badRequest('scopes', 'must be an array');
    return this.#exchanger.exchange(this.#rt, c, options);
  }

  /** @internal toolFetch calls this when a tool answered 401 to a cached service token. */
  [DROP_REJECTED_TOKEN](request: RejectedTokenRequest, accessToken: string): boolean {
    try {
      const c = this.#oauthConnection(request.options?.connection);
      return request.kind === 'clientCredentials' ? this.#cc.drop(c, request.options, accessToken) : this.#exchanger.drop(c, request.options, accessToken);
    } catch {
      return false;
    }
  }
}
