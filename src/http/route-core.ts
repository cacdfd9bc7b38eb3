/**
 * Internal module. The framework-free shape of the consent and approval routes: a {@link RouteRequest} in,
 * a {@link RouteResponse} out (or `undefined`: not one of these routes, pass it on). The Express and
 * Hono adapters only translate to and from these.
 *
 * @module
 */
import type { AgentContext } from '../context.js';
import { AgentIamError, bearerChallenge, renderError, notFoundError, requestInvalid, bodyTooLarge } from '../errors.js';
import { hasControlChars } from '../lib/encoding.js';

/**
 * A request as the route core sees it.
 *
 * @example
 * ```ts
 * await routes.handle({ method: 'GET', path: '/oauth/accounts', query: new URLSearchParams(), context });
 * ```
 */
export interface RouteRequest {
  /** Upper-case HTTP method. */
  method: string;
  /** The URL path (percent-encoded, as sent), without the query string. */
  path: string;
  /** The query string parameters. */
  query: URLSearchParams;
  /** The verified caller (set by `agentAuth` or any middleware of the app), if any. */
  context: AgentContext | undefined;
  /** Reads the JSON body, only when a route needs one (`undefined` when the body is empty). */
  readBody?: () => Promise<unknown>;
  /** The `Accept` header: `application/json` makes `connect` answer `{ authorizationUrl }` instead of a 302. */
  accept?: string | undefined;
  /** A request header by lower-case name (the first value when repeated), for the pages (cookies, Origin). */
  header?: (name: string) => string | undefined;
  /** Reads an `application/x-www-form-urlencoded` body (at most 16 KiB), for the pages' forms. */
  readForm?: () => Promise<URLSearchParams>;
}

/** True when the client asked for JSON rather than a redirect (`Accept: application/json`, not `text/html`). */
export function wantsJson(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const a = accept.toLowerCase();
  return a.includes('application/json') && !a.includes('text/html');
}

/**
 * A response as the route core decides it: the adapters write `status`, `headers` and, when set,
 * `body` as JSON.
 *
 * @example
 * ```ts
 * const r: RouteResponse = { status: 302, headers: { location: 'https://idp.example.com/authorize?…' } };
 * ```
 */
export interface RouteResponse {
  status: number;
  headers: Record<string, string>;
  /** A JSON value, or undefined for an empty body. */
  body?: unknown;
  /** A text body (HTML, CSS) written as is; takes the place of `body`. */
  text?: string;
  /** `Set-Cookie` values, one header line each. */
  cookies?: string[];
}

/**
 * A set of routes: `handle` answers the requests it owns and resolves to `undefined` for any other,
 * which the adapter passes on (`next()`). It never rejects: failures are rendered responses.
 *
 * @example
 * ```ts
 * const res = await router.handle(request);
 * if (res === undefined) return next();
 * ```
 */
export interface RouteHandler {
  /** The path prefix every route of this handler lives under. */
  readonly basePath: string;
  handle(request: RouteRequest): Promise<RouteResponse | undefined>;
}

/** Largest JSON body a route reads, in bytes. */
export const MAX_BODY_BYTES = 16 * 1024;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' } as const;

export function json(status: number, body: unknown): RouteResponse {
  return { status, headers: { ...JSON_HEADERS }, body };
}

export function redirect(location: string): RouteResponse {
  return { status: 302, headers: { location, 'cache-control': 'no-store' } };
}

export function errorResponse(error: unknown): RouteResponse {
  const r = renderError(error);
  return { status: r.status, headers: r.headers, body: r.body };
}

/** A {@link RouteHandler} whose failures become rendered error responses (it never rejects). */
export function routeHandler(basePath: string, route: (request: RouteRequest) => Promise<RouteResponse | undefined> | undefined): RouteHandler {
  return {
    basePath,
    async handle(request: RouteRequest): Promise<RouteResponse | undefined> {
      try {
        return await route(request);
      } catch (e) {
        return errorResponse(e);
      }
    },
  };
}

export function notFound(what: string): AgentIamError {
  return notFoundError(what);
}

export function badRequest(message: string): AgentIamError {
  return requestInvalid(message);
}

/** 401 `TOKEN_MISSING` unless the caller is an authenticated user; returns the user id. */
export function requireUser(context: AgentContext | undefined): string {
  if (context === undefined || !context.authenticated || context.userId === undefined) {
    throw new AgentIamError('TOKEN_MISSING', 'An authenticated user is required', { wwwAuthenticate: bearerChallenge() });
  }
  return context.userId;
}

/** True when `path` is `basePath` or below it (a cheap test before any parsing). */
export function isUnder(path: string, basePath: string): boolean {
  return basePath === '' || (path.startsWith(basePath) && (path.length === basePath.length || path.charCodeAt(basePath.length) === 47 /* / */));
}

/** A base path: `''` or `/x(/y)*` without a trailing slash; `/` counts as `''`. */
export function normalizeBasePath(basePath: string): string {
  return basePath === '/' ? '' : basePath;
}

export const BASE_PATH_RE = /^(\/|(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+)$/;

/**
 * The path segments after `basePath`, each percent-decoded, or `undefined` when the path is not
 * under `basePath` or a segment is empty, not decodable, or holds `/`, `\` or a control character.
 */
export function segmentsAfter(path: string, basePath: string): string[] | undefined {
  if (basePath !== '') {
    if (!path.startsWith(basePath)) return undefined;
    path = path.slice(basePath.length);
    if (path !== '' && path[0] !== '/') return undefined;
  }
  if (path === '' || path === '/') return [];
  const raw = path.slice(1).split('/');
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop(); // one trailing slash is tolerated
  const out: string[] = [];
  for (const part of raw) {
    if (part === '') return undefined;
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return undefined;
    }
    if (decoded.includes('/') || decoded.includes('\\') || hasControlChars(decoded)) return undefined;
    out.push(decoded);
  }
  return out;
}

/** Parse an `application/x-www-form-urlencoded` body; `REQUEST_INVALID` (413) when too large. */
export function parseFormBody(text: string, byteLength: number): URLSearchParams {
  if (byteLength > MAX_BODY_BYTES) throw bodyTooLarge();
  return new URLSearchParams(text);
}

/** True for a form content type (`application/x-www-form-urlencoded`, any parameters). */
export function isFormType(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';', 1)[0]?.trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

/** Parse a JSON body from bytes (empty → undefined); `REQUEST_INVALID` when it is not JSON or too large. */
export function parseJsonBody(text: string, byteLength: number): unknown {
  if (byteLength > MAX_BODY_BYTES) throw bodyTooLarge();
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badRequest('The request body is not valid JSON');
  }
}
