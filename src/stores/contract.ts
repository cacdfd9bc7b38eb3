/**
 * The store contract: the async key-value interface every agent-iam store goes through
 * ({@link KeyValueStore}), its atomic operations ({@link Store}), and how keys and values are
 * written ({@link storeKey}, JSON text, TTLs).
 *
 * @module
 */
import { AgentIamError } from '../errors.js';
import { toBase64Url } from '../lib/encoding.js';
import { sha256Sync } from '../lib/sha256.js';

/**
 * A minimal async key-value store. Values are JSON-serialisable. `get`, `set` and `delete` are
 * required; the other operations are the atomic part of the store contract, which
 * {@link createKeyValueStore} provides for every store (exact where the store implements them,
 * emulated on top of get/set/delete otherwise).
 */
export interface KeyValueStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
  /**
   * `ttlMs` undefined keeps the value until deleted; a TTL of zero or less stores a value that has
   * already expired (Keyv itself would keep it forever).
   */
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  getVersioned?<T = unknown>(key: string): Promise<Versioned<T> | undefined>;
  setIfAbsent?(key: string, value: unknown, ttlMs?: number): Promise<boolean>;
  compareAndSet?(key: string, expectedVersion: string | null, value: unknown, ttlMs?: number): Promise<boolean>;
  deleteIfOwner?(key: string, owner: string): Promise<boolean>;
  consume?<T = unknown>(key: string): Promise<T | undefined>;
  indexAdd?(key: string, member: string, ttlMs?: number): Promise<void>;
  indexMembers?(key: string, limit?: number): Promise<string[]>;
  indexRemove?(key: string, member: string): Promise<boolean>;
  /** True when every operation is atomic for all processes sharing the store (see {@link Store.atomic}). */
  readonly atomic?: boolean;
  /** Release connections the store opened itself. */
  close?(): Promise<void>;
}

/** A value with the version it was stored under (see {@link Store.compareAndSet}). */
export interface Versioned<T = unknown> {
  value: T;
  /** Opaque; changes on every write of the key. Never part of a ciphertext. */
  version: string;
}

/**
 * The store contract every multi-process guarantee of agent-iam goes through: get/set/delete plus
 * atomic operations. `createKeyValueStore` returns one for any store.
 *
 * | operation | used for |
 * | --- | --- |
 * | `setIfAbsent` | refresh lease, OAuth state, one pending approval per request, register once |
 * | `compareAndSet` | account writes fenced by their version, approval decisions, single-use approvals |
 * | `deleteIfOwner` | lease release (only by the process that holds it) |
 * | `consume` | single-use OAuth state |
 * | `indexAdd` / `indexMembers` / `indexRemove` | a user's connected accounts, the approvals list |
 *
 * `atomic` says whether these hold across processes: `true` for the Redis and PostgreSQL stores
 * (`agent-iam/redis`, `agent-iam/postgres`) and for the in-memory default (one process), `false`
 * for a Keyv store, where they are emulated with get/set/delete, exact inside one process and best
 * effort across processes.
 *
 * @example
 * ```ts
 * const store = createKeyValueStore();
 * await store.setIfAbsent('lease', 'owner-1', 30_000);            // true: taken
 * await store.setIfAbsent('lease', 'owner-2', 30_000);            // false: held
 * await store.deleteIfOwner('lease', 'owner-2');                  // false: not the owner
 * const cur = await store.getVersioned<{ n: number }>('counter');
 * await store.compareAndSet('counter', cur?.version ?? null, { n: (cur?.value.n ?? 0) + 1 });
 * ```
 */
export interface Store extends KeyValueStore {
  /** The value and its version, or undefined when absent or expired. */
  getVersioned<T = unknown>(key: string): Promise<Versioned<T> | undefined>;
  /** Store the value only when the key is absent (or expired); true when stored. */
  setIfAbsent(key: string, value: unknown, ttlMs?: number): Promise<boolean>;
  /**
   * Store the value only when the key's current version is `expectedVersion` (`null`: only when the
   * key is absent); true when stored. The new value gets a new version.
   */
  compareAndSet(key: string, expectedVersion: string | null, value: unknown, ttlMs?: number): Promise<boolean>;
  /** Delete the key only when its value is the string `owner`; true when deleted. */
  deleteIfOwner(key: string, owner: string): Promise<boolean>;
  /** Read and delete in one step: of concurrent callers, exactly one gets the value. */
  consume<T = unknown>(key: string): Promise<T | undefined>;
  /**
   * Add (or re-add) a string member to the set at `key`, expiring `ttlMs` from now (undefined:
   * never). Members are stored in plaintext.
   */
  indexAdd(key: string, member: string, ttlMs?: number): Promise<void>;
  /** Live members, the one expiring soonest first; with `limit`, only the `limit` expiring last. */
  indexMembers(key: string, limit?: number): Promise<string[]>;
  /** Remove a member; true when it was there. */
  indexRemove(key: string, member: string): Promise<boolean>;
  /**
   * True when every operation above is atomic for all processes that share the store; false for
   * a Keyv store (exact inside one process, best effort across processes).
   */
  readonly atomic: boolean;
}

const CONTRACT = ['getVersioned', 'setIfAbsent', 'compareAndSet', 'deleteIfOwner', 'consume', 'indexAdd', 'indexMembers', 'indexRemove'] as const;

/** True when the store implements the whole contract itself. @internal */
export function implementsContract(store: object): store is Store {
  for (const name of CONTRACT) if (typeof (store as Record<string, unknown>)[name] !== 'function') return false;
  return true;
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

/**
 * Keyv treats a TTL of 0 as "keep forever" and Redis rejects a fractional PX: a TTL that is zero,
 * negative or NaN (an expiry already past) becomes 1 ms, fractions round up, Infinity means none.
 * @internal
 */
export function normalizeTtl(ttlMs: number | undefined): number | undefined {
  if (ttlMs === undefined || ttlMs === Number.POSITIVE_INFINITY) return undefined;
  if (!(ttlMs > 0)) return 1;
  return Math.ceil(ttlMs);
}


/** JSON text of a value; a value JSON cannot represent is refused (it would not read back). @internal */
export function toJson(value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  if (json === undefined) throw new AgentIamError('STORE_UNAVAILABLE', 'Value cannot be stored: it is not JSON-serialisable', { reason: 'not_serializable' });
  return json;
}
