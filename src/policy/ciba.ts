/**
 * OpenID CIBA (Client-Initiated Backchannel Authentication), poll mode, as an approval mode: the
 * user's identity provider asks the user the agent acts for to confirm on their own device, with a
 * binding message built from the approval summary (and RFC 9396 `authorization_details` where the
 * provider lists the type). The approval completes when the provider says so.
 *
 * @see https://openid.net/specs/openid-client-initiated-backchannel-authentication-core-1_0.html
 * @module
 */
import { nowMs } from '../lib/clock.js';
import * as oauth from 'oauth4webapi';
import { AgentIamError, type ApprovalSummary } from '../errors.js';
import { secretReader, type SecretReader, type SecretSource } from '../lib/secret.js';
import { discoverIssuer, type ServerInfo } from '../tokens/discovery.js';
import { DEFAULT_MAX_RESPONSE_BYTES, requestOptions, toSafeError, withRetry, type HttpSettings } from '../tokens/http.js';

/**
 * CIBA settings of `createApprovals({ ciba })`: the identity provider that authenticates the users
 * the agent acts for, and the agent's client there (registered for the CIBA grant, poll mode).
 *
 * @example
 * ```ts
 * const approvals = createApprovals({ ciba: { issuer: 'https://idp.example.com', clientId: 'agent', clientSecret: { env: 'CIBA_SECRET' } } });
 * // policy: { agent: 'a', tool: 'bank', effect: 'approval', approvalMode: 'ciba' }
 * ```
 */
export interface CibaOptions {
  issuer: string;
  clientId: string;
  clientSecret: SecretSource;
  /** Scopes asked for (default `['openid']`; CIBA requires `openid`). */
  scopes?: string[];
  /**
   * The text shown on both the agent's side and the user's device (default: agent, method, tool and
   * path, at most 64 characters). Keep it short: providers limit it.
   */
  bindingMessage?: (summary: ApprovalSummary) => string;
  /** `requested_expiry` in seconds (default: the provider's). */
  requestedExpirySeconds?: number;
  /** The RFC 9396 type sent when the provider lists it in `authorization_details_types_supported` (default `agent_iam_tool_request`). */
  authorizationDetailsType?: string;
  /** Seconds between polls when the provider names no `interval` (default 5, the CIBA default). */
  pollIntervalSeconds?: number;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** What a poll of the token endpoint found. */
export type CibaPoll =
  | { status: 'pending'; slowDown?: boolean; waitMs?: number }
  | { status: 'approved' }
  | { status: 'denied' }
  | { status: 'expired' };

export interface CibaClient {
  start(summary: ApprovalSummary, userId: string): Promise<{ authReqId: string; expiresAt: number; intervalMs: number }>;
  poll(authReqId: string, userId: string): Promise<CibaPoll>;
}

const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

export function defaultBindingMessage(s: ApprovalSummary): string {
  return `${s.agentId}: ${s.method} ${s.tool} ${s.path}`.replace(HIDDEN, '').slice(0, 64);
}

function basicAuth(secret: string): oauth.ClientAuth {
  const enc = (v: string): string => encodeURIComponent(v).replace(/%20/g, '+');
  return (_as, client, _body, headers) => {
    headers.set('authorization', `Basic ${btoa(`${enc(client.client_id)}:${enc(secret)}`)}`);
  };
}

/** Seconds of a `Retry-After` header (delta-seconds or an HTTP date), bounded to 5 minutes. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  const n = Number(value);
  const ms = Number.isFinite(n) ? n * 1000 : Date.parse(value) - nowMs();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 300_000) : undefined;
}

/** @internal The CIBA client of an approvals service. */
export function createCibaClient(o: CibaOptions): CibaClient {
  const http: HttpSettings = { timeoutMs: o.timeoutMs ?? 10_000, retries: 1, maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES, ...(o.fetch !== undefined ? { fetch: o.fetch } : {}) };
  const secret: SecretReader = secretReader(o.clientSecret, 'approvals.ciba: clientSecret', (v) => v.length <= 4096);
  const client: oauth.Client = { client_id: o.clientId, token_endpoint_auth_method: 'client_secret_basic' };
  const type = o.authorizationDetailsType ?? 'agent_iam_tool_request';
  let server: Promise<ServerInfo> | undefined;
  const metadata = (): Promise<ServerInfo> => {
    server ??= discoverIssuer(o.issuer, http);
    server.catch(() => (server = undefined));
    return server;
  };

  return {
    async start(summary, userId) {
      const { as, insecure } = await metadata();
      if (as.backchannel_authentication_endpoint === undefined) {
        throw new AgentIamError('CONFIG_INVALID', 'approvals.ciba: the identity provider has no backchannel_authentication_endpoint', { field: 'approvals.ciba.issuer' });
      }
      const params = new URLSearchParams({ scope: (o.scopes ?? ['openid']).join(' '), login_hint: userId });
      const message = (o.bindingMessage ?? defaultBindingMessage)(summary).replace(HIDDEN, '');
      if (message !== '') params.set('binding_message', message);
      if (o.requestedExpirySeconds !== undefined) params.set('requested_expiry', String(o.requestedExpirySeconds));
      const types = (as as { authorization_details_types_supported?: unknown }).authorization_details_types_supported;
      if (Array.isArray(types) && types.includes(type)) {
        params.set('authorization_details', JSON.stringify([{ type, actions: [summary.method], ...(summary.host !== undefined ? { locations: [`https://${summary.host}`] } : {}), identifier: summary.path, tool: summary.tool, agent: summary.agentId }]));
      }
      const auth = basicAuth(await secret.get());
      const res = await withRetry(http, 'backchannel authentication', async (signal) => {
        const r = await oauth.backchannelAuthenticationRequest(as, client, auth, params, requestOptions(http, signal, insecure));
        return oauth.processBackchannelAuthenticationResponse(as, client, r);
      }).catch((e: unknown) => {
        throw toSafeError(e, 'backchannel authentication');
      });
      if (typeof res.auth_req_id !== 'string' || res.auth_req_id.length > 1024) throw new AgentIamError('OAUTH_ERROR', 'backchannel authentication: no usable auth_req_id', { oauthError: 'invalid_response' });
      const intervalMs = Math.max(0.05, typeof res.interval === 'number' ? res.interval : (o.pollIntervalSeconds ?? 5)) * 1000;
      return { authReqId: res.auth_req_id, expiresAt: nowMs() + res.expires_in * 1000, intervalMs };
    },

    async poll(authReqId, userId) {
      const { as, insecure } = await metadata();
      const auth = basicAuth(await secret.get());
      const signal = AbortSignal.timeout(http.timeoutMs);
      let res: Response;
      try {
        res = await oauth.backchannelAuthenticationGrantRequest(as, client, auth, authReqId, requestOptions(http, signal, insecure));
      } catch {
        return { status: 'pending', waitMs: 5000 }; // the provider cannot be reached now: try again later
      }
      // Overloaded: honour Retry-After before polling again.
      if (res.status === 429 || res.status === 503) {
        const wait = retryAfterMs(res.headers.get('retry-after'));
        await res.body?.cancel().catch(() => {});
        return { status: 'pending', waitMs: wait ?? 5000 };
      }
      try {
        const tokens = await oauth.processBackchannelAuthenticationGrantResponse(as, client, res);
        const claims = oauth.getValidatedIdTokenClaims(tokens);
        // The person who confirmed must be the user the agent acts for.
        if (claims !== undefined && claims.sub !== userId) return { status: 'denied' };
        return { status: 'approved' };
      } catch (e) {
        if (e instanceof oauth.ResponseBodyError) {
          if (e.error === 'authorization_pending') return { status: 'pending' };
          if (e.error === 'slow_down') return { status: 'pending', slowDown: true };
          // expired_token (CIBA); invalid_grant: the auth_req_id is unknown, used or expired (oidc-provider answers it for an expired one)
          if (e.error === 'expired_token' || e.error === 'invalid_grant') return { status: 'expired' };
          if (e.error === 'access_denied') return { status: 'denied' };
        }
        throw toSafeError(e, 'backchannel authentication');
      }
    },
  };
}
