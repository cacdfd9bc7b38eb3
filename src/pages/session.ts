/**
 * @internal Sessions of the pages: a random session id kept server-side (the store holds only its
 * SHA-256), sent to the browser encrypted (AES-256-GCM) in an HttpOnly, SameSite=Lax cookie that is
 * `Secure` with the `__Host-` prefix on https; anti-CSRF tokens bound to the session (HMAC).
 *
 * @module
 */
import { nowMs } from '../lib/clock.js';
import { storeKey, type Store } from '../stores/store.js';
import { fromBase64Url, randomToken, sha256Hex, toBase64Url } from '../lib/encoding.js';
import type { SecretReader } from '../lib/secret.js';

/** The person signed in to the pages. */
export interface PageUser {
  userId: string;
  scopes: string[];
  groups: string[];
  /** The identity provider that signed them in (absent with the author's own session hook). */
  issuer?: string;
}

interface SessionRecord {
  v: 1;
  user: PageUser;
  createdAt: number;
  expiresAt: number;
  idleUntil: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Keys {
  secret: string;
  cookie: CryptoKey;
  mac: CryptoKey;
}

async function deriveKeys(secret: string): Promise<Keys> {
  const base = await crypto.subtle.importKey('raw', encoder.encode(secret), 'HKDF', false, ['deriveKey']);
  const salt = encoder.encode('agent-iam pages v1');
  const cookie = await crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt, info: encoder.encode('cookie') }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const mac = await crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt, info: encoder.encode('csrf') }, base, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign', 'verify']);
  return { secret, cookie, mac };
}

/** Constant-time comparison of two strings. */
export function sameString(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= (x[i] as number) ^ (y[i] as number);
  return diff === 0;
}

/** One cookie's value from a `Cookie` header (the first with that name). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface SessionsOptions {
  secret: SecretReader;
  store: Store;
  /** https origin: `Secure` and the `__Host-` prefix; loopback http (development) goes without both. */
  secure: boolean;
  ttlMs: number;
  idleMs: number;
}

export interface Sessions {
  readonly cookieName: string;
  readonly loginCookieName: string;
  readonly csrfCookieName: string;
  create(user: PageUser): Promise<{ id: string; cookie: string }>;
  read(cookieHeader: string | undefined): Promise<{ id: string; user: PageUser } | undefined>;
  destroy(id: string): Promise<void>;
  clearCookie(name: string): string;
  cookie(name: string, value: string, maxAgeSeconds: number): string;
  csrfToken(binding: string): Promise<string>;
  checkCsrf(binding: string, token: string | null): Promise<boolean>;
  /** Encrypt / decrypt a short value for a cookie (AAD: the cookie name). */
  seal(name: string, value: string): Promise<string>;
  open(name: string, sealed: string | undefined): Promise<string | undefined>;
}

export function createSessions(o: SessionsOptions): Sessions {
  let keys: Promise<Keys> | undefined;
  const getKeys = async (): Promise<Keys> => {
    const secret = await o.secret.get();
    const current = keys === undefined ? undefined : await keys.catch(() => undefined);
    if (current !== undefined && current.secret === secret) return current;
    keys = deriveKeys(secret);
    return keys;
  };
  const prefix = o.secure ? '__Host-' : '';
  const cookieName = `${prefix}agent-iam-session`;
  const loginCookieName = `${prefix}agent-iam-sign-in`;
  const csrfCookieName = `${prefix}agent-iam-csrf`;
  const recordKey = async (id: string): Promise<string> => storeKey('page-session', await sha256Hex(id));

  function cookie(name: string, value: string, maxAgeSeconds: number): string {
    return `${name}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}${o.secure ? '; Secure' : ''}`;
  }

  async function seal(name: string, value: string): Promise<string> {
    const k = await getKeys();
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: encoder.encode(name) }, k.cookie, encoder.encode(value)));
    const out = new Uint8Array(12 + ct.length);
    out.set(iv);
    out.set(ct, 12);
    return `v1.${toBase64Url(out)}`;
  }

  async function open(name: string, sealed: string | undefined): Promise<string | undefined> {
    if (sealed === undefined || !sealed.startsWith('v1.') || sealed.length > 512) return undefined;
    try {
      const bytes = fromBase64Url(sealed.slice(3));
      if (bytes.length < 12 + 16) return undefined;
      const k = await getKeys();
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.slice(0, 12), additionalData: encoder.encode(name) }, k.cookie, bytes.slice(12));
      return decoder.decode(pt);
    } catch {
      return undefined;
    }
  }

  async function mac(binding: string): Promise<string> {
    const k = await getKeys();
    return toBase64Url(new Uint8Array(await crypto.subtle.sign('HMAC', k.mac, encoder.encode(`csrf:v1:${binding}`))));
  }

  return {
    cookieName,
    loginCookieName,
    csrfCookieName,
    cookie,
    clearCookie: (name) => cookie(name, '', 0),
    seal,
    open,
    async create(user) {
      const id = randomToken(32);
      const now = nowMs();
      const record: SessionRecord = { v: 1, user, createdAt: now, expiresAt: now + o.ttlMs, idleUntil: now + o.idleMs };
      await o.store.set(await recordKey(id), record, o.ttlMs);
      return { id, cookie: cookie(cookieName, await seal(cookieName, id), o.ttlMs / 1000) };
    },
    async read(cookieHeader) {
      const id = await open(cookieName, readCookie(cookieHeader, cookieName));
      if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
      const key = await recordKey(id);
      const record = await o.store.get<SessionRecord>(key);
      const now = nowMs();
      if (record === undefined || record === null || record.v !== 1 || typeof record.user?.userId !== 'string') return undefined;
      if (record.expiresAt <= now || record.idleUntil <= now) {
        await o.store.delete(key);
        return undefined;
      }
      // Idle time is extended at most once a minute (one store write per minute per session).
      if (record.idleUntil - now < o.idleMs - 60_000) {
        await o.store.set(key, { ...record, idleUntil: Math.min(record.expiresAt, now + o.idleMs) }, record.expiresAt - now);
      }
      return { id, user: record.user };
    },
    async destroy(id) {
      await o.store.delete(await recordKey(id));
    },
    csrfToken: mac,
    async checkCsrf(binding, token) {
      if (token === null || token.length > 128) return false;
      return sameString(await mac(binding), token);
    },
  };
}
