/**
 * URL safety checks for outbound requests: the first gate of toolFetch. WHATWG `URL` normalises
 * some hostile inputs away (dot-segments, `%2e`, backslashes, tabs and newlines), so the raw input
 * string is checked before parsing, and the parsed URL again after.
 *
 * @module
 */
import { AgentIamError, requestInvalid } from '../errors.js';

/** C0 controls, DEL and C1 controls, raw. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Percent-encoded C0 controls and DEL. */
const ENCODED_CONTROL = /%(?:[01][0-9a-f]|7f)/i;
/** Encoded `/` and `\`, and double-encoded `.`, `/`, `\`, controls, DEL (servers that decode twice). */
const ENCODED_SEPARATOR = /%(?:2f|5c)|%25(?:2e|2f|5c|[01][0-9a-f]|7f)/i;
/** A `%` not followed by two hex digits. */
const BAD_PERCENT = /%(?![0-9a-f]{2})/i;
const ENCODED_DOT = /%2e/gi;
/**
 * A percent-encoded unreserved character (RFC 3986 §2.3: ALPHA, DIGIT, `-`, `.`, `_`, `~`). It names
 * the same resource as the character itself and no encoder needs to produce it, but capabilities and
 * policies compare paths as written: `/files/s%65cret` would step around a rule for `/files/secret`
 * while the tool (and the S3 signer's canonical path) reads `secret`.
 */
const ENCODED_UNRESERVED = /%(?:2d|2e|3[0-9]|4[1-9a-f]|5[0-9a]|5f|6[1-9a-f]|7[0-9a]|7e)/i;
const ENCODED_SEMICOLON = /%3b/gi;
const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

function invalid(reason: string): AgentIamError {
  return requestInvalid(`Outbound URL rejected: ${reason}`);
}

/**
 * True when a path segment is `.` or `..`, also written with `%2e`, or followed by a `;` path
 * parameter (`..;` is a dot-segment for Tomcat and others).
 */
function isDotSegment(segment: string): boolean {
  if (segment.length === 0) return false;
  let s = segment;
  if (s.indexOf('%') !== -1) s = s.replace(ENCODED_DOT, '.').replace(ENCODED_SEMICOLON, ';');
  const semi = s.indexOf(';');
  if (semi !== -1) s = s.slice(0, semi);
  return s === '.' || s === '..';
}

/**
 * A percent-encoded path must decode as UTF-8 (which also refuses overlong forms such as `%c0%ae`),
 * hold no C1 control, and must not turn into a dot-segment or a separator under Unicode NFKC
 * normalisation (`%EF%BC%8E` is a fullwidth `.`, which some servers normalise).
 */
function checkDecodedPath(path: string): void {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw invalid('percent-encoding in path is not UTF-8');
  }
  if (RAW_CONTROL.test(decoded)) throw invalid('encoded control character in path');
  // eslint-disable-next-line no-control-regex
  if (!/[^\u0000-\u007f]/.test(decoded)) return;
  const normalized = decoded.normalize('NFKC');
  if (normalized === decoded) return;
  if (normalized.indexOf('\\') !== -1 || normalized.split('/').length !== decoded.split('/').length) {
    throw invalid('path holds a character that normalises to a separator');
  }
  for (const segment of normalized.split('/')) if (isDotSegment(segment)) throw invalid('dot-segment in path (after normalisation)');
}

/** Checks that apply to a path, raw or parsed. */
function checkPath(path: string): void {
  if (path.indexOf('%') !== -1) {
    if (BAD_PERCENT.test(path)) throw invalid('malformed percent-encoding in path');
    if (ENCODED_SEPARATOR.test(path)) throw invalid('encoded "/" or "\\" in path');
    if (ENCODED_CONTROL.test(path)) throw invalid('encoded control character in path');
    if (ENCODED_UNRESERVED.test(path)) throw invalid('percent-encoded unreserved character in path (write the character itself)');
    checkDecodedPath(path);
  }
  if (path.indexOf('.') === -1 && path.indexOf('%') === -1) return;
  let start = 0;
  for (;;) {
    const end = path.indexOf('/', start);
    const segment = end === -1 ? path.slice(start) : path.slice(start, end);
    if (isDotSegment(segment)) throw invalid('dot-segment in path');
    if (end === -1) return;
    start = end + 1;
  }
}

/**
 * Check a URL string exactly as the caller wrote it, before `new URL()` normalises it: control
 * characters (raw, anywhere), backslashes, userinfo, dot-segments and encoded separators in the path.
 */
export function checkRawUrl(raw: string, allowRelative = false): void {
  if (raw.length > 16_384) throw invalid('URL too long');
  if (RAW_CONTROL.test(raw)) throw invalid('control character');
  if (raw.indexOf('\\') !== -1) throw invalid('backslash');
  if (raw.length > 0 && (raw.charCodeAt(0) === 0x20 || raw.charCodeAt(raw.length - 1) === 0x20)) {
    throw invalid('leading or trailing space');
  }
  const scheme = SCHEME.exec(raw);
  if (scheme === null && !allowRelative) throw invalid('not an absolute URL');
  let rest = scheme === null ? raw : raw.slice(scheme[0].length);
  if (rest.startsWith('//')) {
    const authorityEnd = rest.slice(2).search(/[/?#]/);
    const authority = authorityEnd === -1 ? rest.slice(2) : rest.slice(2, authorityEnd + 2);
    if (authority.indexOf('@') !== -1) throw invalid('userinfo');
    if (authority.indexOf('%') !== -1) throw invalid('percent-encoding in host');
    rest = authorityEnd === -1 ? '' : rest.slice(authorityEnd + 2);
  }
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  checkPath(path);
  if (q !== -1) checkQuery(rest.slice(q + 1));
}

function checkQuery(query: string): void {
  if (query.indexOf('%') === -1) return;
  if (ENCODED_CONTROL.test(query)) throw invalid('encoded control character in query');
}

/**
 * Parse `raw` (already checked with {@link checkRawUrl}) and check the parsed URL: http(s) only,
 * no userinfo, and the same path rules again. The fragment is dropped (it is never sent).
 */
export function parseSafeUrl(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = base === undefined ? new URL(raw) : new URL(raw, base);
  } catch {
    throw invalid('not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('scheme must be http or https');
  if (url.username !== '' || url.password !== '') throw invalid('userinfo');
  if (url.hostname === '') throw invalid('no host');
  checkPath(url.pathname);
  checkQuery(url.search);
  if (url.hash !== '') url.hash = '';
  return url;
}

/**
 * An absolute http(s) URL every check above passes by construction: lower-case scheme, a host of
 * letters, digits, `.` and `-` (so no userinfo, no `%`), an optional port, path segments with
 * neither `.` nor `%` (so no dot-segment and nothing encoded), and a query without `%`; no
 * fragment, space, control or backslash. `new URL` leaves such a path as is, so the checks on the
 * parsed URL would find nothing either. Anything else takes the full checks.
 */
const PLAIN_URL =
  /^https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:\/[A-Za-z0-9_~!$&'()*+,;=:@-]*)*(?:\?[A-Za-z0-9_~!$&'()*+,;=:@/?.-]*)?$/;

/** Both checks: the raw string, then the parsed URL. */
export function safeUrl(raw: string, base?: URL): URL {
  if (base === undefined && raw.length <= 2048 && PLAIN_URL.test(raw)) {
    try {
      return new URL(raw);
    } catch {
      throw invalid('not a valid URL');
    }
  }
  checkRawUrl(raw, base !== undefined);
  return parseSafeUrl(raw, base);
}
