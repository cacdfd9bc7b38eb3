/**
 * @internal Node `(req, res, next)` middleware (Express, Connect, plain `node:http`) built from
 * structural types only: the root entry must not import express, so `createAgentIam().express()`
 * and the Express route adapters share this code.
 *
 * @module
 */
import { runWithContext, type AgentContext } from '../context.js';
import { renderError } from '../errors.js';
import { rememberVerifier, scrubNodeHeaders, type AdapterSetup } from '../adapters/shared.js';
import type { VerifyRequest } from '../inbound/verifier.js';
import { isUnder, MAX_BODY_BYTES, parseJsonBody, type RouteHandler, type RouteResponse } from './http.js';

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
  setHeader(name: string, value: string): unknown;
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

/** Write a {@link RouteResponse}; never throws (a response that cannot be written is destroyed). */
export function writeNode(res: NodeResponseLike, r: RouteResponse): void {
  try {
    if (res.headersSent) return;
    res.statusCode = r.status;
    for (const name in r.headers) res.setHeader(name, r.headers[name] as string);
    res.end(r.body === undefined ? undefined : JSON.stringify(r.body));
  } catch {
    res.destroy?.();
  }
}

function sendNodeError(res: NodeResponseLike, error: unknown): void {
  const r = renderError(error);
  writeNode(res, { status: r.status, headers: r.headers, body: r.body });
}

/** The `agentAuth` middleware for Node/Express, from the shared adapter pieces. */
export function nodeAgentAuth(setup: AdapterSetup): NodeMiddleware {
  const { verifier, verifyOptions } = setup;
  return function agentAuthMiddleware(req, res, next): void {
    let pending: Promise<AgentContext>;
    try {
      const request: VerifyRequest = { headers: req.headers };
      if (req.method !== undefined) request.method = req.method;
      const url = req.originalUrl ?? req.url;
      if (url !== undefined) request.url = url;
      const host = headerValue(req.headers.host);
      if (host !== undefined) request.host = host;
      if (req.rawHeaders !== undefined) request.rawHeaders = req.rawHeaders;
      pending = verifier.verify(request, verifyOptions);
    } catch (error) {
      sendNodeError(res, error);
      return;
    }
    pending
      .then(
        (context) => {
          rememberVerifier(context, verifier);
          scrubNodeHeaders(req, context.userId);
          req.agentContext = context;
          runWithContext(context, next);
        },
        (error: unknown) => sendNodeError(res, error),
      )
      .catch((error: unknown) => sendNodeError(res, error));
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The request path (percent-encoded) relative to the mount point, without the query. */
function nodeRequestPath(req: NodeRequestLike): string {
  if (req.path !== undefined) return req.path;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Read the body: what a body parser left on `req.body`, else the stream (at most 16 KiB). */
async function readNodeBody(req: NodeRequestLike): Promise<unknown> {
  const parsed = req.body;
  if (parsed !== undefined) {
    if (typeof parsed === 'string') return parseJsonBody(parsed, new TextEncoder().encode(parsed).byteLength);
    if (parsed instanceof Uint8Array) return parseJsonBody(new TextDecoder().decode(parsed), parsed.byteLength);
    return parsed;
  }
  const iterate = req[Symbol.asyncIterator];
  if (iterate === undefined) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const decoder = new TextDecoder('utf-8', { fatal: false });
  for await (const chunk of { [Symbol.asyncIterator]: () => iterate.call(req) }) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    size += bytes.byteLength;
    if (size > MAX_BODY_BYTES) return parseJsonBody('', size);
    chunks.push(bytes);
  }
  let text = '';
  for (const c of chunks) text += decoder.decode(c, { stream: true });
  text += decoder.decode();
  return parseJsonBody(text, size);
}

/**
 * Serve a {@link RouteHandler} as Node middleware: its routes are answered, anything else goes to
 * `next()`. The caller is `req.agentContext` (set by `agentAuth` or any middleware of the app).
 */
export function nodeRoutes(...handlers: RouteHandler[]): NodeMiddleware {
  return function agentIamRoutes(req, res, next): void {
    const path = nodeRequestPath(req);
    if (!handlers.some((h) => isUnder(path, h.basePath))) return next();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    const request = { method: (req.method ?? 'GET').toUpperCase(), path, query, context: req.agentContext, readBody: () => readNodeBody(req), accept: headerValue(req.headers.accept) };
    void (async () => {
      for (const h of handlers) {
        const r = await h.handle(request);
        if (r !== undefined) return writeNode(res, r);
      }
      next();
    })().catch((error: unknown) => sendNodeError(res, error));
  };
}
