/**
 * Internal module. Bounded JSON body reading for the MCP scope check, from a Web `Request` or a Node
 * `IncomingMessage`-like object (structural types only: nothing here imports node:*).
 *
 * @module
 */
import { AgentIamError, bodyTooLarge } from '../errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function tooLarge(maxBytes: number): AgentIamError {
  return bodyTooLarge(maxBytes);
}

function notJson(): AgentIamError {
  return new AgentIamError('REQUEST_INVALID', 'The request body is not valid JSON');
}

/** @internal A declared `Content-Length` above the bound is refused (413) before anything is read. */
export function checkDeclaredLength(value: string | null | undefined, maxBytes: number): void {
  if (value === null || value === undefined || value === '') return;
  const declared = Number(value);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
}

/** @internal Parse UTF-8 JSON bytes; throws `REQUEST_INVALID`. */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw notJson();
  }
  return parseJsonText(text);
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw notJson();
  }
}

/**
 * @internal Read and parse the JSON body of a Web `Request`, at most `maxBytes`. The request itself
 * is consumed: callers that hand it on read a clone, or rebuild it from {@link WebBody.bytes}.
 */
export interface WebBody {
  readonly body: unknown;
  readonly bytes: Uint8Array;
}

/** @internal See {@link WebBody}; throws `REQUEST_INVALID` (400, or 413 above the bound). */
export async function readWebJson(request: Request, maxBytes: number): Promise<WebBody> {
  checkDeclaredLength(request.headers.get('content-length'), maxBytes);
  if (request.body === null) throw notJson();
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readBoundedStream(request.body, maxBytes);
  } catch {
    throw new AgentIamError('REQUEST_INVALID', 'The request body could not be read');
  }
  if (bytes === undefined) throw tooLarge(maxBytes);
  return { body: parseJsonBytes(bytes), bytes };
}

/**
 * `readBoundedBytes` from lib/, except that the cancel past the bound is not awaited: the body of a
 * `request.clone()` is one branch of a tee, and cancelling one branch settles only once the other
 * branch (the request handed on) is cancelled too, which may be never.
 */
async function readBoundedStream(stream: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  reader.releaseLock();
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** The parts of a Node request read here (Express's request fits). */
export interface NodeBodySource {
  headers: Record<string, string | string[] | undefined>;
  /** Set by a body parser (`express.json()`, `express.text()`, `express.raw()`) when one ran. */
  body?: unknown;
  readableEnded?: boolean;
  on?(event: string, listener: (...args: never[]) => void): unknown;
  removeListener?(event: string, listener: (...args: never[]) => void): unknown;
}

/**
 * @internal The JSON body of a Node request: what a body parser left on `req.body` (an object or
 * array as is; a string or bytes parsed), else the stream read up to `maxBytes`, parsed, and stored
 * on `req.body` so that the MCP transport gets it as `parsedBody`. Throws `REQUEST_INVALID`.
 */
export async function readNodeJson(req: NodeBodySource, maxBytes: number): Promise<unknown> {
  // The declared length bounds a body that a parser (with its own limit) already read, too.
  const length = req.headers['content-length'];
  checkDeclaredLength(Array.isArray(length) ? length[0] : length, maxBytes);
  const parsed = req.body;
  if (parsed !== undefined) {
    if (typeof parsed === 'string') {
      if (parsed.length > maxBytes) throw tooLarge(maxBytes);
      return parseJsonText(parsed);
    }
    if (parsed instanceof Uint8Array) {
      if (parsed.byteLength > maxBytes) throw tooLarge(maxBytes);
      return parseJsonBytes(parsed);
    }
    return parsed;
  }
  if (req.readableEnded === true || typeof req.on !== 'function' || typeof req.removeListener !== 'function') {
    throw new AgentIamError('REQUEST_INVALID', 'The request body was already read and no body parser left it on req.body');
  }
  const bytes = await readNodeStream(req as Required<Pick<NodeBodySource, 'on' | 'removeListener'>>, maxBytes);
  const body = parseJsonBytes(bytes);
  req.body = body;
  return body;
}

/**
 * Collect a Node stream's bytes up to `maxBytes`. Past the bound the listeners are removed and the
 * rest is left to Node, which discards it once the response is sent (the connection stays usable).
 */
function readNodeStream(stream: Required<Pick<NodeBodySource, 'on' | 'removeListener'>>, maxBytes: number): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const encoder = new TextEncoder();
    const cleanup = (): void => {
      stream.removeListener('data', onData as never);
      stream.removeListener('end', onEnd as never);
      stream.removeListener('error', onError as never);
      stream.removeListener('aborted', onError as never);
    };
    const onData = (chunk: Uint8Array | string): void => {
      const bytes = typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
      total += bytes.byteLength;
      if (total > maxBytes) {
        cleanup();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(bytes);
    };
    const onEnd = (): void => {
      cleanup();
      if (chunks.length === 1) return resolve(chunks[0] as Uint8Array);
      const out = new Uint8Array(total);
      let offset = 0;
      for (const c of chunks) {
        out.set(c, offset);
        offset += c.byteLength;
      }
      resolve(out);
    };
    const onError = (): void => {
      cleanup();
      reject(new AgentIamError('REQUEST_INVALID', 'The request body could not be read'));
    };
    stream.on('data', onData as never);
    stream.on('end', onEnd as never);
    stream.on('error', onError as never);
    stream.on('aborted', onError as never);
  });
}
