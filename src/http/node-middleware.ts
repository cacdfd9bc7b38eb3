/**
 * Internal module. `agentAuth` and `requireScopes` for Node `(req, res, next)` servers (Express, Connect,
 * plain `node:http`), written against structural types only, so that `agent-iam/express` and the
 * root entry's `createAgentIam().express()` share one implementation without the root entry
 * importing express.
 *
 * @module
 */
import { runWithContext, type AgentContext } from '../context.js';
import { renderError } from '../errors.js';
import { verifyNow, type VerifyOptions, type VerifyRequest } from '../inbound/verifier.js';
import { readNodeJson } from '../mcp/read-body.js';
import { planMcpRequest, type McpPlan } from '../mcp/scopes.js';
import { checkScopes, rememberVerifier, scrubNodeHeaders, type AdapterSetup } from './middleware-core.js';

/**
 * The parts of a Node/Express request the middleware reads.
 *
 * @example
 * ```ts
 * const ctx = (req as NodeRequestLike).agentContext;
 * ```
 */
export interface NodeRequestLike {
  method?: string | undefined;
  url?: string | undefined;
  /** Express: the URL before mounting. */
  originalUrl?: string;
  /** Express: the path relative to the mount point. */
  path?: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders?: string[];
  /** Set by `agentAuth`. */
  agentContext?: AgentContext | undefined;
  /** Set by a body parser such as `express.json()`, when one ran. */
  body?: unknown;
  [Symbol.asyncIterator]?(): AsyncIterator<unknown>;
  /** Node streams: used to read the JSON-RPC body when `agentAuth` has MCP scopes and no body parser ran. */
  readableEnded?: boolean;
  on?(event: string, listener: (...args: never[]) => void): unknown;
  removeListener?(event: string, listener: (...args: never[]) => void): unknown;
}

/**
 * The parts of a Node/Express response the middleware writes.
 *
 * @example
 * ```ts
 * const res: NodeResponseLike = serverResponse;
 * ```
 */
export interface NodeResponseLike {
  statusCode: number;
  readonly headersSent: boolean;
  setHeader(name: string, value: string | string[]): unknown;
  end(chunk?: string): unknown;
  destroy?(): unknown;
}

/**
 * A Node `(req, res, next)` middleware, usable with Express (`app.use(...)`) and Connect.
 *
 * @example
 * ```ts
 * const mw: NodeMiddleware = iam.express();
 * app.use(mw);
 * ```
 */
export type NodeMiddleware = (req: NodeRequestLike, res: NodeResponseLike, next: (error?: unknown) => void) => void;

/** A response to write: status, headers, and a JSON body (or none). */
export interface NodeAnswer {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
  /** A text body written as is (takes the place of `body`). */
  text?: string;
  /** `Set-Cookie` lines. */
  cookies?: string[];
}

/** Write an answer; never throws (a response that cannot be written is destroyed). */
export function writeNode(res: NodeResponseLike, r: NodeAnswer): void {
  try {
    if (res.headersSent) return;
    res.statusCode = r.status;
    for (const name in r.headers) res.setHeader(name, r.headers[name] as string);
    if (r.cookies !== undefined && r.cookies.length > 0) res.setHeader('set-cookie', r.cookies);
    res.end(r.text !== undefined ? r.text : r.body === undefined ? undefined : JSON.stringify(r.body));
  } catch {
    res.destroy?.();
  }
}

/** Answer with the rendered error; never throws. */
export function sendNodeError(res: NodeResponseLike, error: unknown): void {
  writeNode(res, renderError(error));
}

/**
 * The request as the verifier sees it. Node keeps one of several `Authorization` lines in
 * `req.headers`; `req.rawHeaders` has them all, and the verifier refuses more than one.
 */
function toVerifyRequest(req: NodeRequestLike): VerifyRequest {
  const host = req.headers.host;
  const request: VerifyRequest = { headers: req.headers };
  if (req.rawHeaders !== undefined) request.rawHeaders = req.rawHeaders;
  if (typeof host === 'string') request.host = host;
  if (req.method !== undefined) request.method = req.method;
  const url = req.originalUrl ?? req.url;
  if (url !== undefined) request.url = url;
  return request;
}

/** `agentAuth` for Node servers: see `agentAuth` in `agent-iam/express`. */
export function nodeAgentAuth(setup: AdapterSetup): NodeMiddleware {
  const { verifier, verifyOptions } = setup;
  /** The verified request goes on inside its context; anything that throws here becomes the answer. */
  const proceed = (req: NodeRequestLike, res: NodeResponseLike, next: (error?: unknown) => void, context: AgentContext, plan?: McpPlan): void => {
    try {
      if (plan?.refusal !== undefined) throw plan.refusal;
      rememberVerifier(context, verifier);
      scrubNodeHeaders(req, context.userId);
      req.agentContext = context;
      runWithContext(context, next);
    } catch (error) {
      sendNodeError(res, error); // does nothing once a response has started
    }
  };
  const verify = (req: NodeRequestLike, res: NodeResponseLike, next: (error?: unknown) => void, options: VerifyOptions | undefined, plan?: McpPlan): void => {
    let result: AgentContext | Promise<AgentContext>;
    try {
      result = verifyNow(verifier, toVerifyRequest(req), options);
    } catch (error) {
      sendNodeError(res, error);
      return;
    }
    // A remembered token is answered synchronously: no promise hop before the route runs.
    if (!(result instanceof Promise)) {
      proceed(req, res, next, result, plan);
      return;
    }
    // One reaction, no further promise: neither handler can throw (proceed and sendNodeError never do).
    void result.then(
      (context) => proceed(req, res, next, context, plan),
      (error: unknown) => sendNodeError(res, error),
    );
  };
  const mcp = setup.mcp;
  if (mcp === undefined) {
    return function agentAuthMiddleware(req, res, next): void {
      verify(req, res, next, verifyOptions);
    };
  }
  const base = setup.requiredScopes ?? [];
  // MCP: the JSON-RPC body decides the scopes, so it is read (bounded) before the token is verified.
  return function agentAuthMiddleware(req, res, next): void {
    if ((req.method ?? 'GET').toUpperCase() !== 'POST') {
      verify(req, res, next, verifyOptions);
      return;
    }
    readNodeJson(req, mcp.maxBodyBytes).then(
      (body) => {
        let plan: McpPlan;
        try {
          plan = planMcpRequest(mcp, base, body, req.headers, req.rawHeaders);
        } catch (error) {
          sendNodeError(res, error);
          return;
        }
        verify(req, res, next, plan.requiredScopes.length > 0 ? { requiredScopes: plan.requiredScopes } : undefined, plan);
      },
      (error: unknown) => sendNodeError(res, error),
    );
  };
}

/** `requireScopes` for Node servers: see `requireScopes` in `agent-iam/express`. */
export function nodeRequireScopes(required: string[]): NodeMiddleware {
  return function requireScopesMiddleware(req, res, next): void {
    try {
      checkScopes(req.agentContext, required);
    } catch (error) {
      sendNodeError(res, error);
      return;
    }
    next();
  };
}
