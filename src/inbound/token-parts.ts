// The parts of a request and of a compact JWS the verifier reads: the Authorization header, the
// request id and host, base64url JSON segments, signatures, audiences and actor chains. Pure
// functions, no state; the verifier (verifier.ts) decides with them.
import { newRequestId, type Actor } from '../context.js';
import { fromBase64Url, hasControlChars } from '../lib/encoding.js';
import { InboundErrors } from './challenge.js';
import type { VerifyRequest } from './verifier-types.js';

export const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** 43 base64url characters: 258 bits of a signature. */
export const CACHE_KEY_LENGTH = 43;
export const EMPTY_ACTORS: readonly Actor[] = Object.freeze([]);
export const decoder = new TextDecoder('utf-8', { fatal: true });
export const encoder = new TextEncoder();

/**
 * The verified-token cache's key: the token's last {@link CACHE_KEY_LENGTH} characters (the end of
 * its signature). Hashing a whole token costs ~1 µs per request (the header string is new on every
 * request, so its hash is never cached); hashing this tail costs a few ns. A hit is then only the
 * entry whose whole token is the exact same string, so two tokens with one tail cannot be confused:
 * the later one just replaces the earlier one's entry. Only verified tokens are stored, and a
 * signature's tail cannot be chosen without the issuer's key, so this does not let anyone evict
 * another user's entry either.
 */
export function cacheKey(token: string): string {
  return token.length > CACHE_KEY_LENGTH ? token.slice(token.length - CACHE_KEY_LENGTH) : token;
}

/** `Bearer` (any case) alone or followed by a space, without allocating. */
export function isBearer(auth: string): boolean {
  if (auth.length < 6 || (auth.length > 6 && auth.charCodeAt(6) !== 0x20)) return false;
  // b e a r e r, with the ASCII case bit forced on
  return (
    (auth.charCodeAt(0) | 0x20) === 0x62 &&
    (auth.charCodeAt(1) | 0x20) === 0x65 &&
    (auth.charCodeAt(2) | 0x20) === 0x61 &&
    (auth.charCodeAt(3) | 0x20) === 0x72 &&
    (auth.charCodeAt(4) | 0x20) === 0x65 &&
    (auth.charCodeAt(5) | 0x20) === 0x72
  );
}

export async function verifySignature(params: AlgorithmIdentifier, key: CryptoKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  try {
    return await crypto.subtle.verify(params, key, signature as BufferSource, data as BufferSource);
  } catch {
    return false;
  }
}

/** Base64url JSON object, or undefined. */
export function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(decoder.decode(fromBase64Url(segment)));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    return value as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export function normalizeTyp(typ: string): string {
  const t = typ.toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}

export function audienceMatches(aud: unknown, accepted: ReadonlySet<string>): boolean {
  if (typeof aud === 'string') return accepted.has(aud);
  if (!Array.isArray(aud)) return false;
  for (const a of aud) if (typeof a === 'string' && accepted.has(a)) return true;
  return false;
}

/** RFC 8693 §4.1 nested `act` claims, outermost (current actor) first; undefined when invalid or too deep. */
export function parseActors(act: unknown, maxDepth: number): readonly Actor[] | undefined {
  if (act === undefined) return EMPTY_ACTORS;
  const chain: Actor[] = [];
  let current: unknown = act;
  while (current !== undefined) {
    if (chain.length >= maxDepth) return undefined;
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    const { act: next, ...rest } = current as Record<string, unknown>;
    const sub = rest.sub;
    if (typeof sub !== 'string' || sub === '' || sub.length > 1024 || hasControlChars(sub)) return undefined;
    const iss = rest.iss;
    if (iss !== undefined && typeof iss !== 'string') return undefined;
    chain.push(Object.freeze({ subject: sub, ...(iss !== undefined ? { issuer: iss } : {}), claims: Object.freeze(rest) }));
    current = next;
  }
  return Object.freeze(chain);
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

export function isHeaders(h: unknown): h is Headers {
  return typeof (h as Headers).get === 'function';
}

/** The single `Authorization` value, or undefined. Throws when the request carries several. */
export function readAuthorization(request: Request | VerifyRequest, errors: InboundErrors): string | undefined {
  const headers = request.headers;
  let value: string | string[] | undefined;
  if (isHeaders(headers)) {
    value = headers.get('authorization') ?? undefined;
  } else {
    // Every spelling counts: { authorization, Authorization } is two headers, not one.
    for (const name in headers) {
      if (name.length === 13 && name.toLowerCase() === 'authorization') {
        const v = headers[name];
        if (v === undefined) continue;
        if (value !== undefined) throw errors.invalidRequest('The request carries more than one Authorization header');
        value = v;
      }
    }
  }
  if (Array.isArray(value)) {
    if (value.length > 1) throw errors.invalidRequest('The request carries more than one Authorization header');
    value = value[0];
  }
  const raw = (request as VerifyRequest).rawHeaders;
  if (raw !== undefined) {
    let count = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') count++;
    }
    if (count > 1) throw errors.invalidRequest('The request carries more than one Authorization header');
  }
  return value;
}

export function headerValue(request: Request | VerifyRequest, name: string): string | undefined {
  const headers = request.headers;
  if (isHeaders(headers)) return headers.get(name) ?? undefined;
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function requestIdOf(request: Request | VerifyRequest): string {
  const id = headerValue(request, 'x-request-id');
  return id !== undefined && REQUEST_ID.test(id) ? id : newRequestId();
}

export function requestHost(request: Request | VerifyRequest): string | undefined {
  let host = (request as VerifyRequest).host ?? headerValue(request, 'host');
  if (host === undefined && request.url) {
    try {
      host = new URL(request.url).host;
    } catch {
      host = undefined;
    }
  }
  return host?.toLowerCase().replace(/\.(?=:\d+$|$)/, '');
}

export function stripPort(host: string): string {
  return host.replace(/:\d+$/, '');
}

/** Method and path (never the query) of a request, for audit events. */
export function requestLine(request: Request | VerifyRequest): { method?: string; path?: string } {
  const out: { method?: string; path?: string } = {};
  if (request.method) out.method = request.method;
  if (request.url) {
    try {
      out.path = new URL(request.url, 'http://localhost').pathname;
    } catch {
      // no path
    }
  }
  return out;
}
