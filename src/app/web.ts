/**
 * @internal Hono middleware built from structural types only (a Hono `Context` fits them): the root
 * entry must not import hono, so `createAgentIam().hono()` and the Hono route adapters share this code.
 *
 * @module
 */
import { runWithContext, type AgentContext } from '../context.js';
import { renderError } from '../errors.js';
import { END_USER_HEADER, rememberVerifier, scrubNodeHeaders, type AdapterSetup } from '../adapters/shared.js';
import { isUnder, MAX_BODY_BYTES, parseJsonBody, type RouteHandler, type RouteResponse } from './http.js';

/**
 * The parts of a Hono `Context` the middleware uses.
 *
 * @example
 * ```ts
 * const ctx = (c as unknown as HonoContextLike).get('agentContext');
 * ```
 */
export interface HonoContextLike {
  req: { raw: Request; readonly path: string; readonly method: string };
  env?: unknown;
  get(key: 'agentContext'): unknown;
  set(key: 'agentContext', value: AgentContext): void;
}

/**
 * A Hono middleware (`app.use(...)`, or as a route handler before yours).
 *
 * @example
 * ```ts
 * app.use('/api/*', iam.hono());
 * ```
 */
// `any` for the context: Hono's `Context` has generic `get`/`set` overloads that no structural
// interface can name without importing hono's types into the root entry.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type HonoMiddleware = (c: any, next: () => Promise<void>) => Promise<Response | void>;

export function webResponse(r: RouteResponse): Response {
  return new Response(r.body === undefined ? null : JSON.stringify(r.body), { status: r.status, headers: r.headers });
}

function webError(error: unknown): Response {
  const r = renderError(error);
  return webResponse({ status: r.status, headers: r.headers, body: r.body });
}

/** Make the request's `X-End-User-ID` the verified one (or absent); same behaviour as `agent-iam/hono`. */
function setEndUser(c: HonoContextLike, userId: string | undefined): void {
  const raw = c.req.raw;
  try {
    raw.headers.delete(END_USER_HEADER);
    if (userId !== undefined) raw.headers.set(END_USER_HEADER, userId);
  } catch {
    const headers = new Headers(raw.headers);
    headers.delete(END_USER_HEADER);
    if (userId !== undefined) headers.set(END_USER_HEADER, userId);
    c.req.raw = new Request(raw, { headers });
  }
  if (c.req.raw.headers.get(END_USER_HEADER) !== (userId ?? null)) throw new Error('X-End-User-ID could not be replaced');
  const env: unknown = c.env;
  if (typeof env === 'object' && env !== null && 'incoming' in env) scrubNodeHeaders(env.incoming, userId);
}

/** The `agentAuth` middleware for Hono, from the shared adapter pieces. */
export function honoAgentAuth(setup: AdapterSetup): HonoMiddleware {
  const { verifier, verifyOptions } = setup;
  return async function agentAuthMiddleware(c: HonoContextLike, next: () => Promise<void>): Promise<Response | void> {
    let context: AgentContext;
    try {
      context = await verifier.verify(c.req.raw, verifyOptions);
      rememberVerifier(context, verifier);
      setEndUser(c, context.userId);
    } catch (error) {
      return webError(error);
    }
    c.set('agentContext', context);
    await runWithContext(context, next);
  };
}

/** Read a JSON body of at most 16 KiB from a Web `Request`. */
export async function readWebBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return parseJsonBody('', declared);
  if (request.body === null) return undefined;
  const reader = request.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      return parseJsonBody('', size);
    }
    text += decoder.decode(value, { stream: true });
  }
  text += decoder.decode();
  return parseJsonBody(text, size);
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
