/**
 * Capabilities: the method + path patterns that tool declarations and policy rules share, and the
 * compiled matcher that checks a request against them.
 *
 * Pattern syntax (`path`):
 * - starts with `/`; split on `/` into segments, compared with the request path **as sent**
 *   (byte for byte, case-sensitive, no percent-decoding);
 * - a literal segment matches exactly that segment; empty segments count, so `/v1//charges` does
 *   not match `/v1/charges`, and `/v1/charges/` (trailing slash) does **not** match `/v1/charges`;
 * - `:name` matches exactly one non-empty segment;
 * - a trailing `/*` matches the rest: one or more further segments, which may be empty
 *   (`/v1/files/*` matches `/v1/files/`, `/v1/files/a` and `/v1/files/a/b`, but not `/v1/files`).
 *
 * `method` is case-insensitive; `*` means any method.
 *
 * Percent-encoded bytes are compared as written: `%7E` and `%7e` are different segments.
 *
 * The matcher fails closed on unsafe paths: a path that does not start with `/`, or that holds a
 * dot-segment (`.`, `..`, also as `%2e`), an encoded separator (`%2f`, `%5c`), a backslash, a
 * control character (also as `%00`–`%1f`, `%7f`), a space, `?` or `#` never matches anything —
 * not even `/*` or an empty capability list. toolFetch rejects such URLs earlier
 * (`REQUEST_INVALID`); this is defence in depth.
 *
 * @module
 */
import { configError } from '../errors.js';

/**
 * One allowed operation: an HTTP method and a path pattern.
 *
 * @example
 * ```ts
 * const read: Capability = { method: 'GET', path: '/v1/charges/:id' };
 * const anyUnderFiles: Capability = { method: '*', path: '/v1/files/*' };
 * ```
 */
export interface Capability {
  /** HTTP method, case-insensitive; `*` for any method. */
  method: string;
  /** Path pattern: literal segments, `:name` for one segment, trailing `/*` for the rest. */
  path: string;
}

/**
 * A compiled set of capabilities. Build it once with {@link compileCapabilities}; `match` costs about
 * the depth of the path, whatever the number of capabilities.
 */
export interface CapabilityMatcher {
  /** True when no capability was declared: every (safe) method and path is allowed. */
  readonly all: boolean;
  /**
   * The capability that allows `method` + `path`, or `undefined`. When several match, the most
   * specific wins (a literal segment over `:name` over `*`; an exact method over `*`).
   */
  match(method: string, path: string): Capability | undefined;
}

interface TrieNode {
  /** Literal children by the hash of their text (see {@link hashSegment}); collisions chain. */
  literals: Map<number, LiteralChild> | undefined;
  param: TrieNode | undefined;
  /** Capability of a trailing `*` at this level. */
  wildcard: Capability | undefined;
  /** Capability whose pattern ends exactly at this node. */
  terminal: Capability | undefined;
}

interface LiteralChild {
  text: string;
  node: TrieNode;
  next: LiteralChild | undefined;
}

const newNode = (): TrieNode => ({ literals: undefined, param: undefined, wildcard: undefined, terminal: undefined });

/** RFC 9110 token characters. */
const METHOD_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
const PARAM_RE = /^:[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** RFC 3986 pchar without `%`, which is checked separately. */
const LITERAL_RE = /^(?:[A-Za-z0-9\-._~!$&'()+,;=:@]|%[0-9A-Fa-f]{2})*$/;
/** A dot-segment, also percent-encoded. */
const DOT_SEGMENT_RE = /^(?:\.|%2e){1,2}$/i;
/** Encoded `/` or `\`. */
const ENCODED_SEPARATOR_RE = /%2f|%5c/i;

/** FNV-1a over UTF-16 code units, the same for pattern literals and request segments. */
function hashSegment(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h;
}
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

// Scratch space for one match: segment bounds and hashes. `match` is synchronous and calls no user
// code, so one module-level buffer serves every matcher without allocating per call.
let segStart = new Int32Array(64);
let segEnd = new Int32Array(64);
let segHash = new Int32Array(64);

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/**
 * Split `path` into segments (into the scratch buffers) in one pass, and refuse unsafe paths.
 * Returns the number of segments, or -1 when the path must never match.
 */
function scan(path: string): number {
  const len = path.length;
  if (len === 0 || path.charCodeAt(0) !== 47 /* / */) return -1;
  let count = 0;
  let start = 1;
  let h = FNV_OFFSET;
  let dots = 0; // '.' or '%2e' units in the segment
  let other = false; // anything else in the segment
  for (let i = 1; i < len; i++) {
    const c = path.charCodeAt(i);
    // Fast path: '0'-'~' except '?' and '\' (letters, digits, most punctuation).
    if (c >= 0x30 && c <= 0x7e && c !== 63 && c !== 92) {
      other = true;
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c === 47 /* / */) {
      if (!other && (dots === 1 || dots === 2)) return -1; // dot-segment
      if (count === segStart.length) growScratch();
      segStart[count] = start;
      segEnd[count] = i;
      segHash[count] = h;
      count++;
      start = i + 1;
      h = FNV_OFFSET;
      dots = 0;
      other = false;
      continue;
    }
    if (c === 37 /* % */ && i + 2 < len) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        const b = hi * 16 + lo;
        // encoded control characters, "/" and "\"
        if (b < 0x20 || b === 0x7f || b === 0x2f || b === 0x5c) return -1;
        if (b === 0x2e) dots++;
        else other = true;
        h = Math.imul(h ^ c, FNV_PRIME);
        h = Math.imul(h ^ path.charCodeAt(i + 1), FNV_PRIME);
        h = Math.imul(h ^ path.charCodeAt(i + 2), FNV_PRIME);
        i += 2;
        continue;
      }
    }
    if (c === 46 /* . */) dots++;
    else if (c <= 0x20 || (c >= 0x7f && c <= 0x9f) || c === 92 /* \ */ || c === 63 /* ? */ || c === 35 /* # */) return -1;
    else other = true;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  // the last segment
  if (!other && (dots === 1 || dots === 2)) return -1;
  if (count === segStart.length) growScratch();
  segStart[count] = start;
  segEnd[count] = len;
  segHash[count] = h;
  return count + 1;
}

function growScratch(): void {
  const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
    const b = new Int32Array(a.length * 2);
    b.set(a);
    return b;
  };
  segStart = grow(segStart);
  segEnd = grow(segEnd);
  segHash = grow(segHash);
}

/** True when `path` is a request path the matcher is willing to match at all. */
export function isMatchablePath(path: string): boolean {
  return typeof path === 'string' && scan(path) >= 0;
}

const ANY: Capability = Object.freeze({ method: '*', path: '/*' });

function walk(node: TrieNode, path: string, seg: number, count: number): Capability | undefined {
  if (seg === count) return node.terminal;
  const start = segStart[seg] as number;
  const end = segEnd[seg] as number;
  if (node.literals !== undefined) {
    for (let child = node.literals.get(segHash[seg] as number); child !== undefined; child = child.next) {
      if (child.text.length === end - start && path.startsWith(child.text, start)) {
        const found = walk(child.node, path, seg + 1, count);
        if (found !== undefined) return found;
        break;
      }
    }
  }
  if (node.param !== undefined && end > start) {
    const found = walk(node.param, path, seg + 1, count);
    if (found !== undefined) return found;
  }
  return node.wildcard;
}

function validateMethod(method: unknown, field: string): string {
  if (typeof method !== 'string') throw configError(field, 'must be a string');
  if (method === '*') return '*';
  if (!METHOD_RE.test(method)) throw configError(field, 'must be an HTTP method token or "*"');
  return method.toUpperCase();
}

function validatePath(path: unknown, field: string): string[] {
  if (typeof path !== 'string') throw configError(field, 'must be a string');
  if (path.length === 0 || path.length > 2048) throw configError(field, 'must be 1 to 2048 characters');
  if (path[0] !== '/') throw configError(field, 'must start with "/"');
  const segments = path.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    if (seg === '*') {
      if (i !== segments.length - 1) throw configError(field, '"*" is only allowed as the last segment');
      continue;
    }
    if (seg.startsWith(':')) {
      if (!PARAM_RE.test(seg)) throw configError(field, 'a ":name" segment needs a name of letters, digits and "_"');
      continue;
    }
    if (!LITERAL_RE.test(seg)) {
      throw configError(field, 'segments may hold only URL path characters ("*" only as a whole last segment)');
    }
    if (DOT_SEGMENT_RE.test(seg)) throw configError(field, 'must not contain dot-segments');
    if (ENCODED_SEPARATOR_RE.test(seg)) throw configError(field, 'must not contain an encoded "/" or "\\"');
    if (/%[01][0-9a-f]|%7f/i.test(seg)) throw configError(field, 'must not contain encoded control characters');
  }
  return segments;
}

/**
 * Compile capabilities once into a matcher (a segment trie per method). An `undefined` or empty
 * list gives a matcher with `all: true` that allows every safe method and path. An invalid method
 * or pattern throws `CONFIG_INVALID` naming `field` (e.g. `tools.0.capabilities.1.path`).
 *
 * @param capabilities The declared capabilities.
 * @param field The option path to name in errors (default `capabilities`).
 *
 * @example
 * ```ts
 * const m = compileCapabilities([
 *   { method: 'GET', path: '/v1/charges' },
 *   { method: 'GET', path: '/v1/charges/:id' },
 *   { method: '*', path: '/v1/files/*' },
 * ]);
 * m.match('get', '/v1/charges/ch_1');  // { method: 'GET', path: '/v1/charges/:id' }
 * m.match('POST', '/v1/charges');      // undefined
 * m.match('GET', '/v1/charges/');      // undefined (trailing slash is another path)
 * ```
 */
export function compileCapabilities(capabilities: readonly Capability[] | undefined, field = 'capabilities'): CapabilityMatcher {
  if (capabilities === undefined || capabilities === null) return ALL_MATCHER;
  if (!Array.isArray(capabilities)) throw configError(field, 'must be an array');
  if (capabilities.length === 0) return ALL_MATCHER;

  const byMethod = new Map<string, TrieNode>();
  let anyMethod: TrieNode | undefined;

  for (let i = 0; i < capabilities.length; i++) {
    const cap = capabilities[i] as Capability | undefined;
    if (typeof cap !== 'object' || cap === null) throw configError(`${field}.${i}`, 'must be an object with method and path');
    const method = validateMethod(cap.method, `${field}.${i}.method`);
    const segments = validatePath(cap.path, `${field}.${i}.path`);
    const frozen: Capability = Object.freeze({ method, path: cap.path });

    let node: TrieNode;
    if (method === '*') node = anyMethod ??= newNode();
    else {
      node = byMethod.get(method) ?? newNode();
      byMethod.set(method, node);
    }
    const last = segments.length - 1;
    if (segments[last] === '*') segments.pop(); // `*` is only ever last (validated above)
    for (let s = 0; s < segments.length; s++) {
      const seg = segments[s] as string;
      if (seg.startsWith(':')) {
        node = node.param ??= newNode();
      } else {
        node.literals ??= new Map();
        const h = hashSegment(seg);
        let child = node.literals.get(h);
        while (child !== undefined && child.text !== seg) child = child.next;
        if (child === undefined) {
          child = { text: seg, node: newNode(), next: node.literals.get(h) };
          node.literals.set(h, child);
        }
        node = child.node;
      }
    }
    // The first declaration of an identical pattern wins.
    if (segments.length === last) node.wildcard ??= frozen;
    else node.terminal ??= frozen;
  }

  const root = anyMethod;
  return Object.freeze({
    all: false,
    match(method: string, path: string): Capability | undefined {
      if (typeof method !== 'string' || typeof path !== 'string') return undefined;
      const count = scan(path);
      if (count < 0) return undefined;
      const trie = byMethod.get(method) ?? byMethod.get(method.toUpperCase());
      if (trie !== undefined) {
        const found = walk(trie, path, 0, count);
        if (found !== undefined) return found;
      }
      return root === undefined ? undefined : walk(root, path, 0, count);
    },
  });
}

const ALL_MATCHER: CapabilityMatcher = Object.freeze({
  all: true,
  match(method: string, path: string): Capability | undefined {
    return typeof method === 'string' && method.length > 0 && isMatchablePath(path) ? ANY : undefined;
  },
});
