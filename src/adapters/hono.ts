/**
 * `agent-iam/hono`: Hono middleware over the verifier, for any runtime Hono runs on. The core
 * decides; this file only hands the request to the verifier and renders its errors.
 *
 * @module
 */
import type { Context, MiddlewareHandler, Next } from 'hono';
import { runWithContext, type AgentContext } from '../context.js';
import { renderError } from '../errors.js';
import { verifyNow, type Verifier, type VerifierOptions, type VerifyRequest } from '../inbound/verifier.js';
import { checkScopes, END_USER_HEADER, parseScopes, rememberVerifier, scrubNodeHeaders, setupAdapter, type AgentAuthOptions } from './shared.js';

export type { AgentAuthOptions } from './shared.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The verified caller, set by `agentAuth` from `agent-iam/hono`. */
    agentContext: AgentContext;
  }
}

/**
 * Hono middleware that verifies the caller's bearer token. On failure it answers with the error's
 * status, `{ error: code, message }`, `WWW-Authenticate` and `Cache-Control: no-store`. On success it
 * replaces any client-sent `X-End-User-ID` with the verified user id (handlers reading
 * `c.req.header('x-end-user-id')` see only that), sets `c.get('agentContext')`, and runs the rest of
 * the chain inside the context (`currentContext()`, `toolFetch`).
 *
 * Bad options throw `CONFIG_INVALID` here, at construction.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { agentAuth, requireScopes } from 'agent-iam/hono';
 * const app = new Hono();
 * app.use('/api/*', agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }));
 * app.get('/api/me', (c) => c.json({ user: c.get('agentContext').userId }));
 * app.post('/api/items', requireScopes('items:write'), (c) => c.body(null, 201));
 * ```
 */
export function agentAuth(verifierOrOptions: Verifier | VerifierOptions, options?: AgentAuthOptions): MiddlewareHandler {
  const { verifier, verifyOptions } = setupAdapter(verifierOrOptions, options);
  /** The verified request goes on inside its context, or the setup failure is the answer. */
  const proceed = (c: Context, next: Next, context: AgentContext, lazy: NodeRequest | undefined): Promise<Response | void> => {
    try {
      rememberVerifier(context, verifier);
      if (lazy !== undefined) setEndUserLazy(c, lazy, context.userId);
      else setEndUser(c, context.userId);
    } catch (error) {
      return Promise.resolve(errorResponse(error));
    }
    c.set('agentContext', context);
    // Resolve to nothing: what `next()` resolves to (Hono's context) is not this middleware's answer.
    return runWithContext(context, next).then(toVoid);
  };
  // Not an async function: a remembered token goes straight on to `next`, with no promise of its own.
  return function agentAuthMiddleware(c: Context, next: Next): Promise<Response | void> {
    let result: AgentContext | Promise<AgentContext>;
    const lazy = untouchedNodeRequest(c);
    try {
      result = verifyNow(verifier, lazy !== undefined ? nodeVerifyRequest(c.req.raw, lazy) : c.req.raw, verifyOptions);
    } catch (error) {
      return Promise.resolve(errorResponse(error));
    }
    if (!(result instanceof Promise)) return proceed(c, next, result, lazy);
    return result.then(
      (context) => proceed(c, next, context, lazy),
      (error: unknown) => errorResponse(error),
    );
  };
}

/**
 * Hono middleware that requires every named scope of the context set by {@link agentAuth}:
 * 403 `INSUFFICIENT_SCOPE` (`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`), or
 * 401 `TOKEN_MISSING` when the request carries no verified token.
 *
 * @example
 * ```ts
 * app.delete('/api/items/:id', requireScopes('items:write', 'items:delete'), handler);
 * ```
 */
export function requireScopes(...scopes: string[]): MiddlewareHandler {
  const required = parseScopes(scopes);
  return async function requireScopesMiddleware(c: Context, next: Next): Promise<Response | void> {
    try {
      checkScopes(c.get('agentContext') as AgentContext | undefined, required);
    } catch (error) {
      return errorResponse(error);
    }
    await next();
  };
}

/** The parts of Node's `IncomingMessage` read here. */
interface NodeRequest {
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
}


/**
 * @hono/node-server (2.x) hands Hono a lazy `Request` whose headers are built from the Node request
 * on first use. When nothing has used them yet, the Node request is the only copy of the headers:
 * verifying from it and scrubbing it (as the Express adapter does) is all it takes, and the ~20
 * header copies of building a `Headers` are saved. Any sign that a copy exists (headers read, a real
 * `Request` built) or that the request is not that lazy one, and this answers undefined: the general
 * path then changes `c.req.raw.headers` itself.
 */
function untouchedNodeRequest(c: Context): NodeRequest | undefined {
  const env: unknown = c.env;
  if (typeof env !== 'object' || env === null || !('incoming' in env)) return undefined;
  const incoming = env.incoming as Partial<NodeRequest> | null | undefined;
  if (typeof incoming !== 'object' || incoming === null || !Array.isArray(incoming.rawHeaders)) return undefined;
  const raw = c.req.raw as unknown as Record<symbol, unknown>;
  let incomingKey: symbol | undefined;
  for (const key of Object.getOwnPropertySymbols(raw)) {
    const d = key.description;
    if (d === 'incomingKey') incomingKey = key;
    else if (d === 'headersKey' || d === 'requestCache') return undefined; // headers were read, or a Request was built
  }
  if (incomingKey === undefined || raw[incomingKey] !== incoming) return undefined;
  const headers = incoming.headers; // Node builds it on first read, from rawHeaders
  if (typeof headers !== 'object' || headers === null) return undefined;
  return incoming as NodeRequest;
}

/** The request as the verifier sees it, read from the Node request (no `Headers` built). */
function nodeVerifyRequest(raw: Request, incoming: NodeRequest): VerifyRequest {
  const host = incoming.headers.host;
  return {
    headers: incoming.headers,
    rawHeaders: incoming.rawHeaders,
    ...(typeof host === 'string' ? { host } : {}),
    method: raw.method,
    url: raw.url,
  };
}

/** {@link setEndUser} for an untouched lazy request: scrub the Node request, which its headers come from. */
function setEndUserLazy(c: Context, incoming: NodeRequest, userId: string | undefined): void {
  scrubNodeHeaders(incoming, userId);
  // What a handler reads through Hono now comes from the scrubbed Node request; check it does.
  if (c.req.raw.headers.get(END_USER_HEADER) !== (userId ?? null)) throw new Error('X-End-User-ID could not be replaced');
}

/**
 * Make the request's `X-End-User-ID` the verified one (or absent). Headers are changed in place where
 * the runtime allows it (Node, Bun); where a request's headers are immutable (Workers, Deno) the
 * request is replaced by a copy with the corrected headers.
 */
function setEndUser(c: Context, userId: string | undefined): void {
  const raw = c.req.raw;
  try {
    if (userId !== undefined) raw.headers.set(END_USER_HEADER, userId);
    else if (raw.headers.has(END_USER_HEADER)) raw.headers.delete(END_USER_HEADER);
  } catch {
    const headers = new Headers(raw.headers);
    headers.delete(END_USER_HEADER);
    if (userId !== undefined) headers.set(END_USER_HEADER, userId);
    c.req.raw = new Request(raw, { headers });
  }
  if (c.req.raw.headers.get(END_USER_HEADER) !== (userId ?? null)) throw new Error('X-End-User-ID could not be replaced');
  // @hono/node-server: the Node request object is reachable as c.env.incoming; scrub it too.
  const env: unknown = c.env;
  if (typeof env === 'object' && env !== null && 'incoming' in env) scrubNodeHeaders(env.incoming, userId);
}

function toVoid(): void {}

function errorResponse(error: unknown): Response {
  const rendered = renderError(error);
  return new Response(JSON.stringify(rendered.body), { status: rendered.status, headers: rendered.headers });
}
export * from './hono-routes.js';
