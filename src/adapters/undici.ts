/**
 * agent-iam/undici: a `fetch`-compatible transport for `createToolFetch({ fetch })` built on
 * undici's dispatcher API (`Agent.request`), with one connection pool per origin. It skips the
 * WHATWG fetch machinery (request cloning, filtered responses, redirect handling) that toolFetch
 * does not need: toolFetch already checks every hop itself and sends with `redirect: 'manual'`.
 *
 * `undici` is an optional peer dependency, loaded when {@link createUndiciFetch} runs; without it
 * that call fails with `CONFIG_INVALID` naming the package.
 *
 * @module
 */
import { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Agent, Dispatcher } from 'undici';
import { BufferedResponse } from './buffered-response.js';
import { loadPeer } from './peer.js';

/**
 * Options of {@link createUndiciFetch}.
 *
 * @example
 * ```ts
 * const options: UndiciFetchOptions = { connections: 64, headersTimeout: 30_000 };
 * ```
 */
export interface UndiciFetchOptions {
  /** Connections kept per origin (default: undici's, unlimited). */
  connections?: number;
  /** Requests pipelined on one connection (default 1: none). */
  pipelining?: number;
  /** How long an idle kept-alive connection stays open, in ms (default: undici's, 4000). */
  keepAliveTimeout?: number;
  /** Bound on connecting (TCP and TLS), in ms (default: undici's, 10000). */
  connectTimeout?: number;
  /** Bound on waiting for the response headers, in ms (default: undici's, 300000). */
  headersTimeout?: number;
  /** Bound on the silence between two body chunks, in ms (default: undici's, 300000). */
  bodyTimeout?: number;
  /**
   * Response bodies of at most this many bytes with a known `Content-Length` are read before the
   * `Response` is returned, which is faster for the small JSON answers most tools send (default
   * 65536; 0 streams every body).
   */
  bufferBelow?: number;
}

/**
 * A `fetch` over undici with its connection pools; `close()` closes them (in-flight requests
 * finish first).
 *
 * @example
 * ```ts
 * const fetch: UndiciFetch = await createUndiciFetch();
 * await fetch.close();
 * ```
 */
export type UndiciFetch = ((input: string | URL | Request, init?: RequestInit) => Promise<Response>) & {
  /** Close every pool once its requests are done. */
  close(): Promise<void>;
};

type Undici = typeof import('undici');

const RANGE = '^7 || ^8';

function loadUndici(): Promise<Undici> {
  return loadPeer('undici', 'undici', RANGE, () => import('undici'));
}

/** Drop a body nobody will read: drained (the connection stays reusable), never an uncaught error. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.dump().catch(() => {});
}

const NO_BODY = { body: null, type: undefined } as const;
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** A request body as undici takes it, and the content type fetch would give it. */
function bodyOf(body: unknown): { body: string | Uint8Array | Readable | null; type: string | undefined } {
  if (body === undefined || body === null) return { body: null, type: undefined };
  if (typeof body === 'string') return { body, type: 'text/plain;charset=UTF-8' };
  if (body instanceof Uint8Array) return { body, type: undefined };
  if (body instanceof ArrayBuffer) return { body: new Uint8Array(body), type: undefined };
  if (ArrayBuffer.isView(body)) return { body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), type: undefined };
  if (body instanceof URLSearchParams) return { body: body.toString(), type: 'application/x-www-form-urlencoded;charset=UTF-8' };
  if (body instanceof ReadableStream) return { body: Readable.fromWeb(body as import('node:stream/web').ReadableStream), type: undefined };
  // Blob, FormData: let the platform encode them exactly as fetch does.
  const r = new Request('http://localhost/', { method: 'POST', body: body as BodyInit });
  const stream = r.body as ReadableStream | null;
  return { body: stream === null ? null : Readable.fromWeb(stream as import('node:stream/web').ReadableStream), type: r.headers.get('content-type') ?? undefined };
}

/** A response header as undici gives it (lower-case names; a repeated one is an array): its first value. */
function headerOf(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The response's `url`, as fetch sets it. */
function withUrl(response: Response, url: string): Response {
  Object.defineProperty(response, 'url', { value: url, enumerable: true });
  return response;
}

function decoder(encoding: string | undefined): NodeJS.ReadWriteStream | undefined {
  switch (encoding?.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return undefined;
  }
}

/**
 * Create a `fetch`-compatible transport over undici for `createToolFetch({ fetch })`. It keeps one
 * connection pool per origin (an undici `Agent`), so each tool's connections are reused, and it
 * returns a real WHATWG `Response` (status, headers, a streaming body). Redirects are never
 * followed (as `redirect: 'manual'`, which toolFetch uses to check every hop itself);
 * `redirect: 'error'` rejects on a redirect. An abort rejects with the signal's reason, as fetch
 * does, and a network failure with `TypeError('fetch failed')` whose `cause` is undici's error
 * (its `code`, such as `ECONNREFUSED`, is what toolFetch reports). A compressed body is decoded
 * (gzip, deflate, br), as fetch does. Every toolFetch check runs as with the default fetch.
 *
 * Rejects with `CONFIG_INVALID` (`field: 'undici'`) when the optional peer `undici` is not installed.
 *
 * @example
 * ```ts
 * import { createToolFetch } from 'agent-iam';
 * import { createUndiciFetch } from 'agent-iam/undici';
 *
 * const transport = await createUndiciFetch({ connections: 64 });
 * const toolFetch = createToolFetch({ agent: { id: 'a' }, tools, policies, fetch: transport });
 * // ... on shutdown
 * await transport.close();
 * ```
 */
export async function createUndiciFetch(options: UndiciFetchOptions = {}): Promise<UndiciFetch> {
  const undici = await loadUndici();
  const agentOptions: Agent.Options = {};
  if (options.connections !== undefined) agentOptions.connections = options.connections;
  if (options.pipelining !== undefined) agentOptions.pipelining = options.pipelining;
  if (options.keepAliveTimeout !== undefined) agentOptions.keepAliveTimeout = options.keepAliveTimeout;
  if (options.headersTimeout !== undefined) agentOptions.headersTimeout = options.headersTimeout;
  if (options.bodyTimeout !== undefined) agentOptions.bodyTimeout = options.bodyTimeout;
  if (options.connectTimeout !== undefined) agentOptions.connect = { timeout: options.connectTimeout };
  const agent = new undici.Agent(agentOptions);
  const bufferBelow = options.bufferBelow ?? 65_536;

  async function undiciFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    let href: string;
    let method = init?.method;
    let headersInit = init?.headers;
    let body: unknown = init?.body;
    let signal = init?.signal ?? undefined;
    let redirect = init?.redirect;
    if (typeof input === 'string') href = input;
    else if (input instanceof URL) href = input.href;
    else {
      href = input.url;
      method ??= input.method;
      headersInit ??= input.headers;
      if (body === undefined) body = input.body;
      signal ??= input.signal;
      redirect ??= input.redirect;
    }
    const url = new URL(href);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('fetch failed: only http and https are supported');
    method = (method ?? 'GET').toUpperCase();
    signal?.throwIfAborted();

    const headers: Record<string, string> = {};
    if (headersInit instanceof Headers) headersInit.forEach((value, name) => (headers[name] = value)); // what toolFetch sends: no copy
    else if (headersInit !== undefined) new Headers(headersInit).forEach((value, name) => (headers[name] = value));
    const sent = body === undefined || body === null ? NO_BODY : bodyOf(body);
    if (sent.body !== null && (method === 'GET' || method === 'HEAD')) throw new TypeError('Request with GET/HEAD method cannot have body.');
    if (sent.type !== undefined && headers['content-type'] === undefined) headers['content-type'] = sent.type;
    headers['accept'] ??= '*/*';
    headers['user-agent'] ??= 'node';

    const request: Dispatcher.RequestOptions = { origin: url.origin, path: url.pathname + url.search, method: method as Dispatcher.HttpMethod, headers, body: sent.body };
    if (signal !== undefined) request.signal = signal;
    let res: Dispatcher.ResponseData;
    try {
      res = await agent.request(request);
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason;
      throw new TypeError('fetch failed', { cause: error });
    }
    const status = res.statusCode;
    if (status < 200 || status > 599) {
      discard(res.body);
      throw new TypeError(`fetch failed: unsupported status ${status}`);
    }
    const out = new Headers();
    for (const name in res.headers) {
      const value = res.headers[name];
      if (value === undefined) continue;
      if (typeof value === 'string') out.append(name, value);
      else for (const v of value) out.append(name, v);
    }
    const location = status >= 300 && status < 400 ? (headerOf(res.headers, 'location') ?? null) : null;
    if (location !== null && redirect === 'error') {
      discard(res.body);
      throw new TypeError('fetch failed: unexpected redirect');
    }
    const answer: ResponseInit = { status, statusText: res.statusText ?? '', headers: out };
    if (NULL_BODY.has(status) || method === 'HEAD') {
      discard(res.body);
      return withUrl(new Response(null, answer), url.href);
    }
    const decode = decoder(headerOf(res.headers, 'content-encoding'));
    const length = Number(headerOf(res.headers, 'content-length') ?? Number.NaN);
    if (decode === undefined && length <= bufferBelow) {
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        bytes = new Uint8Array(await res.body.arrayBuffer());
      } catch (error) {
        if (signal?.aborted === true) throw signal.reason;
        throw new TypeError('fetch failed', { cause: error });
      }
      // Read already: its body methods answer from the bytes, without a stream in between.
      return new BufferedResponse(bytes, answer, url.href);
    }
    const source: Readable = decode === undefined ? res.body : (res.body.pipe(decode as NodeJS.WritableStream) as unknown as Readable);
    if (decode !== undefined) res.body.on('error', (e) => (decode as unknown as Readable).destroy(e));
    return withUrl(new Response(Readable.toWeb(source) as unknown as ReadableStream<Uint8Array>, answer), url.href);
  }

  return Object.assign(undiciFetch, {
    close: (): Promise<void> => agent.close(),
  });
}
