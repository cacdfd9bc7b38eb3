/**
 * Internal: the bridge to oauth4webapi — request options (custom fetch, loopback-only http, abort
 * signal), bounded retries, and mapping of its errors to safe AgentIamErrors (its errors can hold
 * codes and tokens, so they are never passed on).
 *
 * @module
 */
import * as oauth from 'oauth4webapi';
import { AgentIamError, isAgentIamError } from '../errors.js';
import { sleep } from '../lib/async.js';

/** Shared HTTP settings of a token manager. */
export interface HttpSettings {
  fetch?: typeof fetch;
  timeoutMs: number;
  retries: number;
}

/** Options for an oauth4webapi request. `insecure` only when the endpoint is loopback http (checked before). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function requestOptions(http: HttpSettings, signal: AbortSignal, insecure: boolean): oauth.HttpRequestOptions<any, any> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const o: oauth.HttpRequestOptions<any, any> = { signal };
  if (http.fetch !== undefined) {
    const f = http.fetch;
    o[oauth.customFetch] = (url, init) => f(url, init as RequestInit);
  }
  if (insecure) o[oauth.allowInsecureRequests] = true;
  return o;
}

/** An OAuth `error` value made safe to carry: visible ASCII, bounded. */
export function safeOAuthCode(value: unknown): string {
  return typeof value === 'string' && /^[\x21-\x7e]{1,64}$/.test(value) ? value : 'invalid_response';
}

/** Provider-specific names for an unusable grant (GitHub, Slack), normalised to `invalid_grant`. */
const INVALID_GRANT_ALIASES = new Set(['bad_refresh_token', 'bad_verification_code', 'invalid_refresh_token', 'invalid_code', 'token_revoked', 'code_already_used']);

function normalizeProviderError(code: string): string {
  return INVALID_GRANT_ALIASES.has(code) ? 'invalid_grant' : code;
}

export function unavailable(what: string): AgentIamError {
  return new AgentIamError('TOKEN_ENDPOINT_UNAVAILABLE', `${what}: the authorization server is unavailable`);
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
  const deadline = Date.now() + http.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - Date.now();
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
      const left = deadline - Date.now();
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
