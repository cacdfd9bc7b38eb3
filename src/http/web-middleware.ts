/**
 * Internal module. `agentAuth` and `requireScopes` for Hono, written against structural types only (a Hono
 * `Context` fits them), so that `agent-iam/hono` and the root entry's `createAgentIam().hono()` share
 * one implementation without the root entry importing hono.
 *
 * @module
 */
import { runWithContext, type AgentContext } from '../context.js';
import { AgentIamError, renderError } from '../errors.js';
import { verifyNow, type VerifyOptions, type VerifyRequest } from '../inbound/verifier.js';
import { checkDeclaredLength, readWebJson } from '../mcp/read-body.js';
import { planMcpRequest, type McpPlan, type McpScopes } from '../mcp/scopes.js';
import { checkScopes, END_USER_HEADER, rememberVerifier, scrubNodeHeaders, type AdapterSetup } from './middleware-core.js';

/**
 * The parts of a Hono `Context` the middleware uses.
 *
 * @example
 * ```ts
 * const ctx = (c as unknown as HonoContextLike).get('agentContext');
 * ```
 */
export interface HonoContextLike {
  req: { raw: Request; readonly path: string; readonly method: string; json?(): Promise<unknown> };
  env?: unknown;
  get(key: 'agentContext'): unknown;
  set(key: 'agentContext', value: AgentContext): void;
}

type HonoNext = () => Promise<void>;

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

/** A rendered error as a Web `Response`. */
export function webError(error: unknown): Response {
  const rendered = renderError(error);
  return new Response(JSON.stringify(rendered.body), { status: rendered.status, headers: rendered.headers });
}

/** `agentAuth` for Hono: see `agentAuth` in `agent-iam/hono`. */
export function honoAgentAuth(setup: AdapterSetup): HonoMiddleware {
  const { verifier, verifyOptions } = setup;
  /** The verified request goes on inside its context, or the setup failure is the answer. */
  const proceed = (c: HonoContextLike, next: HonoNext, context: AgentContext, lazy: NodeRequest | undefined, plan?: McpPlan): Promise<Response | void> => {
    try {
      if (plan?.refusal !== undefined) throw plan.refusal;
      rememberVerifier(context, verifier);
      if (lazy !== undefined) setEndUserLazy(c, lazy, context.userId);
      else setEndUser(c, context.userId);
    } catch (error) {
      return Promise.resolve(webError(error));
    }
    c.set('agentContext', context);
    // Resolve to nothing: what `next()` resolves to (Hono's context) is not this middleware's answer.
    return runWithContext(context, next).then(toVoid);
  };
  // Not an async function: a remembered token goes straight on to `next`, with no promise of its own.
  const verify = (c: HonoContextLike, next: HonoNext, options: VerifyOptions | undefined, plan?: McpPlan): Promise<Response | void> => {
    let result: AgentContext | Promise<AgentContext>;
    const lazy = untouchedNodeRequest(c);
    try {
      result = verifyNow(verifier, lazy !== undefined ? nodeVerifyRequest(c.req.raw, lazy) : c.req.raw, options);
    } catch (error) {
      return Promise.resolve(webError(error));
    }
    if (!(result instanceof Promise)) return proceed(c, next, result, lazy, plan);
    return result.then(
      (context) => proceed(c, next, context, lazy, plan),
      (error: unknown) => webError(error),
    );
  };
  const mcp = setup.mcp;
  if (mcp === undefined) {
    return function agentAuthMiddleware(c: HonoContextLike, next: HonoNext): Promise<Response | void> {
      return verify(c, next, verifyOptions);
    };
  }
  const base = setup.requiredScopes ?? [];
  // MCP: the JSON-RPC body decides the scopes, so it is read (bounded) before the token is verified.
  return async function agentAuthMiddleware(c: HonoContextLike, next: HonoNext): Promise<Response | void> {
    if (c.req.raw.method.toUpperCase() !== 'POST') return verify(c, next, verifyOptions);
    let plan: McpPlan;
    try {
      const body = await readHonoJson(c, mcp);
      plan = planMcpRequest(mcp, base, body, c.req.raw.headers);
    } catch (error) {
      return webError(error);
    }
    return verify(c, next, plan.requiredScopes.length > 0 ? { requiredScopes: plan.requiredScopes } : undefined, plan);
  };
}

/**
 * The JSON-RPC body of a Hono request, leaving `c.req.raw` readable for the MCP transport: the body
 * is read (bounded) and `c.req.raw` replaced by an equal request over the bytes read. Not a clone:
 * on @hono/node-server a clone keeps a second copy of the client's headers, which the
 * `X-End-User-ID` scrub would not reach. A body some earlier middleware already read through
 * Hono (`c.req.json()`, cached by Hono) is taken from that cache.
 */
async function readHonoJson(c: HonoContextLike, mcp: McpScopes): Promise<unknown> {
  const raw = c.req.raw;
  if (raw.bodyUsed) {
    checkDeclaredLength(raw.headers.get('content-length'), mcp.maxBodyBytes);
    if (typeof c.req.json !== 'function') throw new AgentIamError('REQUEST_INVALID', 'The request body was already read');
    try {
      return await c.req.json();
    } catch {
      throw new AgentIamError('REQUEST_INVALID', 'The request body could not be read as JSON');
    }
  }
  // On a failure the request is answered here and never reaches the transport.
  const { body, bytes } = await readWebJson(raw, mcp.maxBodyBytes);
  c.req.raw = new Request(raw, { body: bytes as BufferSource });
  return body;
}

/** `requireScopes` for Hono: see `requireScopes` in `agent-iam/hono`. */
export function honoRequireScopes(required: string[]): HonoMiddleware {
  return async function requireScopesMiddleware(c: HonoContextLike, next: HonoNext): Promise<Response | void> {
    try {
      checkScopes(c.get('agentContext') as AgentContext | undefined, required);
    } catch (error) {
      return webError(error);
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
function untouchedNodeRequest(c: HonoContextLike): NodeRequest | undefined {
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

/**
 * The kinds of lazy request (its class) and of Node request (HTTP/1, HTTP/2) for which a scrubbed
 * Node request was seen to be what the lazy request's headers are built from.
 */
const lazyScrubShown = new WeakMap<object, WeakSet<object>>();

/**
 * {@link setEndUser} for an untouched lazy request: scrub the Node request, which its headers come
 * from. Whether they do is how @hono/node-server builds them, the same for every request of a kind,
 * so it is checked through the headers (which builds them, the cost this path saves) until one
 * request of that kind has shown the verified id there; from then on the scrub alone is enough.
 */
function setEndUserLazy(c: HonoContextLike, incoming: NodeRequest, userId: string | undefined): void {
  scrubNodeHeaders(incoming, userId);
  const requestKind = Object.getPrototypeOf(c.req.raw) as object | null;
  const incomingKind = Object.getPrototypeOf(incoming) as object | null;
  if (requestKind !== null && incomingKind !== null && lazyScrubShown.get(requestKind)?.has(incomingKind) === true) return;
  if (c.req.raw.headers.get(END_USER_HEADER) !== (userId ?? null)) throw new Error('X-End-User-ID could not be replaced');
  // Only a verified id shows it: an absent header is absent whatever the headers are built from.
  if (userId === undefined || requestKind === null || incomingKind === null) return;
  let kinds = lazyScrubShown.get(requestKind);
  if (kinds === undefined) lazyScrubShown.set(requestKind, (kinds = new WeakSet()));
  kinds.add(incomingKind);
}

/**
 * Make the request's `X-End-User-ID` the verified one (or absent). Headers are changed in place where
 * the runtime allows it (Node, Bun); where a request's headers are immutable (Workers, Deno) the
 * request is replaced by a copy with the corrected headers.
 */
function setEndUser(c: HonoContextLike, userId: string | undefined): void {
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
