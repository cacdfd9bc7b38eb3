// Serving a small public JSON document from a fixed path, for any Web-API server.

/** What both metadata builders return: where the document lives, the document, and a handler. */
export interface PublishedDocument<D> {
  /** The URL path to serve the document at, e.g. `/.well-known/oauth-protected-resource/mcp`. */
  readonly path: string;
  /** The absolute URL of the document. */
  readonly url: string;
  /** The document itself (frozen). */
  readonly document: Readonly<D>;
  /**
   * A Web-API handler: `GET`/`HEAD` answer the JSON with `Access-Control-Allow-Origin: *`, `OPTIONS`
   * answers a CORS preflight, anything else is `405`.
   */
  readonly handler: (request: Request) => Response;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** Build the `{ path, url, document, handler }` shape; the body is serialised once. */
export function publishDocument<D extends object>(url: URL, document: D, maxAgeSeconds: number): PublishedDocument<D> {
  const frozen = deepFreeze(document);
  const body = JSON.stringify(frozen);
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, HEAD, OPTIONS',
    // MCP clients send MCP-Protocol-Version on discovery requests, which makes browsers preflight.
    'access-control-allow-headers': '*',
    'access-control-max-age': '86400',
  };
  const okHeaders = {
    ...cors,
    'content-type': 'application/json',
    'cache-control': `public, max-age=${maxAgeSeconds}`,
  };
  return Object.freeze({
    path: url.pathname,
    url: url.href,
    document: frozen,
    handler: function serveDocument(request: Request): Response {
      switch (request.method) {
        case 'GET':
          return new Response(body, { status: 200, headers: okHeaders });
        case 'HEAD':
          return new Response(null, { status: 200, headers: okHeaders });
        case 'OPTIONS':
          return new Response(null, { status: 204, headers: cors });
        default:
          return new Response(null, { status: 405, headers: { ...cors, allow: 'GET, HEAD, OPTIONS' } });
      }
    },
  });
}
