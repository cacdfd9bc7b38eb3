/**
 * Internal module. The consent and approval routes for Hono and any Web-API server, from structural types
 * only (a Hono `Context` fits them): the root entry must not import hono.
 *
 * @module
 */
import type { AgentContext } from '../context.js';
import { webError, type HonoContextLike, type HonoMiddleware } from './web-middleware.js';
import { readBoundedBytes } from '../lib/bounded-read.js';
import { isFormType, isUnder, MAX_BODY_BYTES, parseFormBody, parseJsonBody, type RouteHandler, type RouteResponse } from './route-core.js';

export function webResponse(r: RouteResponse): Response {
  const headers = new Headers(r.headers);
  for (const c of r.cookies ?? []) headers.append('set-cookie', c);
  return new Response(r.text !== undefined ? r.text : r.body === undefined ? null : JSON.stringify(r.body), { status: r.status, headers });
}

/** Read a form body of at most 16 KiB from a Web `Request` (empty unless it is a form). */
export async function readWebForm(request: Request): Promise<URLSearchParams> {
  if (!isFormType(request.headers.get('content-type') ?? undefined)) return new URLSearchParams();
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return parseFormBody('', declared);
  if (request.body === null) return new URLSearchParams();
  const bytes = await readBoundedBytes(request.body, MAX_BODY_BYTES);
  if (bytes === undefined) return parseFormBody('', MAX_BODY_BYTES + 1);
  return parseFormBody(new TextDecoder().decode(bytes), bytes.byteLength);
}

/** Read a JSON body of at most 16 KiB from a Web `Request`. */
export async function readWebBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return parseJsonBody('', declared);
  if (request.body === null) return undefined;
  const bytes = await readBoundedBytes(request.body, MAX_BODY_BYTES);
  if (bytes === undefined) return parseJsonBody('', MAX_BODY_BYTES + 1);
  return parseJsonBody(new TextDecoder().decode(bytes), bytes.byteLength);
}

/**
 * Serve {@link RouteHandler}s as a Hono middleware: their routes are answered, anything else goes to
 * `next()`. The caller is `c.get('agentContext')` (set by `agentAuth` or any middleware of the app).
 */
export function honoRoutes(...handlers: RouteHandler[]): HonoMiddleware {
  return async function agentIamRoutes(c: HonoContextLike, next: () => Promise<void>): Promise<Response | void> {
    if (!handlers.some((h) => isUnder(c.req.path, h.basePath))) return next();
    const response = await handleWebRequest(handlers, c.req.raw, c.get('agentContext') as AgentContext | undefined);
    if (response !== undefined) return response;
    await next();
  };
}

/**
 * Serve route handlers (`createConsentRoutes`, `createApprovalRoutes`) from any Web-API
 * server (Workers, Deno, Bun, `fetch` handlers): resolves to the response for the routes' own
 * requests, or `undefined` for any other. `context` is the caller as your own auth step verified it
 * (e.g. `await verifier.verify(request)`).
 *
 * @example
 * ```ts
 * const routes = [createConsentRoutes(tokens, { basePath: '/oauth' })];
 * export default {
 *   async fetch(request: Request): Promise<Response> {
 *     const context = await verifier.verify(request);
 *     return (await handleWebRequest(routes, request, context)) ?? new Response('Not found', { status: 404 });
 *   },
 * };
 * ```
 */
export async function handleWebRequest(handlers: RouteHandler | readonly RouteHandler[], request: Request, context: AgentContext | undefined): Promise<Response | undefined> {
  const list: readonly RouteHandler[] = Array.isArray(handlers) ? handlers : [handlers as RouteHandler];
  const url = new URL(request.url);
  if (!list.some((h) => isUnder(url.pathname, h.basePath))) return undefined;
  const routeRequest = {
    method: request.method.toUpperCase(),
    path: url.pathname,
    query: url.searchParams,
    context,
    readBody: () => readWebBody(request),
    accept: request.headers.get('accept') ?? undefined,
    header: (name: string) => request.headers.get(name) ?? undefined,
    readForm: () => readWebForm(request),
  };
  try {
    for (const h of list) {
      const r = await h.handle(routeRequest);
      if (r !== undefined) return webResponse(r);
    }
  } catch (error) {
    return webError(error);
  }
  return undefined;
}

export type { HonoContextLike, HonoMiddleware } from './web-middleware.js';
