/**
 * Internal: the bridge to oauth4webapi — request options (custom fetch, loopback-only http, abort
 * signal), bounded retries, and mapping of its errors to safe AgentIamErrors (its errors can hold
 * codes and tokens, so they are never passed on).
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import { AgentIamError, isAgentIamError, tokenEndpointUnavailable } from '../errors.js';
import { sleep } from '../lib/async.js';
import { readBoundedBytes } from '../lib/bounded-read.js';
import { nowMs } from '../lib/clock.js';

/** Shared HTTP settings of a token manager. */
export interface HttpSettings {
  fetch?: typeof fetch;
  timeoutMs: number;
  retries: number;
  /** Largest answer read from an authorization server or metadata endpoint (bytes). */
  maxResponseBytes: number;
}

/** Default {@link HttpSettings.maxResponseBytes}: token, registration and metadata answers are a few KiB. */
export const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024;

function tooLarge(max: number): AgentIamError {
  return oauthError('response', 'invalid_response', `the server's answer is larger than ${max} bytes`);
}

/**
 * The answer with its body read, at most `max` bytes (a `content-length` above it is refused before
 * reading). oauth4webapi reads bodies without a limit; every answer it sees passes through here.
 */
export async function boundedResponse(res: Response, max: number): Promise<Response> {
  if (res.body === null) return res;
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await res.body.cancel().catch(() => {});
    throw tooLarge(max);
  }
  const bytes = await readBoundedBytes(res.body, max);
  if (bytes === undefined) throw tooLarge(max);
  return new Response(bytes as BodyInit, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** `fetch` for any request to an authorization server or metadata endpoint: the configured one, bounded. */
export function boundedFetch(http: HttpSettings): (url: string, init?: RequestInit) => Promise<Response> {
  const f = http.fetch ?? fetch;
  return async (url, init) => boundedResponse(await f(url, init), http.maxResponseBytes);
}

/** Options for an oauth4webapi request. `insecure` only when the endpoint is loopback http (checked before). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function requestOptions(http: HttpSettings, signal: AbortSignal, insecure: boolean): oauth.HttpRequestOptions<any, any> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const o: oauth.HttpRequestOptions<any, any> = { signal };
  const f = boundedFetch(http);
  o[oauth.customFetch] = (url, init) => f(url, init as RequestInit);
  if (insecure) o[oauth.allowInsecureRequests] = true;
  return o;
}

/**
 * RFC 6749 token values: visible ASCII (`%x20-7E` allows a space; tokens here are sent in headers,
 * so no space either) and at most 16 KiB. Checked on receipt, before anything is cached or stored:
 * a token the SDK could never send again (CR/LF, control characters) is refused at once.
 */
export function checkTokenValue(value: unknown, what: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > 16384 || !/^[\x21-\x7e]+$/.test(value)) {
    throw oauthError(what, 'invalid_response', 'the server sent a token that is not a valid token value');
  }
}

/** {@link checkTokenValue} on an answer's access token and, when present, its refresh token. Returns the answer. */
export function checkedTokens<T extends { access_token: string; refresh_token?: string | undefined }>(tokens: T, what: string): T {
  checkTokenValue(tokens.access_token, what);
  if (tokens.refresh_token !== undefined) checkTokenValue(tokens.refresh_token, what);
  return tokens;
}

/**
 * The `error` codes registered for OAuth (RFC 6749, 6750, 7591, 8628, 8693, 8707, 9068, 9449, OpenID
 * Connect) and the provider aliases normalised below. Only these are carried as sent.
 */
const KNOWN_ERROR_CODES = new Set([
  'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope',
  'access_denied', 'unsupported_response_type', 'server_error', 'temporarily_unavailable', 'invalid_token', 'insufficient_scope',
  'invalid_redirect_uri', 'invalid_client_metadata', 'invalid_software_statement', 'unapproved_software_statement',
  'authorization_pending', 'slow_down', 'expired_token', 'unsupported_token_type', 'invalid_target', 'invalid_dpop_proof',
  'use_dpop_nonce', 'interaction_required', 'login_required', 'account_selection_required', 'consent_required',
  'invalid_request_uri', 'invalid_request_object', 'request_not_supported', 'request_uri_not_supported',
  'registration_not_supported', 'invalid_authorization_details', 'invalid_resource', 'invalid_response', 'unsupported_response',
  'bad_refresh_token', 'bad_verification_code', 'invalid_refresh_token', 'invalid_code', 'token_revoked', 'code_already_used',
]);

/**
 * An OAuth `error` value made safe to carry in a message, `oauthError` or an audit event: a
 * registered code as sent, anything else `unrecognized_error` (a hostile server could otherwise put a
 * token or other text of its choosing there). The description is never used.
 */
export function safeOAuthCode(value: unknown): string {
  if (typeof value !== 'string') return 'invalid_response';
  return KNOWN_ERROR_CODES.has(value) ? value : 'unrecognized_error';
}

/** Provider-specific names for an unusable grant (GitHub, Slack), normalised to `invalid_grant`. */
const INVALID_GRANT_ALIASES = new Set(['bad_refresh_token', 'bad_verification_code', 'invalid_refresh_token', 'invalid_code', 'token_revoked', 'code_already_used']);

function normalizeProviderError(code: string): string {
  return INVALID_GRANT_ALIASES.has(code) ? 'invalid_grant' : code;
}

export function unavailable(what: string): AgentIamError {
  return tokenEndpointUnavailable(`${what}: the authorization server is unavailable`);
}

export function oauthError(what: string, code: string, detail = 'the authorization server returned an error'): AgentIamError {
  return new AgentIamError('OAUTH_ERROR', `${what}: ${detail} (${code})`, { oauthError: code });
}

function statusOf(e: unknown): number | undefined {
  const c = (e as { cause?: unknown }).cause;
  if (c instanceof Response) return c.status;
  const s = (e as { status?: unknown }).status;
  return typeof s === 'number' ? s : undefined;
}

/**
 * Map anything thrown during a protocol step into a safe AgentIamError. Nothing from the original
 * error (message, cause, response) is kept: those can carry the authorization code or tokens.
 */
export function toSafeError(e: unknown, what: string): AgentIamError {
  if (isAgentIamError(e)) return e;
  if (e instanceof oauth.ResponseBodyError) {
    if (e.status >= 500 || e.status === 429) return unavailable(what);
    return oauthError(what, safeOAuthCode(e.error));
  }
  if (e instanceof oauth.AuthorizationResponseError) return oauthError(what, safeOAuthCode(e.error));
  if (e instanceof oauth.WWWAuthenticateChallengeError) {
    if (e.status >= 500) return unavailable(what);
    const fromChallenge = e.cause?.[0]?.parameters?.error;
    return oauthError(what, safeOAuthCode(fromChallenge ?? (e.status === 401 ? 'invalid_client' : 'invalid_request')));
  }
  if (e instanceof oauth.UnsupportedOperationError) return oauthError(what, 'unsupported_response', 'the authorization server answered with something unsupported');
  if (e instanceof oauth.OperationProcessingError) {
    // GitHub and Slack answer some errors with HTTP 200 and an `error` member in the body.
    const bodyError = ((e as { cause?: { body?: { error?: unknown } } }).cause?.body as { error?: unknown } | undefined)?.error;
    if (typeof bodyError === 'string') return oauthError(what, normalizeProviderError(safeOAuthCode(bodyError)));
    const status = statusOf(e);
    if (status !== undefined && (status >= 500 || status === 429)) return unavailable(what);
    if (e.code === oauth.JSON_ATTRIBUTE_COMPARISON) return oauthError(what, 'invalid_response', 'the server metadata or response does not match what was expected');
    return oauthError(what, 'invalid_response', 'the authorization server sent an invalid response');
  }
  const name = (e as { name?: unknown } | null)?.name;
  if (name === 'AbortError' || name === 'TimeoutError') return unavailable(what);
  if (e instanceof TypeError) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_')) return oauthError(what, 'invalid_request', 'the request could not be built');
    return unavailable(what); // fetch failed: network error
  }
  return oauthError(what, 'invalid_response', 'unexpected failure');
}

export function isTransient(e: AgentIamError): boolean {
  return e.code === 'TOKEN_ENDPOINT_UNAVAILABLE';
}

/**
 * Run one protocol step with bounded retries: network errors, timeouts and 5xx are retried with
 * exponential backoff (plus jitter); the whole call, retries included, ends by `timeoutMs`.
 */
export async function withRetry<T>(http: HttpSettings, what: string, step: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = nowMs() + http.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - nowMs();
    if (remaining <= 0) throw unavailable(what);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('timeout', 'TimeoutError')), remaining);
    let abortHandler: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      abortHandler = () => reject(unavailable(what));
      controller.signal.addEventListener('abort', abortHandler, { once: true });
    });
    aborted.catch(() => {});
    try {
      return await Promise.race([step(controller.signal), aborted]);
    } catch (e) {
      const err = toSafeError(e, what);
      if (!isTransient(err) || attempt >= http.retries) throw err;
      const backoff = Math.min(100 * 2 ** attempt, 2000) * (0.5 + Math.random() / 2);
      const left = deadline - nowMs();
      if (left <= backoff) throw err;
      await sleep(backoff);
    } finally {
      clearTimeout(timer);
      if (abortHandler) controller.signal.removeEventListener('abort', abortHandler);
    }
  }
}

/** Recognised token types: bearer (built in) plus the connection's extra ones. */
export function recognizedTokenTypes(extra: readonly string[] | undefined): oauth.RecognizedTokenTypes | undefined {
  if (!extra || extra.length === 0) return undefined;
  const out: oauth.RecognizedTokenTypes = {};
  for (const t of extra) out[t.toLowerCase() as Lowercase<string>] = () => {};
  return out;
}
