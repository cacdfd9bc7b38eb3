/**
 * Internal module. A WHATWG `Response` over a body already read into memory, for the undici
 * transport's small answers. A `Response` built on bytes wraps them in a `ReadableStream`, and each
 * body method then reads them back through it: for an 11-byte JSON answer that costs more than the
 * rest of the response (about 6 µs a request on Node 24). This subclass answers `arrayBuffer()`,
 * `bytes()`, `text()` and `json()` from the bytes themselves, and builds the stream only when one is
 * asked for (`body`, `blob()`, `formData()`, or `clone()` after `body`); from then on a plain
 * `Response` over the same bytes answers everything, so the two paths never disagree.
 *
 * What a caller sees is a `Response` (`instanceof Response`, status, headers, url) whose body reads
 * once: a second read rejects with a `TypeError`, as fetch's does. Its headers are those of a
 * constructed `Response` (the transport's have always been): not locked as fetch's are.
 *
 * @module
 */

const decoder = new TextDecoder();
const EMPTY = new Uint8Array(new ArrayBuffer(0));

/** The `TypeError` fetch gives for a body read twice. */
function unusable(): TypeError {
  return new TypeError('Body is unusable: Body has already been read');
}

/** What the body's state is: unread bytes, read, or handed to a plain `Response` (its stream). */
type BodyState = { kind: 'bytes'; bytes: Uint8Array<ArrayBuffer> } | { kind: 'read' } | { kind: 'stream'; response: Response };

/** See the module comment. Built by the undici transport only. */
export class BufferedResponse extends Response {
  #state: BodyState;
  readonly #url: string;

  constructor(bytes: Uint8Array<ArrayBuffer>, init: ResponseInit, url: string) {
    super(null, init);
    this.#state = { kind: 'bytes', bytes };
    this.#url = url;
  }

  override get url(): string {
    return this.#url;
  }

  override get bodyUsed(): boolean {
    const state = this.#state;
    return state.kind === 'read' || (state.kind === 'stream' && state.response.bodyUsed);
  }

  override get body(): ReadableStream<Uint8Array<ArrayBuffer>> | null {
    return this.#streamed().body;
  }

  override async arrayBuffer(): Promise<ArrayBuffer> {
    const state = this.#state;
    if (state.kind === 'stream') return state.response.arrayBuffer();
    const bytes = this.#take();
    // The transport made these bytes for this response alone: the whole buffer is the body.
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  }

  override async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    const state = this.#state;
    if (state.kind === 'stream') return new Uint8Array(await state.response.arrayBuffer());
    return this.#take();
  }

  override async text(): Promise<string> {
    const state = this.#state;
    if (state.kind === 'stream') return state.response.text();
    return decoder.decode(this.#take()); // UTF-8, a leading BOM dropped: as Response.text()
  }

  override async json(): Promise<unknown> {
    const state = this.#state;
    if (state.kind === 'stream') return state.response.json();
    return JSON.parse(decoder.decode(this.#take())) as unknown;
  }

  override async blob(): Promise<Blob> {
    return this.#streamed().blob();
  }

  override async formData(): Promise<FormData> {
    return this.#streamed().formData();
  }

  override clone(): Response {
    const state = this.#state;
    if (state.kind === 'read') throw new TypeError('Response.clone: Body has already been consumed.');
    const init: ResponseInit = { status: this.status, statusText: this.statusText, headers: this.headers };
    if (state.kind === 'bytes') return new BufferedResponse(state.bytes.slice(), init, this.#url);
    // The stream exists: clone through it (which refuses a disturbed or locked body, as fetch's).
    return new BufferedStreamClone(state.response.clone(), init, this.#url);
  }

  /** The bytes, once; the body is read from then on. */
  #take(): Uint8Array<ArrayBuffer> {
    const state = this.#state;
    if (state.kind !== 'bytes') throw unusable();
    this.#state = { kind: 'read' };
    return state.bytes;
  }

  /** A plain `Response` over the bytes (its body a stream), made once; a read body gives a read one. */
  #streamed(): Response {
    const state = this.#state;
    if (state.kind === 'stream') return state.response;
    const response = new Response(state.kind === 'bytes' ? state.bytes : EMPTY, { status: this.status, statusText: this.statusText, headers: this.headers });
    if (state.kind === 'read') void response.arrayBuffer().catch(() => {}); // disturbed, as after a read
    this.#state = { kind: 'stream', response };
    return response;
  }
}

/** A clone taken after the stream was asked for: a `Response` over the cloned stream, with the URL. */
class BufferedStreamClone extends Response {
  readonly #url: string;

  constructor(source: Response, init: ResponseInit, url: string) {
    super(source.body, init);
    this.#url = url;
  }

  override get url(): string {
    return this.#url;
  }
}
