/**
 * Connection presets for well-known providers: their real endpoints and documented quirks.
 * Spread one into a connection and add your client id, secret, redirect URI and scopes.
 *
 * @module
 */
import type { ConnectionConfig } from './connections.js';

/**
 * What a preset fills in: endpoints and quirks, never credentials.
 *
 * @example
 * ```ts
 * const preset: ConnectionPreset = connectionPresets.google();
 * ```
 */
export type ConnectionPreset = Omit<ConnectionConfig, 'id'>;

/**
 * Presets of well-known OAuth providers.
 *
 * - `github`: OAuth apps' tokens do not expire and carry no refresh token (GitHub Apps with
 *   expiring tokens do return `expires_in` and `refresh_token`); no RFC 7009 endpoint.
 * - `gitlab`: RFC 7009 revocation; refresh tokens rotate.
 * - `google`: `access_type=offline` and `prompt=consent` so a refresh token is issued; RFC 7009 revoke.
 * - `microsoft` (Entra ID v2): rejects RFC 8707 `resource` (`sendResource: false`); ask for `offline_access` to get refresh tokens.
 * - `slack`: `oauth.v2.access`, comma-separated scopes, `token_type: bot`.
 * - `atlassian`: `audience=api.atlassian.com`, `prompt=consent`; `offline_access` for rotating refresh tokens.
 * - `notion`: Basic-auth token request, `owner=user`; tokens do not expire.
 * - `linear`: comma-separated scopes; RFC 7009-style revoke endpoint.
 * - `salesforce`: `login` or `test` (sandbox) or a My Domain host; answers carry no `expires_in`.
 * - `dropbox`: `token_access_type=offline` for a refresh token.
 *
 * @example
 * ```ts
 * createTokenManager({ connections: [
 *   { id: 'github', ...connectionPresets.github(), clientId, clientSecret, redirectUri, scopes: ['repo'] },
 *   { id: 'entra', ...connectionPresets.microsoft({ tenant: 'contoso.onmicrosoft.com' }), clientId, clientSecret, redirectUri },
 * ] });
 * ```
 */
export const connectionPresets = {
  github: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://github.com/login/oauth/authorize',
    tokenEndpoint: 'https://github.com/login/oauth/access_token',
    tokenEndpointAuthMethod: 'client_secret_post',
  }),
  gitlab: (options: { host?: string } = {}): ConnectionPreset => {
    const base = `https://${options.host ?? 'gitlab.com'}`;
    return {
      authorizationEndpoint: `${base}/oauth/authorize`,
      tokenEndpoint: `${base}/oauth/token`,
      revocationEndpoint: `${base}/oauth/revoke`,
      tokenEndpointAuthMethod: 'client_secret_post',
    };
  },
  google: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://accounts.google.com/o/oauth2/v2/auth',
    tokenEndpoint: 'https://oauth2.googleapis.com/token',
    revocationEndpoint: 'https://oauth2.googleapis.com/revoke',
    tokenEndpointAuthMethod: 'client_secret_post',
    authorizationParams: { access_type: 'offline', prompt: 'consent' },
  }),
  microsoft: (options: { tenant?: string } = {}): ConnectionPreset => {
    const tenant = encodeURIComponent(options.tenant ?? 'common');
    return {
      authorizationEndpoint: `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/authorize`,
      tokenEndpoint: `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`,
      tokenEndpointAuthMethod: 'client_secret_post',
      sendResource: false,
    };
  },
  slack: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://slack.com/oauth/v2/authorize',
    tokenEndpoint: 'https://slack.com/api/oauth.v2.access',
    tokenEndpointAuthMethod: 'client_secret_post',
    scopeSeparator: ',',
    tokenTypes: ['bot', 'user'],
  }),
  atlassian: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://auth.atlassian.com/authorize',
    tokenEndpoint: 'https://auth.atlassian.com/oauth/token',
    tokenEndpointAuthMethod: 'client_secret_post',
    authorizationParams: { audience: 'api.atlassian.com', prompt: 'consent' },
  }),
  notion: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://api.notion.com/v1/oauth/authorize',
    tokenEndpoint: 'https://api.notion.com/v1/oauth/token',
    tokenEndpointAuthMethod: 'client_secret_basic',
    authorizationParams: { owner: 'user' },
  }),
  linear: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://linear.app/oauth/authorize',
    tokenEndpoint: 'https://api.linear.app/oauth/token',
    revocationEndpoint: 'https://api.linear.app/oauth/revoke',
    tokenEndpointAuthMethod: 'client_secret_post',
    scopeSeparator: ',',
  }),
  salesforce: (options: { domain?: 'login' | 'test' | string } = {}): ConnectionPreset => {
    const d = options.domain ?? 'login';
    const host = d === 'login' || d === 'test' ? `${d}.salesforce.com` : d;
    return {
      authorizationEndpoint: `https://${host}/services/oauth2/authorize`,
      tokenEndpoint: `https://${host}/services/oauth2/token`,
      revocationEndpoint: `https://${host}/services/oauth2/revoke`,
      tokenEndpointAuthMethod: 'client_secret_post',
    };
  },
  dropbox: (): ConnectionPreset => ({
    authorizationEndpoint: 'https://www.dropbox.com/oauth2/authorize',
    tokenEndpoint: 'https://api.dropboxapi.com/oauth2/token',
    tokenEndpointAuthMethod: 'client_secret_post',
    authorizationParams: { token_access_type: 'offline' },
  }),
} as const;
