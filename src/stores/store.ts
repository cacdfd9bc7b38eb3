/**
 * The small async key-value interface every agent-iam store goes through, over any Keyv instance.
 *
 * @module
 */
import Keyv from 'keyv';
import { z } from 'zod';
import { AgentIamError, isAgentIamError } from '../errors.js';
import { toBase64Url } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { sha256Sync } from '../lib/sha256.js';

/** A minimal async key-value store. Values are JSON-serialisable. */
export interface KeyValueStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
  /**
   * `ttlMs` undefined keeps the value until deleted; a TTL of zero or less stores a value that has
   * already expired (Keyv itself would keep it forever).
   */
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<boolean>;
}

/** Options for {@link createKeyValueStore}. */
export interface KeyValueStoreOptions {
  /** Bound on every store call, in ms (default 5000). A call past it fails with `STORE_UNAVAILABLE`. */
  timeoutMs?: number;
}

/** The key prefix and version of every key agent-iam writes. */
export const KEY_PREFIX = 'agent-iam:v1';

/** Encoded components longer than this are replaced by a hash, so keys fit common key columns (255). */
const MAX_COMPONENT = 64;
const ascii = new TextEncoder();

function encodeComponent(part: string): string {
  let enc: string;
  try {
    enc = encodeURIComponent(part);
  } catch {
    // Lone surrogates make encodeURIComponent throw: escape them as %uXXXX, a form it never produces.
    enc = String(part).replace(/\p{Cs}|[^\p{Cs}]+/gu, (m) =>
      /^\p{Cs}$/u.test(m) ? `%u${m.charCodeAt(0).toString(16).toUpperCase()}` : encodeURIComponent(m),
    );
  }
  if (enc.length <= MAX_COMPONENT) return enc;
  // '%h' never appears in encodeURIComponent output (it only emits %XX with upper-case hex).
  return `%h${toBase64Url(sha256Sync(ascii.encode(enc)))}`;
}

/**
 * Build a store key from components. Each component is percent-encoded, so `('a:b', 'c')` and
 * `('a', 'b:c')` can never produce the same key. A component longer than 64 encoded characters is
 * replaced by `%h` and its SHA-256 (base64url), so keys stay short enough for SQL key columns.
 *
 * @example
 * ```ts
 * storeKey('account', 'github', 'user:1'); // 'agent-iam:v1:account:github:user%3A1'
 * ```
 */
export function storeKey(...parts: string[]): string {
  let key = KEY_PREFIX;
  for (const part of parts) key += ':' + encodeComponent(part);
  return key;
}

function unavailable(reason: 'timeout' | 'error', cause?: unknown): AgentIamError {
  const message = reason === 'timeout' ? 'The store did not answer in time' : 'The store is unavailable';
  return new AgentIamError('STORE_UNAVAILABLE', message, cause === undefined ? { reason } : { reason, cause });
}

interface Backend {
  get(key: string): unknown;
  set(key: string, value: unknown, ttl?: number): unknown;
  delete(key: string): unknown;
}

function isBackend(value: unknown): value is Backend {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Backend).get === 'function' &&
    typeof (value as Backend).set === 'function' &&
    typeof (value as Backend).delete === 'function'
  );
}

/** Per backend: one 'error' listener and a count of the errors it emitted (shared by all wrappers). */
interface ErrorWatch {
  count: number;
}
const watches = new WeakMap<object, ErrorWatch>();

type Emitter = { on?: (event: string, fn: (error: unknown) => void) => unknown };
type Throwing = { throwOnErrors?: unknown; store?: unknown };

/**
 * Keyv 5 swallows adapter failures unless told otherwise: `get` returns `undefined`, `set`/`delete`
 * return `false`, and `@keyv/redis` does the same one level down. Turn throwing on at both levels,
 * and count 'error' events so that an adapter which still swallows is caught too.
 */
function prepare(backend: Backend): ErrorWatch {
  let watch = watches.get(backend);
  if (watch !== undefined) return watch;
  const w: ErrorWatch = { count: 0 };
  watch = w;
  watches.set(backend, watch);
  const on = (backend as Emitter).on;
  // Without a listener an EventEmitter 'error' event throws and can take the process down.
  if (typeof on === 'function') on.call(backend, 'error', () => void (w.count += 1));
  const t = backend as Throwing;
  if (typeof t.throwOnErrors === 'boolean') t.throwOnErrors = true;
  const adapter = backend instanceof Keyv || typeof t.throwOnErrors === 'boolean' ? (t.store as Throwing | undefined) : undefined;
  if (adapter !== undefined && adapter !== null && typeof adapter === 'object' && typeof adapter.throwOnErrors === 'boolean') {
    adapter.throwOnErrors = true;
  }
  return watch;
}

/**
 * The default in-memory storage adapter. A plain Map under Keyv only drops an expired entry when it is
 * read again, so entries written with a TTL and never read (abandoned authorization states) would pile
 * up forever; this one also sweeps expired entries as writes come in (amortised O(1) per write).
 * Internal (not exported from the package entry).
 * @internal
 */
export class MemoryAdapter {
  readonly #map = new Map<string, { value: unknown; expiresAt: number }>();
  #nextSweep = 1024;
  namespace?: string;

  get(key: string): unknown {
    const entry = this.#map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: unknown, ttl?: number): boolean {
    const expiresAt = typeof ttl === 'number' && ttl > 0 ? Date.now() + ttl : Number.POSITIVE_INFINITY;
    this.#map.set(key, { value, expiresAt });
    if (this.#map.size >= this.#nextSweep) {
      const now = Date.now();
      for (const [k, entry] of this.#map) if (entry.expiresAt <= now) this.#map.delete(k);
      this.#nextSweep = Math.max(1024, this.#map.size * 2);
    }
    return true;
  }

  delete(key: string): boolean {
    return this.#map.delete(key);
  }

  /** Required by Keyv's adapter check; agent-iam never calls it. */
  clear(): void {
    this.#map.clear();
  }

  /** Number of entries held, expired or not (for tests). */
  get size(): number {
    return this.#map.size;
  }
}

/** A new in-memory Keyv whose expired entries do not accumulate. */
function memoryKeyv(): Keyv {
  return new Keyv({ store: new MemoryAdapter() });
}

/**
 * Keyv treats a TTL of 0 as "keep forever" and Redis rejects a fractional PX: a TTL that is zero,
 * negative or NaN (an expiry already past) becomes 1 ms, fractions round up, Infinity means none.
 */
function normalizeTtl(ttlMs: number | undefined): number | undefined {
  if (ttlMs === undefined || ttlMs === Number.POSITIVE_INFINITY) return undefined;
  if (!(ttlMs > 0)) return 1;
  return Math.ceil(ttlMs);
}

const optionsSchema = z.object({ timeoutMs: z.number().int().positive().max(600_000).optional() });

/**
 * Wrap a Keyv instance (default: a new in-memory Keyv that sweeps expired entries), or any object with `get`/`set`/`delete`, so
 * that every call is bounded by a timeout, an adapter's `error` event never crashes the process, and
 * every failure is `STORE_UNAVAILABLE` (with `reason` `timeout` or `error`), never a silent
 * `undefined`. Errors thrown by the backend as `AgentIamError` pass through unchanged.
 *
 * To make failures visible, this sets `throwOnErrors = true` on the Keyv instance and on its adapter
 * (Keyv 5 and `@keyv/redis` otherwise turn a dead server into "no value"). It never calls `clear()`.
 * A write that timed out may still land later; it lands whole.
 *
 * @example
 * ```ts
 * import Keyv from 'keyv';
 * import KeyvRedis from '@keyv/redis';
 * const store = createKeyValueStore(new Keyv(new KeyvRedis('redis://127.0.0.1:6379')), { timeoutMs: 1000 });
 * await store.set(storeKey('note', 'alice'), { hello: 'world' }, 60_000);
 * ```
 */
export function createKeyValueStore(keyv?: Keyv | KeyValueStore, options: KeyValueStoreOptions = {}): KeyValueStore {
  const opts = parseOptions(optionsSchema, options, 'store');
  const timeoutMs = opts.timeoutMs ?? 5000;
  const kv: unknown = keyv ?? memoryKeyv();
  if (!isBackend(kv)) throw new AgentIamError('CONFIG_INVALID', 'Invalid option store: must be a Keyv instance or have get, set and delete', { field: 'store' });
  const backend = kv;
  const watch = prepare(backend);

  // One timer and one promise per call (no Promise.race): this sits on every token lookup.
  const call = <T>(fn: () => T | Promise<T>, failed: (value: T) => boolean): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const before = watch.count;
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(unavailable('timeout'));
      }, timeoutMs);
      const onValue = (value: T): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (failed(value) && watch.count !== before) reject(unavailable('error'));
        else resolve(value);
      };
      const onError = (e: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(isAgentIamError(e) ? e : unavailable('error', e));
      };
      try {
        Promise.resolve(fn()).then(onValue, onError);
      } catch (e) {
        onError(e);
      }
    });

  return {
    async get<T>(key: string): Promise<T | undefined> {
      const value = await call(() => backend.get(key), (v) => v === undefined || v === null);
      return (value ?? undefined) as T | undefined;
    },
    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      // Keyv reports a swallowed adapter failure on set/delete as success: any error event fails the call.
      const ok = await call(() => backend.set(key, value, normalizeTtl(ttlMs)), () => true);
      if (ok === false) throw unavailable('error');
    },
    async delete(key: string): Promise<boolean> {
      return Boolean(await call(() => backend.delete(key), () => true));
    },
  };
}
