/**
 * @internal Sign-in for the pages: OpenID Connect authorization code with PKCE (S256), `state`
 * bound to the browser by a short-lived encrypted cookie (login CSRF), `nonce` checked in the ID
 * token, RFC 9207 `iss`. Protocol steps go through oauth4webapi; its errors are never passed on.
 *
 * @module
 */
import { nowMs } from '../lib/clock.js';
import * as oauth from 'oauth4webapi';
import { AgentIamError, stateMismatch } from '../errors.js';
import { hasControlChars } from '../lib/encoding.js';
import type { SecretReader } from '../lib/secret.js';
import { storeKey, type Store } from '../stores/store.js';
import { discoverIssuer, type ServerInfo } from '../tokens/discovery.js';
import { requestOptions, toSafeError, withRetry, type HttpSettings } from '../tokens/http.js';
import type { PageUser } from './session.js';

export interface SignInSettings {
  issuer: string;
  clientId: string;
  clientSecret?: SecretReader;
  scopes: string[];
  userIdClaim: string;
  groupsClaim: string;
  redirectUri: string;
  http: HttpSettings;
  store: Store;
  ttlMs: number;
}

interface PendingLogin {
  v: 1;
  verifier: string;
  nonce: string;
  /** Random value also held, encrypted, in the browser's sign-in cookie. */
  binding: string;
  returnTo: string;
  expiresAt: number;
}

export interface SignIn {
  /** The authorization URL and the value the browser's sign-in cookie must carry back. */
  start(returnTo: string): Promise<{ url: string; binding: string }>;
  /** Finish from the callback's query; `binding` is what the browser's sign-in cookie holds. */
  finish(query: URLSearchParams, binding: string | undefined): Promise<{ user: PageUser; returnTo: string }>;
}

function refused(why: string, status: 400 | 403 = 400): AgentIamError {
  return stateMismatch(`Sign-in refused: ${why}`, status);
}

function basicAuth(secret: string): oauth.ClientAuth {
  const enc = (v: string): string => encodeURIComponent(v).replace(/%20/g, '+');
  return (_as, client, _body, headers) => {
    headers.set('authorization', `Basic ${btoa(`${enc(client.client_id)}:${enc(secret)}`)}`);
  };
}

function claimString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' && value.length <= 256 && !hasControlChars(value) ? value : undefined;
}

function claimList(value: unknown): string[] {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(' ') : [];
  return list.filter((v): v is string => claimString(v) !== undefined).slice(0, 1000);
}

export function createSignIn(s: SignInSettings): SignIn {
  let server: Promise<ServerInfo> | undefined;
  const metadata = (): Promise<ServerInfo> => {
    server ??= discoverIssuer(s.issuer, s.http);
    server.catch(() => (server = undefined));
    return server;
  };
  const client: oauth.Client = { client_id: s.clientId, token_endpoint_auth_method: s.clientSecret === undefined ? 'none' : 'client_secret_basic' };
  const auth = async (): Promise<oauth.ClientAuth> => (s.clientSecret === undefined ? oauth.None() : basicAuth(await s.clientSecret.get()));
  const key = (state: string): string => storeKey('page-sign-in', state);

  return {
    async start(returnTo) {
      const { as } = await metadata();
      if (as.authorization_endpoint === undefined) throw new AgentIamError('CONFIG_INVALID', 'pages.signIn: the identity provider has no authorization endpoint', { field: 'pages.signIn.issuer' });
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const nonce = oauth.generateRandomNonce();
      const binding = oauth.generateRandomState();
      const url = new URL(as.authorization_endpoint);
      url.searchParams.set('client_id', s.clientId);
      url.searchParams.set('redirect_uri', s.redirectUri);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('scope', s.scopes.join(' '));
      url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
      url.searchParams.set('code_challenge_method', 'S256');
      url.searchParams.set('state', state);
      url.searchParams.set('nonce', nonce);
      const pending: PendingLogin = { v: 1, verifier, nonce, binding, returnTo, expiresAt: nowMs() + s.ttlMs };
      if (!(await s.store.setIfAbsent(key(state), pending, s.ttlMs))) throw new AgentIamError('STORE_UNAVAILABLE', 'Could not store the sign-in state', { reason: 'conflict' });
      return { url: url.href, binding };
    },

    async finish(query, binding) {
      const states = query.getAll('state');
      if (states.length !== 1 || states[0] === '' || (states[0] as string).length > 512) throw refused('no valid state');
      const state = states[0] as string;
      // Single use, whatever happens next.
      const pending = await s.store.consume<PendingLogin>(key(state));
      if (pending === undefined || pending === null || pending.v !== 1 || pending.expiresAt <= nowMs()) throw refused('unknown, used or expired state');
      // Login CSRF: only the browser that started this sign-in may finish it.
      if (binding === undefined || binding !== pending.binding) throw refused('this browser did not start the sign-in', 403);
      const { as, insecure } = await metadata();
      let params: URLSearchParams;
      try {
        params = oauth.validateAuthResponse(as, client, query, state);
      } catch (e) {
        throw toSafeError(e, 'sign-in');
      }
      const clientAuth = await auth();
      const result = await withRetry(s.http, 'sign-in', async (signal) => {
        const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, s.redirectUri, pending.verifier, requestOptions(s.http, signal, insecure));
        return oauth.processAuthorizationCodeResponse(as, client, res, { expectedNonce: pending.nonce, requireIdToken: true });
      }).catch((e: unknown) => {
        throw toSafeError(e, 'sign-in');
      });
      const idClaims = oauth.getValidatedIdTokenClaims(result) as Record<string, unknown> | undefined;
      if (idClaims === undefined) throw new AgentIamError('OAUTH_ERROR', 'Sign-in: the identity provider returned no ID token', { oauthError: 'invalid_response' });
      let claims: Record<string, unknown> = { ...idClaims };
      // Code-flow ID tokens often carry only `sub`: the rest comes from UserInfo, for the same subject.
      if ((claims[s.userIdClaim] === undefined || claims[s.groupsClaim] === undefined) && as.userinfo_endpoint !== undefined) {
        try {
          const info = await withRetry(s.http, 'userinfo', async (signal) => {
            const res = await oauth.userInfoRequest(as, client, result.access_token, requestOptions(s.http, signal, insecure));
            return oauth.processUserInfoResponse(as, client, idClaims.sub as string, res);
          });
          claims = { ...info, ...idClaims };
        } catch {
          // without UserInfo the ID token's claims are all there is
        }
      }
      const userId = claimString(claims[s.userIdClaim]);
      if (userId === undefined) throw new AgentIamError('USER_CLAIM_MISSING', `Sign-in: the ID token has no usable ${s.userIdClaim} claim`);
      const user: PageUser = {
        userId,
        scopes: claimList(result.scope),
        groups: claimList(claims[s.groupsClaim]),
        issuer: as.issuer,
      };
      return { user, returnTo: pending.returnTo };
    },
  };
}
