/**
 * Hostile URLs and headers, thought up as an attacker would: every one must fail with the expected
 * code and the upstream must see nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createToolFetch, type ToolFetch } from '../../src/outbound/index.js';
import { checkRawUrl, safeUrl } from '../../src/outbound/url-safety.js';
import { startUpstream, type Upstream } from './upstream.js';
import { auditLog, codeOf, userContext } from './helpers.js';

let up: Upstream;
let tf: ToolFetch;
let O: string; // http://127.0.0.1:port
let P: number;
const log = auditLog();

beforeAll(async () => {
  up = await startUpstream();
  O = up.origin;
  P = up.port;
  tf = createToolFetch({
    agent: { id: 'agent-1' },
    tools: [{ name: 'api', baseUrl: `${O}/api`, auth: { type: 'apiKey', key: 'SECRET-KEY-123', header: 'x-api-key' } }],
    policies: [{ agent: 'agent-1', tool: 'api' }],
    audit: log.sink,
  });
});
afterAll(() => up.close());
beforeEach(() => up.clear());

const ctx = userContext('alice');
/** Rows are built once the port is known; this many test slots exist (checked above). */
const ROWS = 80;

describe('hostile URLs', () => {
  const table = (): [string, string | URL | Request, string][] => [
    // userinfo
    ['userinfo', `http://user:pass@127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['userinfo user only', `http://user@127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['empty userinfo', `http://@127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['userinfo hiding host', `http://127.0.0.1:${P}@evil.example/api/x`, 'REQUEST_INVALID'],
    // backslashes
    ['backslash in path', `${O}/api\\..\\admin`, 'REQUEST_INVALID'],
    ['backslash as authority end', `http://evil.example\\@127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['backslash in query', `${O}/api/x?a=\\`, 'REQUEST_INVALID'],
    // control characters
    ['raw LF in path', `${O}/api/x\nHost: evil`, 'REQUEST_INVALID'],
    ['raw CR', `${O}/api/x\r`, 'REQUEST_INVALID'],
    ['raw tab (URL strips it)', `${O}/ap\ti/x`, 'REQUEST_INVALID'],
    ['raw NUL', `${O}/api/x\u0000`, 'REQUEST_INVALID'],
    ['raw DEL', `${O}/api/x\u007f`, 'REQUEST_INVALID'],
    ['raw C1', `${O}/api/x\u0085`, 'REQUEST_INVALID'],
    ['leading space', ` ${O}/api/x`, 'REQUEST_INVALID'],
    ['encoded NUL', `${O}/api/x%00`, 'REQUEST_INVALID'],
    ['encoded LF', `${O}/api/x%0a`, 'REQUEST_INVALID'],
    ['encoded CR upper', `${O}/api/x%0D`, 'REQUEST_INVALID'],
    ['encoded DEL', `${O}/api/x%7F`, 'REQUEST_INVALID'],
    ['encoded LF in query', `${O}/api/x?q=%0aSet-Cookie:a`, 'REQUEST_INVALID'],
    // dot segments
    ['dot-dot escapes base path', `${O}/api/../admin`, 'REQUEST_INVALID'],
    ['dot-dot at end', `${O}/api/x/..`, 'REQUEST_INVALID'],
    ['single dot', `${O}/api/./x`, 'REQUEST_INVALID'],
    ['%2e%2e', `${O}/api/%2e%2e/admin`, 'REQUEST_INVALID'],
    ['%2E%2E upper', `${O}/api/%2E%2E/admin`, 'REQUEST_INVALID'],
    ['.%2e', `${O}/api/.%2e/admin`, 'REQUEST_INVALID'],
    ['%2e.', `${O}/api/%2e./admin`, 'REQUEST_INVALID'],
    ['%2e', `${O}/api/%2e/x`, 'REQUEST_INVALID'],
    ['..; (Tomcat)', `${O}/api/..;/admin`, 'REQUEST_INVALID'],
    ['..;jsessionid', `${O}/api/..;jsessionid=1/admin`, 'REQUEST_INVALID'],
    ['double-encoded dot', `${O}/api/%252e%252e/admin`, 'REQUEST_INVALID'],
    // encoded separators
    ['%2f', `${O}/api%2f..%2fadmin`, 'REQUEST_INVALID'],
    ['%2F upper', `${O}/api/a%2Fb`, 'REQUEST_INVALID'],
    ['%5c', `${O}/api/a%5cb`, 'REQUEST_INVALID'],
    ['double-encoded slash', `${O}/api/a%252fb`, 'REQUEST_INVALID'],
    ['malformed percent', `${O}/api/a%zz`, 'REQUEST_INVALID'],
    ['truncated percent', `${O}/api/a%2`, 'REQUEST_INVALID'],
    // schemes
    ['file scheme', 'file:///etc/passwd', 'REQUEST_INVALID'],
    ['javascript scheme', 'javascript:alert(1)', 'REQUEST_INVALID'],
    ['data scheme', 'data:text/plain,hi', 'REQUEST_INVALID'],
    ['ftp scheme', `ftp://127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['ws scheme', `ws://127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['relative URL', '/api/x', 'REQUEST_INVALID'],
    ['scheme-relative', `//127.0.0.1:${P}/api/x`, 'REQUEST_INVALID'],
    ['empty', '', 'REQUEST_INVALID'],
    ['percent in host', `http://127.0.0.%31:${P}/api/x`, 'REQUEST_INVALID'],
    // wrong origin / base path
    ['suffix host', `http://127.0.0.1.evil.example:${P}/api/x`, 'TOOL_NOT_REGISTERED'],
    ['host in path', `http://evil.example/127.0.0.1:${P}/api/x`, 'TOOL_NOT_REGISTERED'],
    ['https for an http tool', `https://127.0.0.1:${P}/api/x`, 'TOOL_NOT_REGISTERED'],
    ['other port', `http://127.0.0.1:${P === 65535 ? 1 : P + 1}/api/x`, 'TOOL_NOT_REGISTERED'],
    ['localhost alias', `http://localhost:${P}/api/x`, 'TOOL_NOT_REGISTERED'],
    ['other loopback', `http://127.0.0.2:${P}/api/x`, 'TOOL_NOT_REGISTERED'],
    ['trailing dot IPv4 (WHATWG parses it as 127.0.0.1)', `http://127.0.0.1.:${P}/api/x`, 'RESOLVED_OK_SAME_HOST'],
    ['decimal IP', `http://2130706433:${P}/api/x`, 'RESOLVED_OK_SAME_HOST'],
    ['sibling path', `${O}/apiary`, 'TOOL_NOT_REGISTERED'],
    ['outside base path', `${O}/admin`, 'TOOL_NOT_REGISTERED'],
    ['case of base path', `${O}/API/x`, 'TOOL_NOT_REGISTERED'],
    ['double slash before base', `${O}//api/x`, 'TOOL_NOT_REGISTERED'],
    ['URL object with dots is normalised before we see it but still checked', new URL(`${O}/api/x/%2e%2e/..%2f`), 'REQUEST_INVALID'],
    ['Request with %2f', new Request(`${O}/api/a%2fb`), 'REQUEST_INVALID'],
    ['Request to another origin', new Request('https://evil.example/api/x'), 'TOOL_NOT_REGISTERED'],
    // encodings that some servers decode or normalise into separators and dot-segments
    ['overlong UTF-8 dots %c0%ae', `${O}/api/%c0%ae%c0%ae/admin`, 'REQUEST_INVALID'],
    ['overlong UTF-8 slash %c0%af', `${O}/api/a%c0%afb`, 'REQUEST_INVALID'],
    ['fullwidth dots, encoded', `${O}/api/%EF%BC%8E%EF%BC%8E/admin`, 'REQUEST_INVALID'],
    ['fullwidth dots, raw', `${O}/api/\uFF0E\uFF0E/admin`, 'REQUEST_INVALID'],
    ['fullwidth solidus', `${O}/api/a%EF%BC%8Fb`, 'REQUEST_INVALID'],
    ['fullwidth reverse solidus', `${O}/api/a\uFF3Cb`, 'REQUEST_INVALID'],
    ['..%3b', `${O}/api/..%3b/admin`, 'REQUEST_INVALID'],
    ['encoded C1 control', `${O}/api/a%C2%85`, 'REQUEST_INVALID'],
    ['Latin-1 percent-encoding (not UTF-8)', `${O}/api/caf%E9`, 'REQUEST_INVALID'],
    ['%u IIS encoding', `${O}/api/%u002e%u002e/admin`, 'REQUEST_INVALID'],
    ['one-dot-leader lookalike', `${O}/api/\u2024\u2024/admin`, 'REQUEST_INVALID'],
    // an encoded unreserved character is an alias of the character: rules compare paths as written
    ['encoded letter (an alias of "admin")', `${O}/api/%61dmin`, 'REQUEST_INVALID'],
    ['encoded digit', `${O}/api/items/%34%32`, 'REQUEST_INVALID'],
    ['encoded tilde', `${O}/api/%7Euser`, 'REQUEST_INVALID'],
    ['encoded dot inside a segment', `${O}/api/%2egit/config`, 'REQUEST_INVALID'],
    ['encoded hyphen and underscore', `${O}/api/a%2Db%5fc`, 'REQUEST_INVALID'],
  ];

  it('the table is large, and every row is run', () => {
    expect(table().length).toBeGreaterThanOrEqual(70);
    expect(table().length).toBeLessThanOrEqual(ROWS);
  });

  it.each(
    // evaluated lazily so that the port is known
    Array.from({ length: ROWS }, (_, i) => i),
  )('case %i', async (i) => {
    const row = table()[i];
    if (row === undefined) return;
    const [label, input, expected] = row;
    const code = await codeOf(tf(input, { context: ctx }));
    if (expected === 'RESOLVED_OK_SAME_HOST') {
      // 2130706433 and "127.0.0.1." are 127.0.0.1 to WHATWG URL: the same origin, so the registered tool.
      expect(code, label).toBe('RESOLVED');
      return;
    }
    expect(code, label).toBe(expected);
    expect(up.received, label).toHaveLength(0);
    const last = log.events.at(-1)!;
    expect(last).toMatchObject({ type: 'tool.request', decision: 'deny', code: expected });
    expect(JSON.stringify(last)).not.toContain('SECRET-KEY');
  });
});

describe('hostile headers and methods', () => {
  const cases: [string, RequestInit, string][] = [
    ['CRLF in value', { headers: { 'x-note': 'a\r\nx-api-key: mine' } }, 'REQUEST_INVALID'],
    ['trailing LF (Headers would trim it)', { headers: { 'x-note': 'alice\n' } }, 'REQUEST_INVALID'],
    ['NUL in value', { headers: { 'x-note': 'a\u0000b' } }, 'REQUEST_INVALID'],
    ['vertical tab in value', { headers: { 'x-note': 'a\u000bb' } }, 'REQUEST_INVALID'],
    ['ESC in value', { headers: { 'x-note': 'a\u001b[31m' } }, 'REQUEST_INVALID'],
    ['DEL in value', { headers: { 'x-note': 'a\u007f' } }, 'REQUEST_INVALID'],
    ['CR/LF in array form', { headers: [['x-note', 'a\rb']] }, 'REQUEST_INVALID'],
    ['bad header name', { headers: { 'bad name': 'x' } }, 'REQUEST_INVALID'],
    ['non-latin1 value', { headers: { 'x-note': 'αβγ' } }, 'REQUEST_INVALID'],
    ['TRACE method', { method: 'TRACE' }, 'REQUEST_INVALID'],
    ['CONNECT method', { method: 'CONNECT' }, 'REQUEST_INVALID'],
    ['method with space', { method: 'GET /admin' }, 'REQUEST_INVALID'],
    ['method with CRLF', { method: 'GET\r\n' }, 'REQUEST_INVALID'],
    ['GET with a body', { method: 'GET', body: 'x' }, 'REQUEST_INVALID'],
    ['HEAD with a body', { method: 'head', body: 'x' }, 'REQUEST_INVALID'],
  ];
  for (const [label, init, code] of cases) {
    it(label, async () => {
      expect(await codeOf(tf(`${O}/api/x`, { ...init, context: ctx }))).toBe(code);
      expect(up.received).toHaveLength(0);
    });
  }

  it('user ids that cannot be a header value are refused, not trimmed', async () => {
    for (const userId of ['alice\n', 'al\rice', ' alice', 'ålice', 'a'.repeat(2000)]) {
      expect(await codeOf(tf(`${O}/api/x`, { context: userContext(userId) })), JSON.stringify(userId)).toBe('REQUEST_INVALID');
    }
    expect(up.received).toHaveLength(0);
  });

  it('caller X-Amz-*, Host, Proxy-* and the tool key header never pass', async () => {
    await tf(`${O}/api/x`, {
      context: ctx,
      headers: {
        'X-Amz-Date': '20000101T000000Z',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'Proxy-Connection': 'keep-alive',
        'x-api-key': 'caller',
        'X-End-User-Id': 'root',
      },
    });
    const h = up.received[0]!.headers;
    expect(h['x-amz-date']).toBeUndefined();
    expect(h['x-amz-content-sha256']).toBeUndefined();
    expect(h['proxy-connection']).toBeUndefined();
    expect(h['x-api-key']).toBe('SECRET-KEY-123');
    expect(h['x-end-user-id']).toBe('alice');
    expect(h.host).toBe(`127.0.0.1:${P}`);
  });

  it('underscore spellings, forwarding headers and Expect never pass', async () => {
    await tf(`${O}/api/x`, {
      context: ctx,
      headers: {
        X_End_User_ID: 'root',
        x_end_user_id: 'root',
        Authorization_: 'x',
        _authorization: 'x',
        X_Amz_Security_Token: 'evil',
        Proxy_Authorization: 'Basic eA==',
        Cookie_: 'c',
        'X-Forwarded-For': '10.0.0.1',
        'X-Forwarded-Host': 'admin.internal',
        Forwarded: 'for=10.0.0.1',
        'X-Real-IP': '10.0.0.1',
        Expect: '100-continue',
        'X-Keep': 'yes',
      },
    });
    const names = up.received[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
    for (const bad of ['x_end_user_id', 'x_amz_security_token', 'proxy_authorization', 'x-forwarded-for', 'x-forwarded-host', 'forwarded', 'x-real-ip', 'expect']) {
      expect(names, bad).not.toContain(bad);
    }
    expect(up.received[0]!.headers['x-end-user-id']).toBe('alice');
    expect(up.received[0]!.headers['x-keep']).toBe('yes');
  });

  it('more hostile hosts: IPv6 loopback, IDN look-alikes, hex/short IPv4 forms', async () => {
    expect(await codeOf(tf(`http://[::1]:${P}/api/x`, { context: ctx }))).toBe('TOOL_NOT_REGISTERED');
    expect(await codeOf(tf(`http://ｌocalhost:${P}/api/x`, { context: ctx }))).toBe('TOOL_NOT_REGISTERED');
    expect(await codeOf(tf(`http://127.0.0.1:${P}/api/x`.replace('127.0.0.1', '127.0.0.1%00'), { context: ctx }))).toBe('REQUEST_INVALID');
    expect(await codeOf(tf(`http://127.0.0.1:${P}/${'a'.repeat(20_000)}`, { context: ctx }))).toBe('REQUEST_INVALID');
    expect(up.received).toHaveLength(0);
    // equivalent spellings of the same address are the same origin to WHATWG URL, hence the same tool
    await tf(`http://0x7f.0.0.1:${P}/api/x`, { context: ctx });
    await tf(`HTTP://127.1:${P}/api/x#/../../admin`, { context: ctx });
    expect(up.received.map((r) => r.url)).toEqual(['/api/x', '/api/x']);
  });

  it('the path sent is the path checked (no re-normalisation downstream)', async () => {
    await tf(`${O}/api/a%20b/c;v=1/~x?q=a%20b&r=1`, { context: ctx });
    expect(up.received[0]!.url).toBe('/api/a%20b/c;v=1/~x?q=a%20b&r=1');
    await tf(`${O}/api/caf%C3%A9/\u1234/\uFF41`, { context: ctx }); // UTF-8, raw non-ASCII, a fullwidth letter
    expect(up.received[1]!.url).toBe('/api/caf%C3%A9/%E1%88%B4/%EF%BD%81');
  });
});

describe('property: URL checks (fast-check)', () => {
  const segmentChar = fc.constantFrom('a', 'b', 'Z', '0', '-', '_', '~', '.', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '%00', '%0a', '%41', ';', '%25', '%252e', ':', '@');
  const segment = fc.array(segmentChar, { minLength: 0, maxLength: 5 }).map((a) => a.join(''));
  const path = fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => `/api/${s.join('/')}`);

  /** Reference: is there a dot-segment or an encoded separator/control anywhere? */
  function refUnsafe(p: string): boolean {
    const segs = p.split('/').map((s) => s.split(';')[0]!.replace(/%2e/gi, '.'));
    if (segs.some((s) => s === '.' || s === '..')) return true;
    return /%2f|%5c|%[01][0-9a-f]|%7f|%25(2e|2f|5c|[01][0-9a-f]|7f)/i.test(p);
  }

  it('no generated path with dot-segments or encoded separators is ever allowed', () => {
    fc.assert(
      fc.property(path, (p) => {
        let allowed: URL | undefined;
        let refused: unknown;
        try {
          allowed = safeUrl(`https://api.example${p}`);
        } catch (e) {
          refused = e;
        }
        if (refused !== undefined) expect((refused as { code: string }).code).toBe('REQUEST_INVALID');
        if (refUnsafe(p)) expect(allowed, p).toBeUndefined();
        if (allowed !== undefined) {
          // what passes is sent unchanged, and has no unsafe part after parsing either
          expect(allowed.pathname).toBe(p);
          expect(refUnsafe(allowed.pathname)).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('safe paths are allowed (no false positives on ordinary paths)', () => {
    const safeSeg = fc.stringMatching(/^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,8}$/).filter((s) => s !== '.' && s !== '..');
    fc.assert(
      fc.property(fc.array(safeSeg, { minLength: 1, maxLength: 6 }), (segs) => {
        const p = `/api/${segs.join('/')}`;
        expect(safeUrl(`https://api.example${p}`).pathname).toBe(p);
      }),
      { numRuns: 1000 },
    );
  });

  it('any raw control character anywhere is refused', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x9f }).filter((c) => c < 0x20 || c >= 0x7f), fc.nat(30), (c, pos) => {
        const base = 'https://api.example/api/items?q=1';
        const at = Math.min(pos, base.length);
        const raw = base.slice(0, at) + String.fromCharCode(c) + base.slice(at);
        expect(() => checkRawUrl(raw)).toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('through toolFetch: generated hostile paths never reach the upstream', async () => {
    await fc.assert(
      fc.asyncProperty(path.filter(refUnsafe), async (p) => {
        const code = await codeOf(tf(`${O}${p}`, { context: ctx }));
        expect(code).toBe('REQUEST_INVALID');
      }),
      { numRuns: 200 },
    );
    expect(up.received).toHaveLength(0);
  });
});
