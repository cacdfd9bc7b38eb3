import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { scrubNodeHeaders } from '../../src/http/middleware-core.js';

/** A Node request as the HTTP parser leaves it, with the given raw header lines. */
function nodeRequest(raw: string[]): IncomingMessage {
  const message = new IncomingMessage(new Socket());
  message.rawHeaders = raw;
  (message as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(raw, raw.length);
  return message;
}

describe('scrubNodeHeaders', () => {
  it('Node request: headers, rawHeaders and headersDistinct (read after) only hold the verified id', () => {
    const req = nodeRequest(['Host', 'a', 'X-End-User-ID', 'admin', 'Accept', '*/*', 'x-end-user-id', 'root']);
    scrubNodeHeaders(req, 'alice');
    expect(req.headers['x-end-user-id']).toBe('alice');
    expect(req.rawHeaders).toEqual(['Host', 'a', 'Accept', '*/*', 'X-End-User-ID', 'alice']);
    expect(req.headersDistinct['x-end-user-id']).toEqual(['alice']);
    expect(req.headersDistinct.accept).toEqual(['*/*']);
  });

  it('Node request: headersDistinct read before is rebuilt; open mode removes the header everywhere', () => {
    const req = nodeRequest(['X-End-User-ID', 'admin', 'Host', 'a']);
    expect(req.headersDistinct['x-end-user-id']).toEqual(['admin']);
    scrubNodeHeaders(req, undefined);
    expect(req.headers['x-end-user-id']).toBeUndefined();
    expect(req.rawHeaders).toEqual(['Host', 'a']);
    expect(req.headersDistinct['x-end-user-id']).toBeUndefined();
    expect(req.headersDistinct.host).toEqual(['a']);
  });

  it('an object without Node internals gets its headersDistinct patched', () => {
    const message = {
      headers: { host: 'a', 'x-end-user-id': 'admin' } as Record<string, string>,
      rawHeaders: ['Host', 'a', 'X-End-User-ID', 'admin'],
      headersDistinct: { host: ['a'], 'x-end-user-id': ['admin'] } as Record<string, string[]>,
    };
    scrubNodeHeaders(message, 'alice');
    expect(message).toEqual({
      headers: { host: 'a', 'x-end-user-id': 'alice' },
      rawHeaders: ['Host', 'a', 'X-End-User-ID', 'alice'],
      headersDistinct: { host: ['a'], 'x-end-user-id': ['alice'] },
    });
  });
});
