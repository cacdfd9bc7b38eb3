/**
 * Every failure in agent-iam is an {@link AgentIamError} with a stable {@link AgentIamErrorCode}.
 *
 * Assert on `error.code`, not on `instanceof`: the ESM and CJS builds each carry their own copy of
 * the class. Use {@link isAgentIamError} to narrow an unknown value.
 *
 * Nothing secret (token, key, client secret, authorization code) is ever put into an error's
 * message or any enumerable field.
 *
 * @module
 */

/** The stable error codes, with the HTTP status each maps to. */
export const ERROR_STATUS = {
  TOKEN_MISSING: 401,
  TOKEN_MALFORMED: 401,
  TOKEN_SIGNATURE_INVALID: 401,
  TOKEN_ALG_NOT_ALLOWED: 401,
  TOKEN_EXPIRED: 401,
  TOKEN_NOT_YET_VALID: 401,
  TOKEN_ISSUER_UNKNOWN: 401,
  TOKEN_AUDIENCE_MISMATCH: 401,
  USER_CLAIM_MISSING: 401,
  DOMAIN_NOT_ALLOWED: 403,
  INSUFFICIENT_SCOPE: 403,
  JWKS_UNAVAILABLE: 503,
  TOOL_NOT_REGISTERED: 403,
  REQUEST_INVALID: 400,
  POLICY_DENIED: 403,
  APPROVAL_REQUIRED: 403,
  CAPABILITY_DENIED: 403,
  CONSENT_REQUIRED: 401,
  REDIRECT_BLOCKED: 502,
  TOOL_UNAVAILABLE: 502,
  OAUTH_STATE_MISMATCH: 400,
  OAUTH_ERROR: 502,
  SCOPE_ESCALATION: 403,
  TOKEN_ENDPOINT_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  CONFIG_INVALID: 500,
  INTERNAL_ERROR: 500,
} as const;

/**
 * A stable, machine-readable error code. The README's error table says when each is used.
 * `INTERNAL_ERROR` is what an HTTP answer says for a failure that is not an agent-iam error
 * (never the failure's own message).
 */
export type AgentIamErrorCode = keyof typeof ERROR_STATUS;

/** The codes that come from verifying an inbound bearer token (they carry `WWW-Authenticate`). */
const INBOUND_CODES: ReadonlySet<AgentIamErrorCode> = new Set<AgentIamErrorCode>([
  'TOKEN_MISSING',
  'TOKEN_MALFORMED',
  'TOKEN_SIGNATURE_INVALID',
  'TOKEN_ALG_NOT_ALLOWED',
  'TOKEN_EXPIRED',
  'TOKEN_NOT_YET_VALID',
  'TOKEN_ISSUER_UNKNOWN',
  'TOKEN_AUDIENCE_MISMATCH',
  'USER_CLAIM_MISSING',
  'DOMAIN_NOT_ALLOWED',
  'INSUFFICIENT_SCOPE',
  'JWKS_UNAVAILABLE',
]);

/**
 * The machine-readable `reason` values, each listed with its code in {@link AgentIamErrorOptions.reason}.
 */
export type AgentIamErrorReason =
  | 'timeout'
  | 'error'
  | 'undecryptable'
  | 'unknown_key'
  | 'malformed'
  | 'not_encrypted'
  | 'encrypted'
  | 'not_serializable'
  | 'contended'
  | 'conflict'
  | 'secret_unavailable'
  | 'tool_unreachable'
  | 'header_not_allowed'
  | 'self_approval'
  | 'approval_denied'
  | 'approval_expired'
  | 'not_an_approver'
  | 'same_approver'
  | 'approver_not_a_user'
  | 'csrf_origin'
  | 'csrf_token'
  | `authorization_start_failed:${AgentIamErrorCode | 'error'}`;

/** Options for {@link AgentIamError}: only safe, non-secret values belong here. */
export interface AgentIamErrorOptions {
  /** Overrides the status of the code. */
  status?: number;
  /** A ready `WWW-Authenticate` header value (inbound errors). */
  wwwAuthenticate?: string;
  /** `APPROVAL_REQUIRED`: the pending approval's id. */
  approvalId?: string;
  /** `APPROVAL_REQUIRED`: a summary that is safe to show an approver. */
  approval?: ApprovalSummary;
  /** `CONSENT_REQUIRED`: where to send the user to (re)connect the account. */
  authorizationUrl?: string;
  /** `CONSENT_REQUIRED`: the id of the token-manager connection the user must connect (e.g. `github`). */
  connection?: string;
  /** `OAUTH_ERROR`: the OAuth `error` value returned by the server (e.g. `invalid_grant`). */
  oauthError?: string;
  /**
   * `CONFIG_INVALID`: the path of the offending option, e.g. `providers.0.jwksUri`.
   * `REQUEST_INVALID`: the offending argument or header (`headers.x-http-method-override`).
   */
  field?: string;
  /** `INSUFFICIENT_SCOPE` / `SCOPE_ESCALATION`: the scopes that were required or refused. */
  scopes?: string[];
  /**
   * `STORE_UNAVAILABLE`: why the store call failed — `timeout`, `error` (the adapter failed),
   * `undecryptable` (tampered record or wrong key), `unknown_key` (the record names a key id that is
   * not configured), `malformed` (not a record agent-iam wrote), `not_encrypted` (a plain record where
   * an encrypted one is required), `encrypted` (an encrypted record and no key configured),
   * `not_serializable` (the value cannot be stored as JSON), `contended` (others kept changing the
   * record), `conflict`.
   * `CONSENT_REQUIRED` without `authorizationUrl`: `authorization_start_failed:<code>`, the code of
   * the error that stopped the token manager from building the URL (that error is the `cause`).
   * `TOOL_UNAVAILABLE` from toolFetch: `tool_unreachable`, the tool itself could not be
   * reached (fetch's error is the `cause`).
   * `REQUEST_INVALID` from toolFetch: `header_not_allowed`, a caller header that changes what the
   * tool does (its name in `field`, as `headers.<name>`).
   * `POLICY_DENIED` from `approvals.approve`: `self_approval`, the approver is the requester, the
   * agent or an actor of the request. `POLICY_DENIED` from toolFetch: `approval_denied`, an approver
   * denied the approval this request is bound to (its id in `approvalId`); `approval_expired`, it
   * lapsed while `waitForApproval` waited (or the CIBA request expired at the provider).
   */
  reason?: AgentIamErrorReason;
  /**
   * The underlying error. Kept non-enumerable. Never pass an error that may hold a secret
   * (oauth4webapi errors can carry codes and tokens): wrap it and drop it instead.
   */
  cause?: unknown;
}

/**
 * What an approver sees about a pending request: no secrets, no query values, no body. Every field
 * shown is part of what the approval is bound to.
 */
export interface ApprovalSummary {
  agentId: string;
  /** The user the agent acts for: the requester. */
  userId?: string;
  tool: string;
  /** The method on the request line. */
  method: string;
  /** The URL path as sent. */
  path: string;
  /** Host (and port) the request goes to. Absent on approvals created before it was bound. */
  host?: string;
  /**
   * Headers the tool allows (`allowHeaders`) that change what it does, as sent with the request:
   * a method override shows its method (`{ 'x-http-method-override': 'DELETE' }`), any other header
   * `sha256:<hex>` of its value.
   */
  headers?: Record<string, string>;
  /** Lower-case hex SHA-256 of the query string as sent, without the leading `?` (of `''` when there is none). */
  querySha256?: string;
  /** Lower-case hex SHA-256 of the request body (of the empty string when there is none). */
  bodySha256?: string;
  /**
   * A summary the agent's author passed with the request (`approvalDescription`): shown as given,
   * never verified, not bound. Render it as untrusted text.
   */
  description?: string;
}

/**
 * The one error class of agent-iam.
 *
 * @example
 * ```ts
 * try { await verifier.verify(request); }
 * catch (e) { if (isAgentIamError(e) && e.code === 'TOKEN_EXPIRED') { ... } }
 * ```
 */
export class AgentIamError extends Error {
  /** The stable code. */
  readonly code: AgentIamErrorCode;
  /** The HTTP status that fits this error. */
  readonly status: number;
  /** For inbound errors: the `WWW-Authenticate` header value to send with a 401/403. */
  readonly wwwAuthenticate?: string;
  readonly approvalId?: string;
  readonly approval?: ApprovalSummary;
  readonly authorizationUrl?: string;
  /** `CONSENT_REQUIRED`: the connection to connect. */
  readonly connection?: string;
  readonly oauthError?: string;
  readonly field?: string;
  readonly scopes?: string[];
  /** A finer cause for some codes (see {@link AgentIamErrorOptions.reason}). */
  readonly reason?: AgentIamErrorReason;

  constructor(code: AgentIamErrorCode, message: string, options: AgentIamErrorOptions = {}) {
    super(message);
    this.name = 'AgentIamError';
    this.code = code;
    this.status = options.status ?? ERROR_STATUS[code];
    if (options.wwwAuthenticate !== undefined) this.wwwAuthenticate = options.wwwAuthenticate;
    if (options.approvalId !== undefined) this.approvalId = options.approvalId;
    if (options.approval !== undefined) this.approval = options.approval;
    if (options.authorizationUrl !== undefined) this.authorizationUrl = options.authorizationUrl;
    if (options.connection !== undefined) this.connection = options.connection;
    if (options.oauthError !== undefined) this.oauthError = options.oauthError;
    if (options.field !== undefined) this.field = options.field;
    if (options.scopes !== undefined) this.scopes = options.scopes;
    if (options.reason !== undefined) this.reason = options.reason;
    if (options.cause !== undefined) {
      Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false, writable: true, configurable: true });
    }
  }

  /** A safe JSON shape: `{ error, message }` plus the safe fields. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { error: this.code, message: this.message };
    if (this.approvalId !== undefined) out.approvalId = this.approvalId;
    if (this.authorizationUrl !== undefined) out.authorizationUrl = this.authorizationUrl;
    if (this.connection !== undefined) out.connection = this.connection;
    if (this.oauthError !== undefined) out.oauthError = this.oauthError;
    if (this.scopes !== undefined) out.scopes = this.scopes;
    return out;
  }
}

/** True when `value` is an agent-iam error (from either the ESM or the CJS build). */
/**
 * The fields each code always carries (the others are optional on every code). Narrowing on `code`
 * gives them their non-optional types; see {@link KnownAgentIamError}.
 */
export interface AgentIamErrorFields {
  APPROVAL_REQUIRED: { readonly approvalId: string; readonly approval: ApprovalSummary };
  OAUTH_ERROR: { readonly oauthError: string };
  CONFIG_INVALID: { readonly field: string };
}

/**
 * An {@link AgentIamError} as a union discriminated by `code`: after `e.code === 'APPROVAL_REQUIRED'`,
 * `e.approvalId` is a `string`. `CONSENT_REQUIRED` carries `authorizationUrl` when a URL could be
 * built (no redirect URI, an API-key connection or a failed start have none, and say why in `reason`),
 * so it stays `string | undefined`: check it before redirecting.
 *
 * @example
 * ```ts
 * try { await toolFetch(url, { context }); }
 * catch (e) {
 *   if (!isAgentIamError(e)) throw e;
 *   if (e.code === 'APPROVAL_REQUIRED') notifyApprovers(e.approvalId, e.approval);
 *   else if (e.code === 'CONSENT_REQUIRED' && e.authorizationUrl) redirect(e.authorizationUrl);
 * }
 * ```
 */
export type KnownAgentIamError = {
  [C in AgentIamErrorCode]: AgentIamError & { readonly code: C } & (C extends keyof AgentIamErrorFields ? AgentIamErrorFields[C] : unknown);
}[AgentIamErrorCode];

/** True for an agent-iam error from either build (ESM or CJS); narrows to {@link KnownAgentIamError}. */
export function isAgentIamError(value: unknown): value is KnownAgentIamError {
  return (
    value instanceof AgentIamError ||
    (typeof value === 'object' &&
      value !== null &&
      (value as { name?: unknown }).name === 'AgentIamError' &&
      typeof (value as { code?: unknown }).code === 'string' &&
      (value as { code: string }).code in ERROR_STATUS)
  );
}

/** True for the codes produced by inbound verification. */
export function isInboundCode(code: AgentIamErrorCode): boolean {
  return INBOUND_CODES.has(code);
}

/** Parameters of an RFC 6750 `Bearer` challenge. */
export interface BearerChallenge {
  realm?: string;
  error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope';
  errorDescription?: string;
  scope?: string[];
  resourceMetadata?: string;
}

/** Quote a value for an auth-param: drop anything outside visible ASCII and space, escape `"` and `\`. */
function quote(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * Build an RFC 6750 `WWW-Authenticate: Bearer ...` value.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 * @see https://www.rfc-editor.org/rfc/rfc9728#section-5.1 (`resource_metadata`)
 */
export function bearerChallenge(challenge: BearerChallenge = {}): string {
  const params: string[] = [];
  if (challenge.realm !== undefined) params.push(`realm=${quote(challenge.realm)}`);
  if (challenge.error !== undefined) params.push(`error=${quote(challenge.error)}`);
  if (challenge.errorDescription !== undefined) params.push(`error_description=${quote(challenge.errorDescription)}`);
  if (challenge.scope !== undefined && challenge.scope.length > 0) params.push(`scope=${quote(challenge.scope.join(' '))}`);
  if (challenge.resourceMetadata !== undefined) params.push(`resource_metadata=${quote(challenge.resourceMetadata)}`);
  return params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`;
}

/** The RFC 6750 `error` value that fits an inbound code. */
export function bearerErrorFor(code: AgentIamErrorCode): BearerChallenge['error'] | undefined {
  switch (code) {
    case 'TOKEN_MISSING':
    case 'JWKS_UNAVAILABLE':
      return undefined; // RFC 6750 §3.1: no error code when the request carried no authentication
    case 'INSUFFICIENT_SCOPE':
    case 'DOMAIN_NOT_ALLOWED':
      return code === 'INSUFFICIENT_SCOPE' ? 'insufficient_scope' : 'invalid_token';
    default:
      return 'invalid_token';
  }
}

/** A rendered HTTP error response, for adapters. */
export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { error: string; message: string; [key: string]: unknown };
}

/**
 * Render any thrown value into an HTTP response. Unknown errors become a generic 500 whose body
 * never echoes the original message.
 */
export function renderError(error: unknown): ErrorResponse {
  if (!isAgentIamError(error)) {
    return {
      status: 500,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      body: { error: 'INTERNAL_ERROR' satisfies AgentIamErrorCode, message: 'Internal error' },
    };
  }
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  };
  if (error.wwwAuthenticate !== undefined) headers['www-authenticate'] = error.wwwAuthenticate;
  return { status: error.status, headers, body: error.toJSON() as ErrorResponse['body'] };
}

// ---- Factories ------------------------------------------------------------------------------
// The one place the SDK's recurring errors are built, so that a code is always raised with the same
// message shape and fields. Modules with a message of their own (`Authorization callback refused:
// why`) wrap these; they do not build the error themselves.

/** @internal `CONFIG_INVALID` for one option: `Invalid option <field>: <message>`, with `field`. */
export function configError(field: string, message: string): AgentIamError {
  return new AgentIamError('CONFIG_INVALID', `Invalid option ${field}: ${message}`, { field });
}

/**
 * @internal `REQUEST_INVALID`: 400 unless `status` says 403 (a form that failed its anti-CSRF
 * check), 404 (an unknown id) or 413 (a body over the limit).
 */
export function requestInvalid(
  message: string,
  options: { field?: string | undefined; status?: 400 | 403 | 404 | 413; reason?: AgentIamErrorReason } = {},
): AgentIamError {
  return new AgentIamError('REQUEST_INVALID', message, options.field === undefined ? options : { ...options, field: options.field });
}

/** @internal `REQUEST_INVALID` 404 for an unknown id: `<what> not found`. */
export function notFoundError(what: string): AgentIamError {
  return new AgentIamError('REQUEST_INVALID', `${what} not found`, { status: 404 });
}

/** @internal `REQUEST_INVALID` 413: the request body is over `maxBytes` (or over the limit). */
export function bodyTooLarge(maxBytes?: number): AgentIamError {
  return new AgentIamError('REQUEST_INVALID', maxBytes === undefined ? 'The request body is too large' : `The request body is larger than ${maxBytes} bytes`, { status: 413 });
}

/**
 * @internal `STORE_UNAVAILABLE` with its `reason` (`timeout`, `error`, `malformed`, `undecryptable`,
 * `contended`, …). `cause` is kept non-enumerable; it must not carry a stored secret.
 */
export function storeUnavailable(message: string, reason: AgentIamErrorReason, cause?: unknown): AgentIamError {
  return new AgentIamError('STORE_UNAVAILABLE', message, cause === undefined ? { reason } : { reason, cause });
}

/** @internal `OAUTH_STATE_MISMATCH`: 400, or 403 when the flow belongs to another user or browser. */
export function stateMismatch(message: string, status: 400 | 403 = 400): AgentIamError {
  return new AgentIamError('OAUTH_STATE_MISMATCH', message, status === 400 ? {} : { status });
}

/** @internal `TOKEN_ENDPOINT_UNAVAILABLE`: the authorization server (or a secret it needs) cannot be reached. */
export function tokenEndpointUnavailable(message: string, reason?: AgentIamErrorReason): AgentIamError {
  return new AgentIamError('TOKEN_ENDPOINT_UNAVAILABLE', message, reason === undefined ? {} : { reason });
}
