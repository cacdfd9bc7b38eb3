/**
 * Public types of the token manager. The implementation lives in token-manager.ts; outbound code
 * depends only on these types.
 *
 * @module
 */
import type { AgentContext } from '../context.js';

/** Status of a connected account. */
export type AccountStatus = 'active' | 'expired' | 'revoked' | 'needs_consent';

/** A connected account as shown to callers: never any token material. */
export interface ConnectedAccount {
  connection: string;
  /** The user the account belongs to (absent for organisation accounts). */
  userId?: string;
  /** The organisation the account belongs to (absent for user accounts). */
  orgId?: string;
  status: AccountStatus;
  /** `oauth2` or `apiKey`. */
  kind: 'oauth2' | 'apiKey';
  scopes: string[];
  /** Access token expiry, epoch ms; undefined when the token does not expire. */
  expiresAt?: number;
  createdAt: number;
  updatedAt: number;
}

/** An access token handed to outbound code. */
export interface AccessTokenResult {
  accessToken: string;
  tokenType: string;
  /** epoch ms */
  expiresAt?: number;
  scopes: string[];
}

export interface AccountRef {
  connection: string;
  userId?: string;
  orgId?: string;
}

export interface StartAuthorizationOptions {
  connection: string;
  userId: string;
  orgId?: string;
  scopes?: string[];
}

export interface StartAuthorizationResult {
  url: string;
  state: string;
}

export interface ClientCredentialsOptions {
  connection: string;
  scopes?: string[];
  resource?: string;
  audience?: string;
}

/** What an `enterprise` tool asks the token manager for (see `TokenManager.enterpriseToken`). */
export interface EnterpriseTokenRequest {
  /** The resource's connection (e.g. an MCP server): its authorization server accepts the ID-JAG. */
  connection: string;
  /** The enterprise IdP's connection: where the ID token is exchanged for an ID-JAG. */
  idp: string;
  /** The user's ID token from the enterprise IdP. */
  idToken?: string;
  /** Or a context verified from that ID token (its raw token is used). */
  context?: AgentContext;
  /** Scopes to ask of the resource's authorization server (default: the connection's `scopes`). */
  scopes?: string[];
}

export interface TokenExchangeOptions {
  connection: string;
  /** The inbound context whose raw token is the subject token. */
  context?: AgentContext;
  subjectToken?: string;
  subjectTokenType?: string;
  actorToken?: string;
  actorTokenType?: string;
  audience?: string;
  resource?: string;
  scopes: string[];
}

/**
 * @internal Key of the optional {@link TokenSource} method that forgets a cached service token a
 * tool rejected. A symbol, not exported from any barrel: only toolFetch calls it.
 */
// Symbol.for: the ESM and CJS builds must agree on it (a token manager from one, toolFetch from the other).
export const DROP_REJECTED_TOKEN: unique symbol = Symbol.for('agent-iam.dropRejectedToken');

/**
 * @internal Key of the optional {@link TokenSource} member toolFetch uses to learn a protected
 * resource's challenge: whether a connection wants its resource asked without a credential first
 * (an MCP server discovered from `resource`, with no account yet), and what its 401 said.
 */
export const RESOURCE_CHALLENGE: unique symbol = Symbol.for('agent-iam.resourceChallenge');

/** @internal See {@link RESOURCE_CHALLENGE}. */
export interface ResourceChallengeHooks {
  /** True when a request to this connection's resource should go out once without a credential. */
  wantsProbe(connection: string): boolean;
  /** The `WWW-Authenticate` of the resource's 401: its `resource_metadata` and `scope` are used by discovery and consent. */
  challenge(connection: string, wwwAuthenticate: string): void;
}

/** @internal Which cached service token a tool rejected: the same options that obtained it. */
export type RejectedTokenRequest =
  | { kind: 'clientCredentials'; options: ClientCredentialsOptions }
  | { kind: 'tokenExchange'; options: TokenExchangeOptions }
  | { kind: 'enterprise'; options: EnterpriseTokenRequest }
  /** A user's account token: expire it (a refresh follows), or with `final`, the account needs consent. */
  | { kind: 'account'; options: AccountRef; final?: boolean };

/** The part of the token manager that outbound credential injection uses. */
export interface TokenSource {
  getAccessToken(options: AccountRef): Promise<AccessTokenResult>;
  startAuthorization(options: StartAuthorizationOptions): Promise<StartAuthorizationResult>;
  clientCredentials(options: ClientCredentialsOptions): Promise<AccessTokenResult>;
  exchange(options: TokenExchangeOptions): Promise<AccessTokenResult>;
  /** Optional: enterprise-managed authorization (ID-JAG), for `enterprise` tools. */
  enterpriseToken?(options: EnterpriseTokenRequest): Promise<AccessTokenResult>;
  /**
   * @internal Optional: forget the cached token that `request` obtained, if the cache entry still
   * holds exactly `accessToken` (a token refreshed meanwhile, or another user's or subject's
   * entry, is never touched). Returns true when an entry was dropped. Never throws.
   */
  [DROP_REJECTED_TOKEN]?(request: RejectedTokenRequest, accessToken: string): boolean | Promise<boolean>;
  /** @internal Optional: see {@link RESOURCE_CHALLENGE}. */
  readonly [RESOURCE_CHALLENGE]?: ResourceChallengeHooks;
}
