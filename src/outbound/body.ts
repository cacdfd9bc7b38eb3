/**
 * Reading a request body once, bounded, for hashing (approvals) and signing (SigV4).
 *
 * @module
 */
import { AgentIamError, requestInvalid } from '../errors.js';
import { readBoundedBytes } from '../lib/bounded-read.js';

/** Largest body toolFetch buffers (for an approval hash or a signed payload). */
export const MAX_BUFFERED_BODY = 10 * 1024 * 1024;

const encoder = new TextEncoder();

function tooLarge(): AgentIamError {
  return requestInvalid(`Request body larger than ${MAX_BUFFERED_BODY} bytes cannot be buffered`);
}

/** @internal True when a body can be sent more than once as it is (replayed on a 307/308). */
export function isReplayable(body: unknown): boolean {
  return (
    body === null ||
    body === undefined ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof FormData
  );
}

/** @internal Read a stream into bytes, failing past `max` bytes. */
export async function readStream(stream: ReadableStream<Uint8Array>, max = MAX_BUFFERED_BODY): Promise<Uint8Array> {
  const bytes = await readBoundedBytes(stream, max);
  if (bytes === undefined) throw tooLarge();
  return bytes;
}

/**
 * @internal Bytes of any `BodyInit`, plus the content type fetch would have added for it (used when
 * the caller set none, since bytes carry no type).
 */
export async function bodyToBytes(body: unknown): Promise<{ bytes: Uint8Array; contentType: string | null }> {
  if (typeof body === 'string') {
    const bytes = encoder.encode(body);
    if (bytes.byteLength > MAX_BUFFERED_BODY) throw tooLarge();
    return { bytes, contentType: 'text/plain;charset=UTF-8' };
  }
  if (body instanceof Uint8Array) {
    if (body.byteLength > MAX_BUFFERED_BODY) throw tooLarge();
    return { bytes: body, contentType: null };
  }
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    const bytes =
      body instanceof ArrayBuffer ? new Uint8Array(body) : new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    if (bytes.byteLength > MAX_BUFFERED_BODY) throw tooLarge();
    return { bytes, contentType: null };
  }
  if (body instanceof Blob && body.size > MAX_BUFFERED_BODY) throw tooLarge();
  let response: Response;
  try {
    response = new Response(body as BodyInit);
  } catch {
    throw new AgentIamError('REQUEST_INVALID', 'Request body type is not supported');
  }
  const contentType = response.headers.get('content-type');
  if (response.body === null) return { bytes: new Uint8Array(0), contentType };
  return { bytes: await readStream(response.body), contentType };
}
