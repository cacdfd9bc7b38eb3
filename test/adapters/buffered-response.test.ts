/**
 * The undici transport answers a small body with a Response whose body methods read the bytes it
 * already holds (no stream in between). Differential: every sequence of body operations gives what
 * the same sequence gives on fetch's own Response for the same answer from the same server
 * (values, rejections and their types, bodyUsed, clones, the stream), so callers cannot tell.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BufferedResponse } from '../../src/adapters/buffered-response.js';
import { createUndiciFetch, type UndiciFetch } from '../../src/adapters/undici.js';

let server: Server;
let origin: string;
let transport: UndiciFetch;

const BODIES: Record<string, { type: string; body: Buffer }> = {
  '/json': { type: 'application/json', body: Buffer.from('{"ok":true,"n":[1,2]}') },
  '/bom': { type: 'application/json; charset=utf-8', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"bom":"é"}')]) },
  '/bad-json': { type: 'application/json', body: Buffer.from('{"ok":') },
  '/bad-utf8': { type: 'text/plain', body: Buffer.from([0x61, 0xff, 0xfe, 0x62]) },
  '/form': { type: 'application/x-www-form-urlencoded', body: Buffer.from('a=1&b=two+words') },
  '/bin': { type: 'Application/Octet-Stream', body: Buffer.from([0, 1, 2, 250, 255]) },
  '/empty': { type: 'text/plain', body: Buffer.alloc(0) },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const answer = BODIES[req.url ?? ''];
    if (answer === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': answer.type, 'content-length': String(answer.body.length), 'x-tool': 'yes' });
    res.end(answer.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  transport = await createUndiciFetch();
});
afterAll(async () => {
  await transport.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

type Op = (r: Response) => Promise<unknown> | unknown;
/** The outcome of one operation, comparable across the two responses. */
async function outcome(op: Op, r: Response): Promise<unknown> {
  try {
    const value = await op(r);
    if (value instanceof ArrayBuffer) return { buffer: [...new Uint8Array(value)] };
    if (value instanceof Uint8Array) return { bytes: [...value] };
    if (value instanceof Blob) return { blob: value.type, bytes: [...new Uint8Array(await value.arrayBuffer())] };
    if (value instanceof FormData) return { form: [...value.entries()] };
    if (value instanceof Response) return { clone: await value.text(), status: value.status, url: value.url, type: value.headers.get('content-type') };
    if (value instanceof ReadableStream) return { stream: true };
    return { value };
  } catch (error) {
    return { error: (error as Error).constructor.name };
  }
}

const ops: Record<string, Op> = {
  arrayBuffer: (r) => r.arrayBuffer(),
  bytes: (r) => r.bytes(),
  text: (r) => r.text(),
  json: (r) => r.json(),
  blob: (r) => r.blob(),
  formData: (r) => r.formData(),
  clone: (r) => r.clone(),
  body: (r) => r.body,
  readBody: async (r) => {
    const chunks: number[] = [];
    for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) chunks.push(...c);
    return { read: chunks };
  },
  bodyUsed: (r) => r.bodyUsed,
};

const sequences: string[][] = [
  ['text', 'bodyUsed', 'text', 'json', 'arrayBuffer', 'bodyUsed'],
  ['json', 'json'],
  ['arrayBuffer', 'clone'],
  ['bytes', 'blob'],
  ['clone', 'text', 'clone'],
  ['body', 'bodyUsed', 'text', 'bodyUsed', 'text'],
  ['readBody', 'bodyUsed', 'text', 'clone'],
  ['blob', 'bodyUsed', 'formData'],
  ['formData'],
  ['body', 'clone', 'arrayBuffer'],
  ['bodyUsed', 'body', 'readBody', 'body'],
];

describe('BufferedResponse: the undici transport small-body Response', () => {
  it('is what the transport returns for a small body with a length, and a Response in every way a caller checks', async () => {
    const r = await transport(`${origin}/json`);
    expect(r).toBeInstanceOf(BufferedResponse);
    expect(r).toBeInstanceOf(Response);
    expect(r.status).toBe(200);
    expect(r.ok).toBe(true);
    expect(r.url).toBe(`${origin}/json`);
    expect(r.headers.get('x-tool')).toBe('yes');
    expect(Object.prototype.toString.call(r)).toBe('[object Response]');
    await expect(r.json()).resolves.toEqual({ ok: true, n: [1, 2] });
  });

  for (const path of Object.keys(BODIES)) {
    for (const sequence of sequences) {
      it(`${path}: ${sequence.join(' → ')} gives what fetch's Response gives`, async () => {
        const mine = await transport(`${origin}${path}`);
        const theirs = await fetch(`${origin}${path}`);
        expect(mine).toBeInstanceOf(BufferedResponse);
        const got: unknown[] = [];
        const want: unknown[] = [];
        for (const name of sequence) {
          got.push(await outcome(ops[name] as Op, mine));
          want.push(await outcome(ops[name] as Op, theirs));
        }
        // A clone's url: fetch's is the URL too (both are compared through `outcome`).
        expect(got).toEqual(want);
      });
    }
  }

  it('an ArrayBuffer handed out is the caller alone: a clone taken before keeps its own bytes', async () => {
    const r = await transport(`${origin}/bin`);
    const copy = r.clone();
    const first = new Uint8Array(await r.arrayBuffer());
    first.fill(7);
    expect([...new Uint8Array(await copy.arrayBuffer())]).toEqual([0, 1, 2, 250, 255]);
  });
});
