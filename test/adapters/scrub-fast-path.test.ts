/**
 * scrubNodeHeaders resets Node's cached headersDistinct only when one was built (the reset adds a
 * property to every request otherwise). Whatever the order in which requests build it, every view of
 * X-End-User-ID must hold only the verified id afterwards.
 */
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { scrubNodeHeaders } from '../../src/http/middleware-core.js';

function nodeRequest(raw: string[]): IncomingMessage {
  const message = new IncomingMessage(new Socket());
  message.rawHeaders = raw;
  (message as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(raw, raw.length);
  return message;
}

function views(req: IncomingMessage) {
  return {
    header: req.headers['x-end-user-id'],
    distinct: req.headersDistinct['x-end-user-id'],
    raw: req.rawHeaders.filter((_, i, all) => i % 2 === 1 && (all[i - 1] as string).toLowerCase() === 'x-end-user-id'),
  };
}

describe('scrubNodeHeaders: headersDistinct built or not, in any order', () => {
  it('alternating requests that did and did not build headersDistinct before the scrub', () => {
    for (let i = 0; i < 6; i++) {
      const req = nodeRequest(['Host', 'a', 'X-End-User-ID', 'admin', 'x-end-user-id', 'root']);
      const builtBefore = i % 3 === 1;
      if (builtBefore) expect(req.headersDistinct['x-end-user-id']).toEqual(['admin', 'root']);
      scrubNodeHeaders(req, `user-${i}`);
      expect(views(req)).toEqual({ header: `user-${i}`, distinct: [`user-${i}`], raw: [`user-${i}`] });
      // a second scrub (open mode after) removes it everywhere, even though headersDistinct is now built
      scrubNodeHeaders(req, undefined);
      expect(views(req)).toEqual({ header: undefined, distinct: undefined, raw: [] });
    }
  });
});
