import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkRawUrl, parseSafeUrl, safeUrl } from '../../src/outbound/url-safety.js';

describe('URL fast path agrees with the full checks', () => {
  it('on generated URLs built from hostile and ordinary pieces', () => {
    const full = (raw: string): string => {
      try {
        checkRawUrl(raw);
        return parseSafeUrl(raw).href;
      } catch (e) {
        return `error:${(e as { code?: string }).code}`;
      }
    };
    const fast = (raw: string): string => {
      try {
        return safeUrl(raw).href;
      } catch (e) {
        return `error:${(e as { code?: string }).code}`;
      }
    };
    const piece = fc.constantFrom('a', 'Z', '0', '.', '..', '%2e', '%2f', '%5c', '%00', '%', '/', '\\', '@', ':', '?', '#', ' ', '\t', '\n', '-', '_', '~', ';', '=', '&', '+', "'", '(', '!', '$', '*', ',', 'é', '\u0085');
    const host = fc.constantFrom('127.0.0.1', 'api.example.com', 'API.Example.com', 'a', '-', 'x@y', 'h:99999', 'h:80', '[::1]', 'h%2e', '');
    const raw = fc.tuple(fc.constantFrom('http://', 'https://', 'HTTP://', 'ftp://', 'http:/', '//'), host, fc.array(piece, { maxLength: 12 })).map(([s, h, p]) => s + h + p.join(''));
    fc.assert(fc.property(raw, (r) => fast(r) === full(r)), { numRuns: 5000 });
    expect(fast('http://127.0.0.1:8080/v1/items/it_42?expand=a.b&x=1')).toBe('http://127.0.0.1:8080/v1/items/it_42?expand=a.b&x=1');
    expect(fast('http://127.0.0.1:8080/v1/../admin')).toBe('error:REQUEST_INVALID');
  });
});
