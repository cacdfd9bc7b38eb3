// The public types of the test identity provider (agent-iam/testing).
/** Options of {@link createTestIdentityProvider}. */
export interface TestIdentityProviderOptions {
  /** Port on 127.0.0.1; default 0 (a free port). */
  port?: number;
  /** Clients to register at start (oidc-provider client metadata; `client_id` optional). */
  clients?: Array<Record<string, unknown>>;
  /** Lifetime of access tokens in seconds; default 300. */
  accessTokenTtl?: number;
  /** Rotate the refresh token on every use; default true. */
  refreshTokenRotation?: boolean;
  /**
   * Known resource indicators (RFC 8707). A request for any resource gets a JWT access token with
   * `aud` = the resource; a resource listed here with `scopes` grants only those scopes, any other
   * resource grants whatever scopes were requested.
   */
  resources?: Record<string, { scopes?: string[]; accessTokenTtl?: number }>;
  /** Resource used when a request names none (then access tokens are JWTs for it). */
  defaultResource?: string;
  /** Require PKCE (S256) for every authorization request; default true. */
  pkceRequired?: boolean;
  /**
   * Accept OAuth Client ID Metadata Documents: advertise `client_id_metadata_document_supported`, and
   * when an authorization request's `client_id` is a URL (https, or http on loopback), fetch the
   * document from it, check it, and register the client from it. Default false.
   */
  clientIdMetadataDocuments?: boolean;
  /** Users' claims by user id (`sub`). Any user id may log in; these add claims such as `email`. */
  users?: Record<string, { email?: string; email_verified?: boolean; [claim: string]: unknown }>;
}

/** What `TestIdentityProvider.tokenFor` signs. */
export interface TokenForOptions {
  userId: string;
  email?: string;
  scopes?: string[];
  /** Default: `defaultResource`, else `agent-iam:test`. */
  audience?: string | string[];
  /** Seconds until `exp`; may be negative for an already expired token. Default `accessTokenTtl`. */
  expiresIn?: number;
  /** Extra claims, written last: they may override any standard claim. */
  claims?: Record<string, unknown>;
  /** An RFC 8693 `act` claim. */
  act?: Record<string, unknown>;
  /** The JWS `typ` header; default `at+jwt` (RFC 9068). Use e.g. `JWT` to make an ID-token-like token. */
  typ?: string;
}

/** A fault injected in front of the token endpoint (or the JWKS endpoint). */
export interface TokenEndpointFault {
  /**
   * `5xx`: 503 temporarily_unavailable; `slow`: answer normally, `delayMs` late (on the token
   * endpoint the request is processed at once, the answer held back); `invalid_grant` /
   * `invalid_client`: an OAuth error. On the JWKS endpoint every kind but `slow` answers 503.
   */
  kind: '5xx' | 'slow' | 'invalid_grant' | 'invalid_client';
  /** Which endpoint fails; default `token`. Each endpoint holds its own fault. */
  endpoint?: 'token' | 'jwks';
  /** For `slow`: the delay in milliseconds (default 1000). */
  delayMs?: number;
  /** Token endpoint only: only requests with this `grant_type` are affected (default: all). */
  grantType?: string;
  /** Affect only the next `times` matching requests, then recover by itself (default: until cleared). */
  times?: number;
}

/** A running local identity provider. */
export interface TestIdentityProvider {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly issuer: string;
  /** `issuer + '/jwks'`. */
  readonly jwksUri: string;
  /** The token endpoint, `issuer + '/token'`. */
  readonly tokenEndpoint: string;
  /** The oidc-provider instance, as an escape hatch. */
  readonly provider: unknown;
  /** A real RS256 JWT access token (`typ: at+jwt`) for a user, signed with the key published at `/jwks`. */
  tokenFor(options: TokenForOptions): Promise<string>;
  /**
   * Headless consent: follow the authorization URL, log in as `userId`, grant consent, and return the
   * callback URL (with `code`, `state`, `iss`) without calling it. `deny: true` returns the callback
   * with `error=access_denied`.
   */
  authorize(authorizationUrl: string | URL, options: { userId: string; deny?: boolean }): Promise<string>;
  /** Register a client (confidential or public) and return its metadata, including `client_secret`. */
  registerClient(metadata: Record<string, unknown>): Promise<RegisteredClient>;
  /** Requests received (faulted ones included): token endpoint by `grant_type`, JWKS fetches, revocation (RFC 7009) requests. */
  readonly stats: { token: Record<string, number>; jwks: number; revocation: number };
  /** Zero the counters in `stats`. */
  resetStats(): void;
  /** Make the token (or JWKS) endpoint fail or slow down; `null` clears every fault. */
  setFault(fault: null | TokenEndpointFault): void;
  /**
   * Publish a new signing key at `/jwks` (first in the set) and sign `tokenFor` tokens with it
   * from now on. `retirePrevious` removes the key `tokenFor` used before from `/jwks`, unless it is
   * the provider's own key (which also signs ID tokens and resource JWTs, and always stays published).
   */
  rotateSigningKey(options?: { retirePrevious?: boolean }): Promise<{ kid: string }>;
  /**
   * Revoke at the server every grant a user gave (optionally only to one client), as when the user
   * disconnects an app at the provider: its refresh and opaque access tokens stop working and the
   * next refresh fails with a real `invalid_grant`. Resolves with the number of grants revoked.
   */
  revokeGrants(filter: { userId: string; clientId?: string }): Promise<number>;
  /**
   * OpenID CIBA (poll mode): the backchannel authentication requests waiting on a user's "device",
   * newest last. Register a client with `grant_types: ['urn:openid:params:grant-type:ciba']` and
   * `backchannel_token_delivery_mode: 'poll'` to send them.
   */
  backchannelRequests(): BackchannelRequest[];
  /** The user confirms (`approve: true`) or refuses a backchannel request on their device. */
  completeBackchannel(authReqId: string, options: { approve: boolean }): Promise<void>;
  /** Stop the server and drop open connections. */
  close(): Promise<void>;
}

/** A CIBA request as the user's authentication device shows it. */
export interface BackchannelRequest {
  authReqId: string;
  userId: string;
  clientId: string;
  scope: string;
  bindingMessage?: string;
  /** RFC 9396 `authorization_details` as sent (JSON), when the client sent it. */
  authorizationDetails?: string;
}

/** A registered client's metadata. */
export interface RegisteredClient {
  client_id: string;
  client_secret?: string;
  [key: string]: unknown;
}
