import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileCapabilities, isMatchablePath, type Capability } from '../../src/policy/capabilities.js';

const caps: Capability[] = [
  { method: 'GET', path: '/v1/charges' },
  { method: 'get', path: '/v1/charges/:id' },
  { method: 'POST', path: '/v1/charges/:id/capture' },
  { method: '*', path: '/v1/files/*' },
  { method: 'DELETE', path: '/v1/customers/:cid/sources/:sid' },
  { method: 'GET', path: '/' },
  { method: 'PUT', path: '/v2//odd' },
  { method: 'GET', path: '/v1/users/me' },
  { method: 'GET', path: '/v1/users/:id' },
  { method: 'GET', path: '/v1/a%20b' },
];

describe('compileCapabilities: table', () => {
  const m = compileCapabilities(caps);
  const table: Array<[string, string, string | undefined]> = [
    ['GET', '/v1/charges', '/v1/charges'],
    ['get', '/v1/charges', '/v1/charges'],
    ['gEt', '/v1/charges/ch_1', '/v1/charges/:id'],
    ['POST', '/v1/charges', undefined],
    ['GET', '/v1/charges/', undefined], // trailing slash is another path
    ['GET', '/v1//charges', undefined], // empty segments count
    ['GET', '/V1/charges', undefined], // literals are case-sensitive
    ['GET', '/v1/charges/ch_1/', undefined],
    ['GET', '/v1/charges/ch_1/capture', undefined],
    ['POST', '/v1/charges/ch_1/capture', '/v1/charges/:id/capture'],
    ['POST', '/v1/charges//capture', undefined], // :id needs a non-empty segment
    ['PATCH', '/v1/files/a', '/v1/files/*'],
    ['GET', '/v1/files/a/b/c', '/v1/files/*'],
    ['GET', '/v1/files/', '/v1/files/*'],
    ['GET', '/v1/files', undefined], // '/*' needs at least the slash
    ['DELETE', '/v1/customers/c1/sources/s1', '/v1/customers/:cid/sources/:sid'],
    ['DELETE', '/v1/customers/c1/sources', undefined],
    ['GET', '/', '/'],
    ['POST', '/', undefined],
    ['GET', '', undefined],
    ['GET', 'v1/charges', undefined],
    ['PUT', '/v2//odd', '/v2//odd'],
    ['PUT', '/v2/odd', undefined],
    ['GET', '/v1/users/me', '/v1/users/me'], // literal beats :param
    ['GET', '/v1/users/42', '/v1/users/:id'],
    ['GET', '/v1/a%20b', '/v1/a%20b'],
    ['GET', '/v1/a b', undefined],
    // never matched: dot-segments (also encoded), encoded separators, backslash, control chars, ? and #
    ['GET', '/v1/charges/..', undefined],
    ['GET', '/v1/charges/.', undefined],
    ['GET', '/v1/charges/%2e%2E', undefined],
    ['GET', '/v1/charges/.%2e', undefined],
    ['GET', '/v1/charges/a%2fb', undefined],
    ['GET', '/v1/charges/a%2Fb', undefined],
    ['GET', '/v1/charges/a%5cb', undefined],
    ['GET', '/v1/charges/a\\b', undefined],
    ['GET', '/v1/charges/a%00', undefined],
    ['GET', '/v1/charges/a%0A', undefined],
    ['GET', '/v1/charges/a%7f', undefined],
    ['GET', '/v1/charges/a%20', '/v1/charges/:id'],
    ['GET', '/v1/charges/a\nb', undefined],
    ['GET', '/v1/charges/a?b', undefined],
    ['GET', '/v1/charges/a#b', undefined],
    ['GET', '/v1/files/../../admin', undefined],
    ['GET', '/v1/files/x/%2e%2e/admin', undefined],
  ];
  it.each(table)('%s %j → %s', (method, path, expected) => {
    expect(m.match(method, path)?.path).toBe(expected);
  });

  it('returns the normalised capability (upper-case method)', () => {
    expect(m.match('GET', '/v1/charges/x')).toEqual({ method: 'GET', path: '/v1/charges/:id' });
    expect(m.all).toBe(false);
  });

  it('an exact method wins over "*", literal over :param over *', () => {
    const mm = compileCapabilities([
      { method: '*', path: '/a/b' },
      { method: 'GET', path: '/a/*' },
      { method: 'GET', path: '/a/:x' },
      { method: 'GET', path: '/a/b' },
    ]);
    expect(mm.match('GET', '/a/b')).toEqual({ method: 'GET', path: '/a/b' });
    expect(mm.match('GET', '/a/c')).toEqual({ method: 'GET', path: '/a/:x' });
    expect(mm.match('GET', '/a/c/d')).toEqual({ method: 'GET', path: '/a/*' });
    expect(mm.match('POST', '/a/b')).toEqual({ method: '*', path: '/a/b' });
    expect(mm.match('POST', '/a/c')).toBeUndefined();
  });

  it('backtracks from a literal branch into a :param branch', () => {
    const mm = compileCapabilities([
      { method: 'GET', path: '/a/b/c' },
      { method: 'GET', path: '/a/:x/d' },
    ]);
    expect(mm.match('GET', '/a/b/d')).toEqual({ method: 'GET', path: '/a/:x/d' });
  });

  it('undefined or empty list: all = true, matches every safe path', () => {
    for (const m2 of [compileCapabilities(undefined), compileCapabilities([])]) {
      expect(m2.all).toBe(true);
      expect(m2.match('DELETE', '/anything/at/all')).toEqual({ method: '*', path: '/*' });
      expect(m2.match('GET', '/a/../b')).toBeUndefined();
      expect(m2.match('GET', '/a%2fb')).toBeUndefined();
    }
  });
});

describe('compileCapabilities: invalid patterns are CONFIG_INVALID naming the field', () => {
  const bad: Array<[unknown, string]> = [
    [{ method: 'GET', path: 'v1/x' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a/*/b' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a/b*' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a/:' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a/:1x' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a/../b' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a/%2E' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a%2fb' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a%5Cb' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a%zz' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a%0a' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a?b' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a b' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GET', path: '/a\\b' }, 'tools.0.capabilities.0.path'],
    [{ method: 'GE T', path: '/a' }, 'tools.0.capabilities.0.method'],
    [{ method: '', path: '/a' }, 'tools.0.capabilities.0.method'],
    [{ method: 1, path: '/a' }, 'tools.0.capabilities.0.method'],
    [null, 'tools.0.capabilities.0'],
  ];
  it.each(bad)('%j', (cap, field) => {
    expect.assertions(1);
    try {
      compileCapabilities([cap as Capability], 'tools.0.capabilities');
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'CONFIG_INVALID', field });
    }
  });
});

// ---------- property tests against a simple reference matcher ----------

function refMatchOne(cap: Capability, method: string, path: string): boolean {
  if (cap.method !== '*' && cap.method.toUpperCase() !== method.toUpperCase()) return false;
  if (!path.startsWith('/')) return false;
  const p = cap.path.slice(1).split('/');
  const s = path.slice(1).split('/');
  const wildcard = p[p.length - 1] === '*';
  const fixed = wildcard ? p.slice(0, -1) : p;
  if (wildcard ? s.length < fixed.length + 1 : s.length !== fixed.length) return false;
  return fixed.every((seg, i) => (seg.startsWith(':') ? (s[i] as string).length > 0 : seg === s[i]));
}
const refMatch = (list: Capability[], method: string, path: string): boolean => list.some((c) => refMatchOne(c, method, path));

const patternSeg = fc.constantFrom('a', 'b', 'v1', '', ':id', ':x');
const pathSeg = fc.constantFrom('a', 'b', 'v1', '', 'zz', 'A', '%20');
const capArb: fc.Arbitrary<Capability> = fc.record({
  method: fc.constantFrom('GET', 'post', '*', 'Delete'),
  path: fc
    .tuple(fc.array(patternSeg, { minLength: 1, maxLength: 4 }), fc.boolean())
    .map(([segs, star]) => '/' + (star ? [...segs, '*'] : segs).join('/')),
});
const safePathArb = fc.array(pathSeg, { minLength: 1, maxLength: 6 }).map((segs) => '/' + segs.join('/'));
const reqMethod = fc.constantFrom('GET', 'get', 'POST', 'DELETE', 'PATCH');

describe('compileCapabilities: properties', () => {
  it('agrees with the reference matcher on safe paths, and what it returns matches', () => {
    fc.assert(
      fc.property(fc.array(capArb, { minLength: 1, maxLength: 12 }), reqMethod, safePathArb, (list, method, path) => {
        const found = compileCapabilities(list).match(method, path);
        expect(found !== undefined).toBe(refMatch(list, method, path));
        if (found) expect(refMatchOne(found, method, path)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  const unsafePiece = fc.constantFrom('..', '.', '%2e', '%2E%2e', '.%2E', 'a%2fb', 'a%2Fb', '%5c', '%5C', 'a\\b', '%00', 'x%0d', '%1F');
  it('never matches a path with a dot-segment or an encoded separator, even with /* and "*"', () => {
    fc.assert(
      fc.property(
        fc.array(capArb, { maxLength: 8 }),
        reqMethod,
        fc.array(pathSeg, { maxLength: 4 }),
        unsafePiece,
        fc.array(pathSeg, { maxLength: 4 }),
        (list, method, before, bad, after) => {
          const path = '/' + [...before, bad, ...after].join('/');
          const m = compileCapabilities([...list, { method: '*', path: '/*' }]);
          expect(m.match(method, path)).toBeUndefined();
          expect(compileCapabilities(undefined).match(method, path)).toBeUndefined();
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('%2f is a literal that never stands for "/"', () => {
    const m = compileCapabilities([{ method: 'GET', path: '/a/b' }, { method: 'GET', path: '/a/:x' }]);
    expect(m.match('GET', '/a%2fb')).toBeUndefined();
    expect(m.match('GET', '/a/b%2Fc')).toBeUndefined();
  });
});

describe('isMatchablePath (the one-pass scanner) agrees with a reference RegExp', () => {
  // eslint-disable-next-line no-control-regex
  const UNSAFE = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)|%2f|%5c|%[01][0-9a-f]|%7f|[\\\u0000-\u0020\u007f-\u009f?#]/i;
  const ref = (p: string) => p.startsWith('/') && !UNSAFE.test(p);
  it('on generated paths', () => {
    const ch = fc.constantFrom('/', '.', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', '0', '1', '7', 'a', '\\', '?', '#', ' ', '\n', '\u0085', 'é', '_');
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 14 }), (chars) => {
        const p = '/' + chars.join('');
        expect(isMatchablePath(p)).toBe(ref(p));
      }),
      { numRuns: 20000 },
    );
  });
  it('on a few by hand', () => {
    for (const p of ['/', '/a', '/a/', '/%2e%2e', '/.%2E/', '/a/..', '/a/...', '/a/.b', '/%', '/%2', '/%2g', '/a%2', '/%%2f', '/x%7F', '/x%20']) {
      expect(isMatchablePath(p), p).toBe(ref(p));
    }
    expect(isMatchablePath('')).toBe(false);
    expect(isMatchablePath('a/b')).toBe(false);
  });
  it('long paths with many segments', () => {
    const p = '/' + Array.from({ length: 500 }, (_, i) => `s${i}`).join('/');
    const m = compileCapabilities([{ method: 'GET', path: '/s0/s1/*' }]);
    expect(m.match('GET', p)).toEqual({ method: 'GET', path: '/s0/s1/*' });
    expect(m.match('GET', p + '/..')).toBeUndefined();
  });
});
