/**
 * Internal: which client the token manager is at a server — a pre-registered `clientId`, else a
 * Client ID Metadata Document (`clientMetadataUrl`, when the server advertises support), else RFC
 * 7591 dynamic registration (stored and reused; re-registered once when the server forgets it).
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import { AgentIamError } from '../errors.js';
import { sleep } from '../lib/async.js';
import { randomToken } from '../lib/encoding.js';
import { storeKey, type Store } from '../stores/store.js';
import { secretReader, type SecretReader } from '../lib/secret.js';
import { clientKey } from './client-key.js';
import { takeLease } from './lease.js';
import type { Connection } from './connections.js';
import type { ServerInfo } from './discovery.js';
import { type HttpSettings, oauthError, requestOptions, withRetry } from './http.js';
import { nowMs } from '../lib/clock.js';

/** A client ready for token requests. */
export interface ClientInfo {
  client: oauth.Client;
  auth: oauth.ClientAuth;
  /** True when the client came from dynamic registration (and may be registered again). */
  dynamic: boolean;
}

interface StoredClient {
  client_id: string;
  client_secret?: string;
  client_secret_expires_at?: number;
  token_endpoint_auth_method?: string;
}

/**
 * HTTP Basic client authentication. RFC 6749 §2.3.1 form-encodes the id and secret first;
 * oauth4webapi also escapes `-`, `.`, `_`, `~` and others, which many servers do not decode (the MCP
 * SDK's among them: `pre-registered-client` arrives as `pre%2Dregistered%2Dclient`). Escaping only
 * what form encoding must escape gives the same bytes for every id made of unreserved characters.
 */
function basicAuth(secret: string): oauth.ClientAuth {
  const enc = (v: string): string => encodeURIComponent(v).replace(/%20/g, '+');
  return (_as, client, _body, headers) => {
    headers.set('authorization', `Basic ${btoa(`${enc(client.client_id)}:${enc(secret)}`)}`);
  };
}

const secretReaders = new WeakMap<Connection, SecretReader>();

/** The reader of a connection's configured `clientSecret` (one per connection, so its cache is shared). */
export function connectionSecret(c: Connection): SecretReader | undefined {
  if (c.clientSecret === undefined) return undefined;
  let r = secretReaders.get(c);
  if (r === undefined) {
    r = secretReader(c.clientSecret, `connection ${c.id}: clientSecret`, (v) => v.length <= 4096);
    secretReaders.set(c, r);
  }
  return r;
}

function secretAuth(method: string | undefined, secret: string): oauth.ClientAuth {
  return method === 'client_secret_post' ? oauth.ClientSecretPost(secret) : basicAuth(secret);
}

async function clientAuth(c: Connection, method: string | undefined, secret: string | SecretReader | undefined): Promise<oauth.ClientAuth> {
  if (method === 'private_key_jwt') return oauth.PrivateKeyJwt((await clientKey(c)).key);
  if (secret === undefined || method === 'none') return oauth.None();
  if (typeof secret === 'string') return secretAuth(method, secret);
  if (secret.literal !== undefined) return secretAuth(method, secret.literal);
  // From the environment or a secret manager: read at each request (cached by the reader).
  const reader = secret;
  return async (as, client, body, headers) => secretAuth(method, await reader.get())(as, client, body, headers);
}

/**
 * The token endpoint auth method to register with: the connection's, else what the server lists
 * (`client_secret_post` first, as the most widely accepted; then `client_secret_basic`; then `none`),
 * else RFC 8414's default `client_secret_basic` when it lists nothing.
 */
export function chooseAuthMethod(c: Connection, as: oauth.AuthorizationServer): string {
  if (c.tokenEndpointAuthMethod !== undefined) return c.tokenEndpointAuthMethod;
  // A configured key is what the client has: use it (RFC 8414's default list does not name it, but a
  // server that lists nothing may still accept it; one that lists others gets a clear error below).
  if (c.clientPrivateKey !== undefined) return 'private_key_jwt';
  const listed = as.token_endpoint_auth_methods_supported;
  if (!Array.isArray(listed) || listed.length === 0) return 'client_secret_basic';
  for (const m of ['client_secret_post', 'client_secret_basic', 'none']) if (listed.includes(m)) return m;
  throw new AgentIamError('CONFIG_INVALID', `connection ${c.id}: the authorization server supports none of client_secret_post, client_secret_basic, none for registration (it lists ${listed.slice(0, 5).join(', ')}); set tokenEndpointAuthMethod or clientId`, { field: 'tokenEndpointAuthMethod' });
}

function isLoopbackOrNative(uri: string): boolean {
  try {
    const u = new URL(uri);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return true; // a private-use scheme: a native app
    return u.hostname === '127.0.0.1' || u.hostname === '[::1]' || u.hostname === 'localhost';
  } catch {
    return false;
  }
}

/**
 * RFC 7591 makes `client_secret_expires_at` required with a secret, and oauth4webapi enforces it;
 * many servers (the MCP SDK's among them) omit it. Absent means "does not expire" (0), which is what
 * the field's own definition gives for 0, so read it that way; a present value is still checked.
 */
async function tolerateMissingSecretExpiry(res: Response): Promise<Response> {
  if (res.status !== 201) return res;
  let body: unknown;
  try {
    body = await res.clone().json();
  } catch {
    return res;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return res;
  const b = body as Record<string, unknown>;
  if (typeof b.client_secret !== 'string' || 'client_secret_expires_at' in b) return res;
  return new Response(JSON.stringify({ ...b, client_secret_expires_at: 0 }), { status: 201, headers: { 'content-type': 'application/json' } });
}

export function registrationKey(c: Connection, issuer: string): string {
  return storeKey('client', c.id, issuer);
}

function secretExpired(s: StoredClient, now: number): boolean {
  const exp = s.client_secret_expires_at;
  return typeof exp === 'number' && exp > 0 && exp * 1000 <= now;
}

/** Where the registration lives, and the store for the lease that makes it happen once. */
export interface RegistrationStores {
  /** The registered client (its secret: encrypted when a key is configured). */
  store: Store;
  /** Plaintext store for the lease. */
  shared: Store;
  leaseTtlMs: number;
}

/**
 * Resolve the client for a connection at a server. `failedClientId`: the server refused this
 * dynamically registered client (`invalid_client`); register again unless another process already
 * has (the stored client then differs from the failed one).
 */
export async function resolveClient(
  c: Connection,
  server: ServerInfo,
  stores: RegistrationStores,
  http: HttpSettings,
  failedClientId?: string,
): Promise<ClientInfo> {
  if (c.clientId !== undefined) {
    const method = c.tokenEndpointAuthMethod ?? (c.clientPrivateKey !== undefined ? 'private_key_jwt' : c.clientSecret === undefined ? 'none' : 'client_secret_basic');
    return { client: { client_id: c.clientId, token_endpoint_auth_method: method }, auth: await clientAuth(c, method, connectionSecret(c)), dynamic: false };
  }
  const as = server.as;
  if (c.clientMetadataUrl !== undefined && as.client_id_metadata_document_supported === true) {
    return { client: { client_id: c.clientMetadataUrl, token_endpoint_auth_method: 'none' }, auth: oauth.None(), dynamic: false };
  }
  if (c.registration === 'dynamic') {
    if (as.registration_endpoint === undefined) {
      throw new AgentIamError('CONFIG_INVALID', `connection ${c.id}: registration is 'dynamic' but the authorization server has no registration_endpoint; set clientId`, { field: 'clientId' });
    }
    return fromStored(c, await registerOnce(c, server, stores, http, failedClientId));
  }
  const why = c.clientMetadataUrl !== undefined
    ? 'the authorization server does not advertise client_id_metadata_document_supported for clientMetadataUrl, and registration is not dynamic'
    : "no clientId, no clientMetadataUrl and registration is not 'dynamic'";
  throw new AgentIamError('CONFIG_INVALID', `connection ${c.id}: cannot identify the client: ${why}`, { field: 'clientId' });
}

function usable(s: StoredClient | undefined, failedClientId: string | undefined): s is StoredClient {
  return s !== undefined && s !== null && typeof s.client_id === 'string' && s.client_id !== failedClientId && !secretExpired(s, nowMs());
}

/**
 * One registration per connection and authorization server, whatever the number of processes: the
 * first to take the lease registers and stores the client; the others wait for the stored client.
 */
async function registerOnce(c: Connection, server: ServerInfo, stores: RegistrationStores, http: HttpSettings, failedClientId: string | undefined): Promise<StoredClient> {
  const key = registrationKey(c, server.as.issuer);
  const leaseKey = storeKey('lease', key);
  const owner = randomToken(12);
  const deadline = nowMs() + stores.leaseTtlMs;
  for (;;) {
    const stored = await stores.store.getVersioned<StoredClient>(key);
    if (usable(stored?.value, failedClientId)) return stored.value;
    if (await takeLease(stores.shared, leaseKey, owner, stores.leaseTtlMs)) {
      try {
        // Under the lease: another process may have stored a client just before we took it.
        const again = await stores.store.getVersioned<StoredClient>(key);
        if (usable(again?.value, failedClientId)) return again.value;
        const registered = await register(c, server, http);
        await stores.store.set(key, registered);
        return registered;
      } finally {
        await stores.shared.deleteIfOwner(leaseKey, owner).catch(() => false);
      }
    }
    if (nowMs() > deadline) {
      throw new AgentIamError('TOKEN_ENDPOINT_UNAVAILABLE', `connection ${c.id}: another process is registering the client and has not finished`);
    }
    await sleep(25 + Math.random() * 50);
  }
}

async function fromStored(c: Connection, s: StoredClient): Promise<ClientInfo> {
  const method = s.token_endpoint_auth_method ?? (s.client_secret === undefined ? 'none' : 'client_secret_basic');
  return { client: { client_id: s.client_id, token_endpoint_auth_method: method }, auth: await clientAuth(c, method, s.client_secret), dynamic: true };
}

/** RFC 6749 Appendix A.1: client ids and secrets are VSCHAR (%x20-7E). Caps as for configured ones. */
const VSCHAR = /^[\x20-\x7e]+$/;
const SUPPORTED_AUTH_METHODS = new Set(['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']);

function badAnswer(why: string): AgentIamError {
  return oauthError('client registration', 'invalid_response', `the registration answer ${why}`);
}

/** A redirect URI compared as a URL (scheme and host case do not matter), else as sent. */
function normalizedUri(u: unknown): unknown {
  if (typeof u !== 'string') return u;
  try {
    return new URL(u).href;
  } catch {
    return u;
  }
}

/**
 * What the server registered must be a client the SDK can use as asked (oauth4webapi checks only
 * that `client_id` is a non-empty string): an id and secret it can send, the redirect URIs it asked
 * for and no others (RFC 7591 lets a server replace them; then codes would go where the server
 * chose), and a token endpoint auth method it supports with the credential it needs. The values are
 * never put in the message.
 */
function checkRegistrationAnswer(c: Connection, answer: Record<string, unknown>, asked: Record<string, unknown>): void {
  const id = answer.client_id;
  if (typeof id !== 'string' || id.length > 2048 || !VSCHAR.test(id)) throw badAnswer('has a client_id that is not a usable client identifier');
  const secret = answer.client_secret;
  if (secret !== undefined && (typeof secret !== 'string' || secret.length > 4096 || !VSCHAR.test(secret))) {
    throw badAnswer('has a client_secret that is not a usable secret');
  }
  const uris = answer.redirect_uris;
  if (uris !== undefined && uris !== null) {
    const want = new Set((Array.isArray(asked.redirect_uris) ? asked.redirect_uris : []).map(normalizedUri));
    const got = Array.isArray(uris) ? new Set(uris.map(normalizedUri)) : undefined;
    if (got === undefined || got.size !== want.size || [...got].some((u) => typeof u !== 'string' || !want.has(u))) {
      throw badAnswer('registers other redirect_uris than those asked for');
    }
  }
  const method = answer.token_endpoint_auth_method;
  if (method !== undefined) {
    if (typeof method !== 'string' || !SUPPORTED_AUTH_METHODS.has(method)) throw badAnswer('names a token_endpoint_auth_method the SDK does not support');
    if (method === 'private_key_jwt' && c.clientPrivateKey === undefined) throw badAnswer('asks for private_key_jwt and the connection has no clientPrivateKey');
    if ((method === 'client_secret_basic' || method === 'client_secret_post') && secret === undefined) throw badAnswer(`asks for ${method} and issued no client_secret`);
  }
}

async function register(c: Connection, server: ServerInfo, http: HttpSettings): Promise<StoredClient> {
  const method = chooseAuthMethod(c, server.as);
  const metadata: Record<string, unknown> = c.redirectUri !== undefined
    ? { redirect_uris: [c.redirectUri], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }
    : { grant_types: ['client_credentials'], response_types: [] };
  metadata.token_endpoint_auth_method = method;
  if (method === 'private_key_jwt') {
    const k = await clientKey(c);
    metadata.jwks = { keys: [k.publicJwk] };
    metadata.token_endpoint_auth_signing_alg = k.alg;
  }
  metadata.application_type = c.redirectUri !== undefined && isLoopbackOrNative(c.redirectUri) ? 'native' : 'web';
  metadata.client_name = 'agent-iam';
  Object.assign(metadata, c.registrationMetadata);
  const answer = await withRetry(http, 'client registration', async (signal) => {
    const res = await oauth.dynamicClientRegistrationRequest(server.as, metadata as Partial<oauth.Client>, requestOptions(http, signal, server.insecure));
    return oauth.processDynamicClientRegistrationResponse(await tolerateMissingSecretExpiry(res));
  });
  checkRegistrationAnswer(c, answer as unknown as Record<string, unknown>, metadata);
  const out: StoredClient = { client_id: answer.client_id };
  if (typeof answer.client_secret === 'string') out.client_secret = answer.client_secret;
  if (typeof answer.client_secret_expires_at === 'number') out.client_secret_expires_at = answer.client_secret_expires_at;
  if (typeof answer.token_endpoint_auth_method === 'string') out.token_endpoint_auth_method = answer.token_endpoint_auth_method;
  // oauth4webapi accepts an already-expired secret (SECURITY-NOTES): refuse it.
  if (secretExpired(out, nowMs())) throw oauthError('client registration', 'invalid_client_metadata', 'the registered client secret has already expired');
  return out;
}
