/**
 * Internal module. The consent and approval routes as Node `(req, res, next)` middleware (Express, Connect,
 * plain `node:http`), from structural types only: the root entry must not import express.
 *
 * @module
 */
import { sendNodeError, writeNode, type NodeMiddleware, type NodeRequestLike } from './node-middleware.js';
import { isFormType, isUnder, MAX_BODY_BYTES, parseFormBody, parseJsonBody, type RouteHandler, type RouteResponse } from './route-core.js';

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

/** The raw body from the stream as text (at most 16 KiB, else `undefined` with the size seen). */
async function readNodeText(req: NodeRequestLike): Promise<{ text: string; size: number }> {
  const iterate = req[Symbol.asyncIterator];
  if (iterate === undefined || req.readableEnded === true) return { text: '', size: 0 };
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of { [Symbol.asyncIterator]: () => iterate.call(req) }) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    size += bytes.byteLength;
    if (size > MAX_BODY_BYTES) return { text: '', size };
    chunks.push(bytes);
  }
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let text = '';
  for (const c of chunks) text += decoder.decode(c, { stream: true });
  return { text: text + decoder.decode(), size };
}

/** Read a form body: what a body parser (`express.urlencoded()`) left on `req.body`, else the stream. */
async function readNodeForm(req: NodeRequestLike): Promise<URLSearchParams> {
  if (!isFormType(headerValue(req.headers['content-type']))) return new URLSearchParams();
  const parsed = req.body;
  if (parsed !== undefined && parsed !== null) {
    if (typeof parsed === 'string') return parseFormBody(parsed, new TextEncoder().encode(parsed).byteLength);
    if (parsed instanceof Uint8Array) return parseFormBody(new TextDecoder().decode(parsed), parsed.byteLength);
    if (typeof parsed === 'object') {
      const out = new URLSearchParams();
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        if (typeof v === 'string') out.append(k, v);
        else if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') out.append(k, x);
      }
      return out;
    }
  }
  const { text, size } = await readNodeText(req);
  return parseFormBody(text, size);
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
    const request = {
      method: (req.method ?? 'GET').toUpperCase(),
      path,
      query,
      context: req.agentContext,
      readBody: () => readNodeBody(req),
      accept: headerValue(req.headers.accept),
      header: (name: string) => headerValue(req.headers[name]),
      readForm: () => readNodeForm(req),
    };
    void (async () => {
      for (const h of handlers) {
        const r = await h.handle(request);
        if (r !== undefined) return writeNode(res, r);
      }
      next();
    })().catch((error: unknown) => sendNodeError(res, error));
  };
}

export type { NodeMiddleware, NodeRequestLike, NodeResponseLike } from './node-middleware.js';
