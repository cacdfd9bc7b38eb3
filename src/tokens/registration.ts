/**
 * Internal: which client the token manager is at a server — a pre-registered `clientId`, else a
 * Client ID Metadata Document (`clientMetadataUrl`, when the server advertises support), else RFC
 * 7591 dynamic registration (stored and reused; re-registered once when the server forgets it).
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import { AgentIamError } from '../errors.js';
import type { KeyValueStore } from '../stores/store.js';
import { storeKey } from '../stores/store.js';
import type { Connection } from './connections.js';
import type { ServerInfo } from './discovery.js';
import { type HttpSettings, oauthError, requestOptions, withRetry } from './http.js';

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

function clientAuth(method: string | undefined, secret: string | undefined): oauth.ClientAuth {
  if (secret === undefined || method === 'none') return oauth.None();
  return method === 'client_secret_post' ? oauth.ClientSecretPost(secret) : oauth.ClientSecretBasic(secret);
}

export function registrationKey(c: Connection, issuer: string): string {
  return storeKey('client', c.id, issuer);
}

function secretExpired(s: StoredClient, now: number): boolean {
  const exp = s.client_secret_expires_at;
  return typeof exp === 'number' && exp > 0 && exp * 1000 <= now;
}

/** Resolve the client for a connection at a server. `forceRegister` drops a stored registration first. */
export async function resolveClient(
  c: Connection,
  server: ServerInfo,
  store: KeyValueStore,
  http: HttpSettings,
  forceRegister = false,
): Promise<ClientInfo> {
  if (c.clientId !== undefined) {
    const method = c.tokenEndpointAuthMethod ?? (c.clientSecret === undefined ? 'none' : 'client_secret_basic');
    return { client: { client_id: c.clientId, token_endpoint_auth_method: method }, auth: clientAuth(method, c.clientSecret), dynamic: false };
  }
  const as = server.as;
  if (c.clientMetadataUrl !== undefined && as.client_id_metadata_document_supported === true) {
    return { client: { client_id: c.clientMetadataUrl, token_endpoint_auth_method: 'none' }, auth: oauth.None(), dynamic: false };
  }
  if (c.registration === 'dynamic') {
    if (as.registration_endpoint === undefined) {
      throw new AgentIamError('CONFIG_INVALID', `connection ${c.id}: registration is 'dynamic' but the authorization server has no registration_endpoint; set clientId`, { field: 'clientId' });
    }
    const key = registrationKey(c, as.issuer);
    if (forceRegister) await store.delete(key);
    else {
      const stored = await store.get<StoredClient>(key);
      if (stored && typeof stored.client_id === 'string' && !secretExpired(stored, Date.now())) return fromStored(stored);
    }
    const registered = await register(c, server, http);
    await store.set(key, registered);
    return fromStored(registered);
  }
  const why = c.clientMetadataUrl !== undefined
    ? 'the authorization server does not advertise client_id_metadata_document_supported for clientMetadataUrl, and registration is not dynamic'
    : "no clientId, no clientMetadataUrl and registration is not 'dynamic'";
  throw new AgentIamError('CONFIG_INVALID', `connection ${c.id}: cannot identify the client: ${why}`, { field: 'clientId' });
}

function fromStored(s: StoredClient): ClientInfo {
  const method = s.token_endpoint_auth_method ?? (s.client_secret === undefined ? 'none' : 'client_secret_basic');
  return { client: { client_id: s.client_id, token_endpoint_auth_method: method }, auth: clientAuth(method, s.client_secret), dynamic: true };
}

async function register(c: Connection, server: ServerInfo, http: HttpSettings): Promise<StoredClient> {
  const method = c.tokenEndpointAuthMethod ?? 'client_secret_basic';
  const metadata: Record<string, unknown> = c.redirectUri !== undefined
    ? { redirect_uris: [c.redirectUri], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }
    : { grant_types: ['client_credentials'], response_types: [] };
  metadata.token_endpoint_auth_method = method;
  metadata.client_name = 'agent-iam';
  Object.assign(metadata, c.registrationMetadata);
  const answer = await withRetry(http, 'client registration', async (signal) => {
    const res = await oauth.dynamicClientRegistrationRequest(server.as, metadata as Partial<oauth.Client>, requestOptions(http, signal, server.insecure));
    return oauth.processDynamicClientRegistrationResponse(res);
  });
  const out: StoredClient = { client_id: answer.client_id };
  if (typeof answer.client_secret === 'string') out.client_secret = answer.client_secret;
  if (typeof answer.client_secret_expires_at === 'number') out.client_secret_expires_at = answer.client_secret_expires_at;
  if (typeof answer.token_endpoint_auth_method === 'string') out.token_endpoint_auth_method = answer.token_endpoint_auth_method;
  // oauth4webapi accepts an already-expired secret (SECURITY-NOTES): refuse it.
  if (secretExpired(out, Date.now())) throw oauthError('client registration', 'invalid_client_metadata', 'the registered client secret has already expired');
  return out;
}
