/**
 * The token manager: connected accounts per user or organisation (authorization code + PKCE),
 * refresh with rotation and single flight, client credentials, RFC 8693 token exchange, RFC 7009
 * revocation and API keys, in any Keyv store, encrypted at rest.
 *
 * @module
 */
import { AgentIamError, isAgentIamError, requestInvalid } from '../errors.js';
import { SingleFlight, sleep } from '../lib/async.js';
import { randomToken } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { createEncryptor, type EncryptionKeyInput, type Encryptor } from '../stores/encryption.js';
import { createKeyValueStore, type Store, storeKey } from '../stores/store.js';
import { type AccountRecord, accountKey, effectiveStatus, indexKey, isAccountRecord, legacyIndexKey, type OwnerType, splitScopes, toConnectedAccount } from './accounts.js';
import { EnterpriseTokens, type EnterpriseTokenOptions } from './id-jag.js';
import { completeAuthorization, startAuthorization, unionScopes } from './authorization-code.js';
import { ClientCredentialsCache } from './client-credentials.js';
import { checkConnections, type Connection, supportsAuthorizationCode } from './connections.js';
import { resolveServer, type ServerInfo } from './discovery.js';
import { checkedTokens, type HttpSettings, oauthError, recognizedTokenTypes, requestOptions, toSafeError, withRetry } from './http.js';
import { type ClientInfo, connectionSecret, resolveClient } from './registration.js';
import { takeLease } from './lease.js';
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
  RejectedTokenRequest,
} from './types.js';
import { DROP_REJECTED_TOKEN, RESOURCE_CHALLENGE, type ResourceChallengeHooks } from './types.js';
import { parseBearerChallenge } from './challenge.js';
import * as oauth from 'oauth4webapi';
import { nowMs } from '../lib/clock.js';
import { lazySecureStore, rotatingSecureStore } from './encrypted-store.js';
import { HotCache, hotKey } from './hot-cache.js';
import { optionsSchema, type CompleteAuthorizationOptions, type ListAccountsFilter, type ParsedOptions, type SetApiKeyOptions, type TokenManager, type TokenManagerOptions } from './manager-api.js';


const USER_ID_MAX = 1024;

/** A refreshed account not yet in the store: `base` is the version it must replace. */
interface Unsaved {
  record: AccountRecord;
  base: string;
}


function badRequest(field: string, why: string): AgentIamError {
  return requestInvalid(`Invalid ${field}: ${why}`, { field });
}

function checkId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '' || value.length > USER_ID_MAX || /[\u0000-\u001f\u007f]/.test(value)) {
    throw badRequest(field, 'must be a non-empty string without control characters');
  }
  return value;
}


/**
 * The scopes to ask for again when an account needs consent: what it was granted (so a stepped-up
 * account does not fall back to the resource's base scopes), unless the user revoked it; none known:
 * the default selection (challenge, then the resource's metadata).
 */
function priorScopes(r: AccountRecord): string[] | undefined {
  return r.status === 'revoked' || r.scopes.length === 0 ? undefined : r.scopes;
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
  const base = createKeyValueStore(o.store, { timeoutMs: o.storeTimeoutMs });
  const source = o.encryptionKey as unknown;
  if (typeof source === 'function' || (typeof source === 'object' && source !== null && !Array.isArray(source) && typeof (source as { load?: unknown }).load === 'function')) {
    const load = (typeof source === 'function' ? source : (source as { load: unknown }).load) as () => Promise<EncryptionKeyInput | EncryptionKeyInput[]>;
    const ttl = typeof source === 'object' ? (source as { ttlSeconds?: unknown }).ttlSeconds : undefined;
    if (ttl !== undefined && (typeof ttl !== 'number' || !(ttl >= 0 && ttl <= 86_400))) throw new AgentIamError('CONFIG_INVALID', 'Invalid option encryptionKey.ttlSeconds: 0 to 86400', { field: 'encryptionKey.ttlSeconds' });
    return new Manager(o, connections, rotatingSecureStore(base, load, ((ttl as number | undefined) ?? 300) * 1000), base);
  }
  let encryptor: Promise<Encryptor> | Encryptor | undefined;
  if (o.encryptionKey !== undefined) {
    try {
      encryptor = createEncryptor(o.encryptionKey as EncryptionKeyInput | EncryptionKeyInput[]);
    } catch (e) {
      if (isAgentIamError(e) && e.code === 'CONFIG_INVALID') throw e;
      throw new AgentIamError('CONFIG_INVALID', 'Invalid option encryptionKey', { field: 'encryptionKey' });
    }
  }
  const store = lazySecureStore(base, encryptor);
  return new Manager(o, connections, store, base);
}


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
  readonly #enterprise: EnterpriseTokens;
  readonly #instance = randomToken(9);
  /** What each `resource` connection's resource said in its 401 (per process; the resource decides). */
  readonly #challenges = new Map<string, { metadataUrl?: string; scopes?: string[] }>();
  /** Connections whose discovery has succeeded once. */
  readonly #discovered = new Set<string>();
  readonly [RESOURCE_CHALLENGE]: ResourceChallengeHooks = {
    wantsProbe: (connection) => {
      const c = this.#byId.get(connection);
      return c !== undefined && c.kind === 'oauth2' && c.resource !== undefined && c.tokenEndpoint === undefined && c.issuer === undefined && c.probeResource === true;
    },
    challenge: (connection, header) => {
      const c = this.#byId.get(connection);
      if (c === undefined || c.resource === undefined) return;
      const parsed = parseBearerChallenge(header);
      const prev = this.#challenges.get(c.id);
      const next: { metadataUrl?: string; scopes?: string[] } = {};
      if (parsed.resourceMetadata !== undefined) next.metadataUrl = parsed.resourceMetadata;
      if (parsed.scopes !== undefined) next.scopes = parsed.scopes;
      this.#challenges.set(c.id, next);
      // A discovery that failed without the challenge's metadata URL is tried again with it.
      if (next.metadataUrl !== undefined && next.metadataUrl !== prev?.metadataUrl && !this.#discovered.has(c.id)) this.#servers.delete(c.id);
    },
  };
  readonly #storeTimeoutMs: number;
  /** Rotated tokens the store has not taken yet (its write failed); served and retried meanwhile. */
  readonly #unsaved = new Map<string, Unsaved>();

  constructor(o: ParsedOptions, connections: Connection[], store: Store, shared: Store) {
    for (const c of connections) this.#byId.set(c.id, c);
    this.#storeTimeoutMs = o.storeTimeoutMs;
    this.connections = Object.freeze(connections.map((c) => c.id));
    const http: HttpSettings = { timeoutMs: o.timeoutMs, retries: o.retries, maxResponseBytes: o.maxResponseBytes };
    if (o.fetch !== undefined) http.fetch = o.fetch;
    this.#cache = o.cacheSize > 0 ? new HotCache(o.cacheSize) : undefined;
    this.#cacheTtlMs = o.cacheTtlSeconds * 1000;
    this.#cc = new ClientCredentialsCache(Math.max(1, Math.min(o.cacheSize, 1000)));
    this.#enterprise = new EnterpriseTokens(Math.max(1, Math.min(o.cacheSize, 1000)));
    const ex = o.exchangeCache;
    this.#exchanger = new TokenExchanger(ex === undefined ? (o.cacheSize > 0 ? 1000 : 0) : ex === true ? 1000 : ex === false ? 0 : ex);
    const self = this;
    this.#rt = {
      http,
      store,
      shared,
      // The slowest refresh (one protocol call with its retries) plus the two store calls around it.
      leaseTtlMs: o.timeoutMs + 2 * o.storeTimeoutMs + 5000,
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
      p = resolveServer(c, this.#rt.http, this.#challenges.get(c.id)?.metadataUrl);
      this.#servers.set(c.id, p);
      p.then(
        // A fallback (no protected resource metadata found) stays open to the resource's own challenge.
        (info) => {
          if (info.legacy !== true) this.#discovered.add(c.id);
        },
        () => this.#servers.delete(c.id),
      );
    }
    return p;
  }

  #client(c: Connection, server: ServerInfo, failedClientId?: string): Promise<ClientInfo> {
    let p = failedClientId !== undefined ? undefined : this.#clients.get(c.id);
    if (p === undefined) {
      p = resolveClient(c, server, this.#rt, this.#rt.http, failedClientId);
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
    const client = await this.#client(c, server);
    try {
      return await fn(server, client);
    } catch (e) {
      const err = toSafeError(e, 'token request');
      if (err.code === 'OAUTH_ERROR' && err.oauthError === 'invalid_client' && !client.dynamic) {
        // A client secret from a secret manager may have been rotated: read it again and try once more.
        const secret = connectionSecret(c);
        if (!reRegister || secret === undefined || !secret.loaded) throw err;
        secret.reload();
        return fn(server, client);
      }
      if (!(reRegister && client.dynamic && err.code === 'OAUTH_ERROR' && err.oauthError === 'invalid_client')) throw err;
      // The server forgot the registered client (or its secret expired): register again, once,
      // unless this process or another one already has (then the stored client is a new one).
      const latest = this.#clients.get(c.id);
      const again = latest !== undefined && (await latest.catch(() => client)) !== client
        ? await latest
        : await this.#client(c, server, client.client.client_id);
      return fn(server, again);
    }
  }

  // ---- authorization code ------------------------------------------------------------------

  async startAuthorization(options: StartAuthorizationOptions): Promise<StartAuthorizationResult> {
    const c = this.#oauthConnection(options?.connection);
    const userId = checkId(options.userId, 'userId');
    const owner: { userId: string; orgId?: string } = { userId };
    if (options.orgId !== undefined) owner.orgId = checkId(options.orgId, 'orgId');
    // No scopes asked for: what the resource's challenge named comes before its metadata's list.
    return startAuthorization(this.#rt, c, owner, options.scopes ?? this.#challenges.get(c.id)?.scopes);
  }

  async completeAuthorization(callbackUrl: string | URL, options: CompleteAuthorizationOptions = {}): Promise<ConnectedAccount> {
    const started = nowMs();
    let done;
    try {
      done = await completeAuthorization(this.#rt, callbackUrl, options.expectedUserId);
    } catch (e) {
      const err = toSafeError(e, 'authorization');
      audit(this.#rt, { type: 'consent.complete', decision: err.code === 'OAUTH_ERROR' && err.oauthError === 'access_denied' ? 'deny' : 'error', code: err.code, durationMs: nowMs() - started });
      throw err;
    }
    const { record, userId } = done;
    const key = accountKey(record.connection, record.ownerType, record.ownerId);
    const full = (await this.#update(key, (prev) => ({ ...record, generation: (prev?.generation ?? 0) + 1, createdAt: prev?.createdAt ?? record.updatedAt }))) as AccountRecord;
    await this.#rt.shared.indexAdd(indexKey(record.ownerType, record.ownerId), record.connection);
    audit(this.#rt, { type: 'consent.complete', userId, connection: record.connection, decision: 'allow', durationMs: nowMs() - started });
    audit(this.#rt, { type: 'token.issue', userId, connection: record.connection, decision: 'allow' });
    return toConnectedAccount(full);
  }

  // ---- store helpers -----------------------------------------------------------------------

  async #readRecord(key: string): Promise<AccountRecord | undefined> {
    return (await this.#readVersioned(key))?.record;
  }

  async #readVersioned(key: string): Promise<{ record: AccountRecord; version: string } | undefined> {
    const v = await this.#rt.store.getVersioned<unknown>(key);
    if (v === undefined || v.value === undefined || v.value === null) return undefined;
    if (!isAccountRecord(v.value)) throw new AgentIamError('STORE_UNAVAILABLE', 'A stored account record has an unexpected shape', { reason: 'malformed' });
    return { record: v.value, version: v.version };
  }

  #forget(r: AccountRecord): void {
    this.#cache?.delete(hotKey(r.connection, r.ownerType === 'user' ? 'u' : 'o', r.ownerId));
  }

  /**
   * Change one account with compare-and-set on its version: read, compute, write only over what was
   * read; on a lost race read again and recompute (bounded). `change` returning undefined writes
   * nothing. Returns what is stored afterwards.
   */
  async #update(key: string, change: (prev: AccountRecord | undefined) => AccountRecord | undefined): Promise<AccountRecord | undefined> {
    for (let attempt = 0; attempt < 16; attempt++) {
      const cur = await this.#readVersioned(key);
      const next = change(cur?.record);
      if (next === undefined) return cur?.record;
      if (await this.#rt.store.compareAndSet(key, cur?.version ?? null, next)) {
        this.#unsaved.delete(key);
        this.#forget(next);
        return next;
      }
      await sleep(Math.random() * 10 * (attempt + 1));
    }
    throw new AgentIamError('STORE_UNAVAILABLE', 'The account is being changed by others; try again', { reason: 'contended' });
  }

  // ---- access tokens -----------------------------------------------------------------------

  getAccessToken(options: AccountRef): Promise<AccessTokenResult> {
    // Hot path: one Map lookup in the bounded cache of decrypted tokens (no store read, no decrypt).
    if (this.#cache !== undefined && options !== null && typeof options === 'object') {
      const id = options.userId ?? options.orgId;
      if (typeof id === 'string') {
        const hit = this.#cache.get(hotKey(options.connection, options.userId !== undefined ? 'u' : 'o', id));
        if (hit !== undefined && nowMs() < hit.until) return Promise.resolve(hit.result);
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

  async #consentRequired(c: Connection, userId: string | undefined, orgId: string | undefined, why: string, scopes?: string[]): Promise<AgentIamError> {
    audit(this.#rt, { type: 'consent.required', userId, connection: c.id, decision: 'consent', code: 'CONSENT_REQUIRED' });
    if (userId !== undefined && supportsAuthorizationCode(c)) {
      try {
        const start: StartAuthorizationOptions = { connection: c.id, userId };
        // Consent again for what the account held, plus what the resource's challenge asks now.
        if (scopes !== undefined) start.scopes = unionScopes(scopes, this.#challenges.get(c.id)?.scopes ?? []);
        const { url } = await this.startAuthorization(start);
        return new AgentIamError('CONSENT_REQUIRED', `Consent required for connection ${c.id}: ${why}`, { authorizationUrl: url, connection: c.id });
      } catch (e) {
        // No URL can be built right now. Still say that consent is needed, and why there is no URL:
        // `reason` names the failure's code and `cause` (not enumerable) holds the error itself.
        const err = toSafeError(e, 'authorization');
        const detail = err.code === 'OAUTH_ERROR' && err.oauthError !== undefined ? `${err.code} (${err.oauthError})` : err.code;
        return new AgentIamError('CONSENT_REQUIRED', `Consent required for connection ${c.id}: ${why}; no authorization URL: ${detail}`, { reason: `authorization_start_failed:${err.code}`, cause: err, connection: c.id });
      }
    }
    if (c.kind === 'apiKey') return new AgentIamError('CONSENT_REQUIRED', `Connection ${c.id} needs an API key: ${why}`, { connection: c.id });
    return new AgentIamError('CONSENT_REQUIRED', `Consent required for connection ${c.id}: ${why}`, { connection: c.id });
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
    const now = nowMs();
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
    // A rotated token whose store write is still being retried is newer than what the store holds.
    const r = this.#unsaved.get(key)?.record ?? (await this.#readRecord(key));
    if (r === undefined) return undefined;
    const userId = ownerType === 'user' ? ownerId : undefined;
    const orgId = ownerType === 'org' ? ownerId : undefined;
    const now = nowMs();
    if (r.status === 'revoked' || r.status === 'needs_consent' || r.accessToken === undefined) {
      throw await this.#consentRequired(c, userId, orgId, `the account is ${r.status}`, priorScopes(r));
    }
    if (this.#fresh(r, now)) {
      const result = this.#resultOf(r);
      this.#remember(r, result);
      return result;
    }
    if (r.refreshToken === undefined) {
      if (r.expiresAt !== undefined && r.expiresAt > now) return this.#resultOf(r); // inside the skew, still valid
      throw await this.#consentRequired(c, userId, orgId, `the account is ${effectiveStatus(r, now)}`, priorScopes(r));
    }
    const next = await this.#refreshFlight.run(key, () => this.#refresh(c, key, r, userId, orgId));
    const result = this.#resultOf(next);
    this.#remember(next, result);
    return result;
  }

  /**
   * What the store holds for an account, or the refreshed account this process could not store yet
   * when the store still holds the version it replaces (that one is newer).
   */
  async #current(key: string): Promise<{ record: AccountRecord; version: string } | undefined> {
    const u = this.#unsaved.get(key);
    let stored;
    try {
      stored = await this.#readVersioned(key);
    } catch (e) {
      if (u !== undefined) return { record: u.record, version: u.base };
      throw e;
    }
    if (u !== undefined) {
      if (stored?.version === u.base) return { record: u.record, version: u.base };
      if (this.#unsaved.get(key) === u) this.#unsaved.delete(key); // the store moved on
    }
    return stored;
  }

  /**
   * Write a refreshed account over version `base`. `written`: it is in the store (also when an
   * earlier attempt that timed out landed after all); `lost`: the store holds something newer;
   * `unavailable`: the store did not answer, try again.
   */
  async #save(key: string, base: string, next: AccountRecord): Promise<'written' | 'lost' | 'unavailable'> {
    let ok: boolean | undefined;
    try {
      ok = await this.#rt.store.compareAndSet(key, base, next);
    } catch (e) {
      if (!isAgentIamError(e) || e.code !== 'STORE_UNAVAILABLE') throw e;
    }
    let outcome: 'written' | 'lost' | 'unavailable' = 'written';
    if (ok !== true) {
      try {
        const now = await this.#readVersioned(key);
        if (now !== undefined && now.record.generation === next.generation && now.record.accessToken === next.accessToken) outcome = 'written';
        else outcome = ok === false || now?.version !== base ? 'lost' : 'unavailable';
      } catch {
        outcome = 'unavailable';
      }
    }
    if (outcome !== 'unavailable') {
      const u = this.#unsaved.get(key);
      if (u !== undefined && u.record === next) this.#unsaved.delete(key);
      this.#forget(next);
    }
    return outcome;
  }

  /** Retry storing a refreshed account while this process still holds the lease, then release it. */
  async #retrySave(key: string, lease: string, owner: string, until: number): Promise<void> {
    let wait = 100;
    try {
      while (nowMs() + wait < until) {
        await sleep(wait);
        wait = Math.min(wait * 2, 2000);
        const u = this.#unsaved.get(key);
        if (u === undefined) return;
        if ((await this.#save(key, u.base, u.record).catch(() => 'unavailable' as const)) !== 'unavailable') return;
      }
    } finally {
      await this.#rt.shared.deleteIfOwner(lease, owner).catch(() => false);
    }
  }

  /**
   * One refresh of one account, one at a time across every process on the store. A lease
   * (set-if-absent with an owner id, its TTL longer than the slowest refresh) decides who
   * refreshes; the others serve the still-valid token meanwhile, or wait for the new one. The
   * refreshed account is written with compare-and-set over the version read under the lease, so a
   * process whose lease ran out can never store over a newer refresh. A rotated refresh token is
   * never dropped because a store write failed: it is served from memory and the write retried
   * while the lease is held (see the README on stores for what is exact on which store).
   */
  async #refresh(c: Connection, key: string, seen: AccountRecord, userId: string | undefined, orgId: string | undefined, retried = false): Promise<AccountRecord> {
    const lease = storeKey('lease', key);
    const owner = `${this.#instance}.${randomToken(6)}`;
    const ttl = this.#rt.leaseTtlMs;
    const deadline = nowMs() + ttl + 1000;
    const patience = nowMs() + this.#rt.http.timeoutMs;
    const consent = (r: AccountRecord): Promise<AgentIamError> => this.#consentRequired(c, userId, orgId, `the account is ${effectiveStatus(r, nowMs())}`, priorScopes(r));
    let cur = await this.#current(key);
    if (cur === undefined) throw await this.#consentRequired(c, userId, orgId, 'no connected account');
    let leaseUntil = 0;
    for (;;) {
      const now = nowMs();
      if (this.#fresh(cur.record, now)) return cur.record;
      if (cur.record.status !== 'active' || cur.record.refreshToken === undefined) throw await consent(cur.record);
      if (await takeLease(this.#rt.shared, lease, owner, ttl)) {
        leaseUntil = now + ttl;
        break;
      }
      // Another process is refreshing: wait for its result (callers everywhere get the new token),
      // but a holder that takes longer than a refresh can take does not hold up a still-valid token.
      if (now > patience && this.#usable(cur.record, now)) return cur.record;
      if (now > deadline) throw new AgentIamError('TOKEN_ENDPOINT_UNAVAILABLE', `Connection ${c.id}: another process is refreshing this account and has not finished`);
      await sleep(15 + Math.random() * 35);
      cur = await this.#current(key);
      if (cur === undefined) throw await this.#consentRequired(c, userId, orgId, 'no connected account');
    }
    let keepLease = false;
    let again: AccountRecord | undefined;
    const started = nowMs();
    try {
      // Under the lease: what the store holds now is what the refresh replaces.
      const base = await this.#current(key);
      if (base === undefined) throw await this.#consentRequired(c, userId, orgId, 'no connected account');
      cur = base;
      if (this.#fresh(base.record, nowMs())) return base.record;
      const refreshToken = base.record.refreshToken;
      if (base.record.status !== 'active' || refreshToken === undefined) throw await consent(base.record);
      let tokens;
      try {
        const grantedBy = base.record.issuer;
        tokens = await this.#rt.withClient(c, (server, client) => {
          // Never send a refresh token to another authorization server than the one that issued it.
          if (grantedBy !== undefined && grantedBy !== server.as.issuer) {
            return Promise.reject(oauthError('refresh', 'invalid_grant', 'the account was granted by another authorization server'));
          }
          return withRetry(this.#rt.http, 'refresh', async (signal) => {
            const res = await oauth.refreshTokenGrantRequest(server.as, client.client, client.auth, refreshToken, {
              ...requestOptions(this.#rt.http, signal, server.insecure),
              additionalParameters: { ...c.tokenParams, ...(c.resource !== undefined && c.sendResource !== false ? { resource: c.resource } : {}) },
            });
            const types = recognizedTokenTypes(c.tokenTypes);
            return checkedTokens(await oauth.processRefreshTokenResponse(server.as, client.client, res, types ? { recognizedTokenTypes: types } : {}), 'refresh');
          });
        });
      } catch (e) {
        const err = toSafeError(e, 'refresh');
        audit(this.#rt, { type: 'token.refresh', userId, connection: c.id, decision: 'error', code: err.code, durationMs: nowMs() - started });
        if (!(err.code === 'OAUTH_ERROR' && err.oauthError === 'invalid_grant')) throw err; // transient or other: the stored account is untouched
        // Under the lease nobody else refreshes, so the grant itself is gone, unless the account was
        // replaced meanwhile (a new consent, or our lease ran out): then use what is there.
        const latest = await this.#readVersioned(key);
        if (latest !== undefined && latest.version !== base.version) {
          if (this.#usable(latest.record, nowMs())) return latest.record;
          if (!retried && latest.record.status === 'active' && latest.record.refreshToken !== undefined && latest.record.refreshToken !== refreshToken) again = latest.record;
        } else if (latest !== undefined) {
          const marked: AccountRecord = { ...latest.record, status: 'needs_consent', generation: latest.record.generation + 1, updatedAt: nowMs() };
          delete marked.accessToken;
          delete marked.refreshToken;
          if (await this.#rt.store.compareAndSet(key, latest.version, marked)) this.#forget(marked);
          this.#unsaved.delete(key);
        }
        if (again === undefined) {
          if (supportsAuthorizationCode(c)) throw await this.#consentRequired(c, userId, orgId, 'the authorization server no longer accepts the refresh token', latest === undefined ? undefined : priorScopes(latest.record));
          throw err;
        }
      }
      if (tokens !== undefined) {
        const now = nowMs();
        const next: AccountRecord = {
          ...base.record,
          status: 'active',
          accessToken: tokens.access_token,
          tokenType: tokens.token_type,
          // A refresh answer without refresh_token keeps the old one.
          refreshToken: tokens.refresh_token ?? refreshToken,
          scopes: splitScopes(tokens.scope, c.scopeSeparator) ?? base.record.scopes,
          generation: base.record.generation + 1,
          updatedAt: now,
        };
        if (typeof tokens.expires_in === 'number') next.expiresAt = now + tokens.expires_in * 1000;
        else delete next.expiresAt;
        const saved = await this.#save(key, base.version, next);
        audit(this.#rt, { type: 'token.refresh', userId, connection: c.id, decision: 'allow', durationMs: now - started });
        if (saved === 'written') return next;
        if (saved === 'unavailable') {
          // The server rotated the refresh token; the store did not take it. Serve it from memory and
          // keep the lease while the write is retried, so nobody refreshes with the old one.
          this.#unsaved.set(key, { record: next, base: base.version });
          keepLease = true;
          void this.#retrySave(key, lease, owner, leaseUntil - this.#storeTimeoutMs);
          return next;
        }
        // Replaced meanwhile (revoked, a new consent): the stored account wins.
        const latest = await this.#readRecord(key);
        if (latest !== undefined && this.#usable(latest, nowMs())) return latest;
        throw await (latest === undefined ? this.#consentRequired(c, userId, orgId, 'no connected account') : consent(latest));
      }
    } finally {
      if (!keepLease) await this.#rt.shared.deleteIfOwner(lease, owner).catch(() => false);
    }
    return this.#refresh(c, key, again as AccountRecord, userId, orgId, true);
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
      const list = new Set(await this.#rt.shared.indexMembers(indexKey(type, id)));
      // Accounts connected before the index moved to the store contract.
      const legacy = await this.#rt.store.get<unknown>(legacyIndexKey(type, id)).catch(() => undefined);
      if (Array.isArray(legacy)) for (const conn of legacy) if (typeof conn === 'string') list.add(conn);
      for (const connection of list) {
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
    const started = nowMs();
    let code: string | undefined;
    if (c.kind === 'oauth2' && (r.refreshToken !== undefined || r.accessToken !== undefined)) {
      try {
        await this.#rt.withClient(c, async (server, client) => {
          if (server.as.revocation_endpoint === undefined) return;
          // Tokens go back only to the server that issued them (the connection may resolve elsewhere now).
          if (r.issuer !== undefined && r.issuer !== server.as.issuer) return;
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
    const now = nowMs();
    const next = (await this.#update(key, (prev) => {
      if (prev === undefined) return undefined;
      const out: AccountRecord = { ...prev, status: 'revoked', generation: prev.generation + 1, updatedAt: now };
      delete out.accessToken;
      delete out.refreshToken;
      return out;
    })) ?? { ...r, status: 'revoked' as const };
    audit(this.#rt, { type: 'token.revoke', userId: ownerType === 'user' ? ownerId : undefined, connection: c.id, decision: code === undefined ? 'allow' : 'error', ...(code !== undefined ? { code } : {}), durationMs: now - started });
    return toConnectedAccount(next, now);
  }

  async disconnect(options: AccountRef): Promise<ConnectedAccount | undefined> {
    const revoked = await this.revoke(options);
    if (revoked === undefined) return undefined;
    const c = this.#connection(options.connection);
    const ownerType: OwnerType = options.userId !== undefined ? 'user' : 'org';
    const ownerId = checkId(options.userId ?? options.orgId, options.userId !== undefined ? 'userId' : 'orgId');
    const key = accountKey(c.id, ownerType, ownerId);
    await this.#rt.store.delete(key);
    this.#unsaved.delete(key);
    this.#cache?.delete(hotKey(c.id, ownerType === 'user' ? 'u' : 'o', ownerId));
    await this.#rt.shared.indexRemove(indexKey(ownerType, ownerId), c.id);
    return revoked;
  }

  async setApiKey(options: SetApiKeyOptions): Promise<ConnectedAccount> {
    const c = this.#connection(options?.connection);
    if (typeof options.key !== 'string' || options.key === '' || options.key.length > 8192 || /[\u0000-\u001f\u007f]/.test(options.key)) {
      throw badRequest('key', 'must be a non-empty string without control characters');
    }
    const ownerType: OwnerType = options.userId !== undefined ? 'user' : 'org';
    const ownerId = checkId(options.userId ?? options.orgId, options.userId !== undefined ? 'userId' : 'orgId');
    const key = accountKey(c.id, ownerType, ownerId);
    const now = nowMs();
    const record = (await this.#update(key, (prev) => ({
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
    }))) as AccountRecord;
    await this.#rt.shared.indexAdd(indexKey(ownerType, ownerId), c.id);
    audit(this.#rt, { type: 'token.issue', userId: ownerType === 'user' ? ownerId : undefined, connection: c.id, decision: 'allow' });
    return toConnectedAccount(record, now);
  }

  /**
   * A resource rejected this account's access token (401 invalid_token). Never send it again: the
   * token is marked expired, so the next call refreshes; `final` (the refreshed token was rejected
   * too) ends the account in `needs_consent`. Only while the stored token is the rejected one, by
   * compare-and-set, so a stale 401 never touches a newer token.
   */
  async #rejectAccountToken(ref: AccountRef, accessToken: string, final: boolean): Promise<boolean> {
    const c = this.#oauthConnection(ref?.connection);
    const userId = checkId(ref.userId, 'userId');
    const key = accountKey(c.id, 'user', userId);
    this.#cache?.delete(hotKey(c.id, 'u', userId));
    const u = this.#unsaved.get(key);
    if (u !== undefined && u.record.accessToken === accessToken) this.#unsaved.delete(key);
    let changed = false;
    await this.#update(key, (prev) => {
      if (prev === undefined || prev.accessToken !== accessToken || prev.status !== 'active') return undefined;
      changed = true;
      const now = nowMs();
      const next: AccountRecord = { ...prev, generation: prev.generation + 1, updatedAt: now };
      if (final || prev.refreshToken === undefined) {
        next.status = 'needs_consent';
        delete next.accessToken;
        delete next.refreshToken;
      } else next.expiresAt = Math.min(prev.expiresAt ?? now, now - 1);
      return next;
    });
    return changed;
  }

  // ---- service tokens ----------------------------------------------------------------------

  clientCredentials(options: ClientCredentialsOptions): Promise<AccessTokenResult> {
    const c = this.#oauthConnection(options?.connection);
    return this.#cc.get(this.#rt, c, options);
  }

  async enterpriseToken(options: EnterpriseTokenOptions): Promise<AccessTokenResult> {
    const c = this.#oauthConnection(options?.connection);
    if (!this.connections.includes(options.idp)) throw badRequest('idp', 'no connection with this id is configured');
    const idp = this.#oauthConnection(options.idp);
    if (options.scopes !== undefined && !Array.isArray(options.scopes)) throw badRequest('scopes', 'must be an array');
    return this.#enterprise.get(this.#rt, c, idp, options);
  }

  async exchange(options: TokenExchangeOptions): Promise<AccessTokenResult> {
    const c = this.#oauthConnection(options?.connection);
    if (!Array.isArray(options.scopes)) throw badRequest('scopes', 'must be an array');
    return this.#exchanger.exchange(this.#rt, c, options);
  }

  /** @internal toolFetch calls this when a tool answered 401 to a cached service token. */
  [DROP_REJECTED_TOKEN](request: RejectedTokenRequest, accessToken: string): boolean | Promise<boolean> {
    if (request.kind === 'account') return this.#rejectAccountToken(request.options, accessToken, request.final === true).catch(() => false);
    try {
      const c = this.#oauthConnection(request.options?.connection);
      if (request.kind === 'enterprise') return this.#enterprise.drop(c, this.#oauthConnection(request.options.idp), request.options, accessToken);
      return request.kind === 'clientCredentials' ? this.#cc.drop(c, request.options, accessToken) : this.#exchanger.drop(c, request.options, accessToken);
    } catch {
      return false;
    }
  }
}
