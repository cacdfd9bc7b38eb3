/**
 * The small async key-value interface every agent-iam store goes through, over any Keyv instance.
 *
 * @module
 */
import Keyv from 'keyv';
import { z } from 'zod';
import { AgentIamError, isAgentIamError } from '../errors.js';
import { toBase64Url } from '../lib/encoding.js';
import { sleep } from '../lib/async.js';
import { parseOptions } from '../lib/options.js';
import { sha256Sync } from '../lib/sha256.js';
import { nowMs } from '../lib/clock.js';

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
  /** The per-key mutex of the emulated atomic operations on this backend. */
  mutex?: KeyedMutex;
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
    if (entry.expiresAt <= nowMs()) {
      this.#map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: unknown, ttl?: number): boolean {
    const expiresAt = typeof ttl === 'number' && ttl > 0 ? nowMs() + ttl : Number.POSITIVE_INFINITY;
    this.#map.set(key, { value, expiresAt });
    if (this.#map.size >= this.#nextSweep) {
      const now = nowMs();
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

interface MemoryEntry {
  json: string;
  version: string;
  expiresAt: number;
}

/**
 * The in-memory default: the whole contract, exact (every operation runs without yielding, so
 * nothing interleaves). Values are kept as JSON text, so a caller never shares an object with the
 * store. Expired entries are swept as writes come in (amortised O(1) per write).
 */
class MemoryStore implements Store {
  readonly atomic = true;
  readonly #map = new Map<string, MemoryEntry>();
  readonly #sets = new Map<string, Map<string, number>>();
  #seq = 0;
  #nextSweep = 1024;

  #live(key: string, now = nowMs()): MemoryEntry | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.#map.delete(key);
      return undefined;
    }
    return e;
  }

  #put(key: string, json: string, ttlMs: number | undefined): void {
    const ttl = normalizeTtl(ttlMs);
    this.#map.set(key, { json, version: String(++this.#seq), expiresAt: ttl === undefined ? Number.POSITIVE_INFINITY : nowMs() + ttl });
    if (this.#map.size >= this.#nextSweep) {
      const now = nowMs();
      for (const [k, e] of this.#map) if (e.expiresAt <= now) this.#map.delete(k);
      this.#nextSweep = Math.max(1024, this.#map.size * 2);
    }
  }

  async get<T>(key: string): Promise<T | undefined> {
    const e = this.#live(key);
    return e === undefined ? undefined : (JSON.parse(e.json) as T);
  }
  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    this.#put(key, toJson(value), ttlMs);
  }
  async delete(key: string): Promise<boolean> {
    return this.#live(key) !== undefined && this.#map.delete(key);
  }
  async getVersioned<T>(key: string): Promise<Versioned<T> | undefined> {
    const e = this.#live(key);
    return e === undefined ? undefined : { value: JSON.parse(e.json) as T, version: e.version };
  }
  async setIfAbsent(key: string, value: unknown, ttlMs?: number): Promise<boolean> {
    const json = toJson(value);
    if (this.#live(key) !== undefined) return false;
    this.#put(key, json, ttlMs);
    return true;
  }
  async compareAndSet(key: string, expectedVersion: string | null, value: unknown, ttlMs?: number): Promise<boolean> {
    const json = toJson(value);
    const e = this.#live(key);
    if (expectedVersion === null ? e !== undefined : e?.version !== expectedVersion) return false;
    this.#put(key, json, ttlMs);
    return true;
  }
  async deleteIfOwner(key: string, owner: string): Promise<boolean> {
    const e = this.#live(key);
    if (e === undefined || e.json !== JSON.stringify(owner)) return false;
    return this.#map.delete(key);
  }
  async consume<T>(key: string): Promise<T | undefined> {
    const e = this.#live(key);
    if (e === undefined) return undefined;
    this.#map.delete(key);
    return JSON.parse(e.json) as T;
  }
  async indexAdd(key: string, member: string, ttlMs?: number): Promise<void> {
    const ttl = normalizeTtl(ttlMs);
    const now = nowMs();
    let set = this.#sets.get(key);
    if (set === undefined) this.#sets.set(key, (set = new Map()));
    else for (const [m, at] of set) if (at <= now) set.delete(m);
    set.delete(member); // re-added members move to the end (Map keeps insertion order)
    set.set(member, ttl === undefined ? Number.POSITIVE_INFINITY : now + ttl);
  }
  async indexMembers(key: string, limit?: number): Promise<string[]> {
    const set = this.#sets.get(key);
    if (set === undefined) return [];
    const now = nowMs();
    const live: Array<[string, number]> = [];
    for (const [m, at] of set) {
      if (at <= now) set.delete(m);
      else live.push([m, at]);
    }
    if (set.size === 0) this.#sets.delete(key);
    live.sort((a, b) => a[1] - b[1]);
    const from = limit !== undefined && live.length > limit ? live.length - limit : 0;
    return live.slice(from).map(([m]) => m);
  }
  async indexRemove(key: string, member: string): Promise<boolean> {
    const set = this.#sets.get(key);
    if (set === undefined) return false;
    const at = set.get(member);
    set.delete(member);
    return at !== undefined && at > nowMs();
  }
}

/** Runs functions one at a time per key, in call order (in this process). @internal */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const result = prev.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

/** How long an emulated setIfAbsent waits before reading back what it wrote. */
const SETTLE_MS = 25;

/** Most members an emulated index keeps. */
const MAX_EMULATED_INDEX = 10_000;

/** What an emulated index is stored as: `[member, expiresAt | null]`, oldest addition first. */
interface EmulatedIndex {
  agentIamIndex: 1;
  m: Array<[string, number | null]>;
}

function isEmulatedIndex(value: unknown): value is EmulatedIndex {
  return typeof value === 'object' && value !== null && (value as EmulatedIndex).agentIamIndex === 1 && Array.isArray((value as EmulatedIndex).m);
}

/**
 * The contract on top of get/set/delete (a Keyv store, or a plain {@link KeyValueStore}): each
 * compound operation runs under a per-key mutex, so it is exact inside this process; across
 * processes two of them can interleave (best effort). The version is the SHA-256 of the stored JSON,
 * so values already in the store keep working. An index is one record rewritten on every change
 * (at most 10 000 members), so it suits small sets; the Redis and PostgreSQL stores have real ones.
 */
function emulate(base: Pick<KeyValueStore, 'get' | 'set' | 'delete'>, mutex: KeyedMutex): Store {
  const versionOf = (value: unknown): string => toBase64Url(sha256Sync(ascii.encode(toJson(value)))).slice(0, 22);
  const read = async <T>(key: string): Promise<Versioned<T> | undefined> => {
    const value = await base.get<T>(key);
    return value === undefined || value === null ? undefined : { value, version: versionOf(value) };
  };
  const readIndex = async (key: string): Promise<Array<[string, number | null]>> => {
    const raw = await base.get<unknown>(key);
    if (raw === undefined || raw === null) return [];
    if (!isEmulatedIndex(raw)) throw new AgentIamError('STORE_UNAVAILABLE', 'A stored index has an unexpected shape', { reason: 'malformed' });
    const now = nowMs();
    return raw.m.filter((e) => Array.isArray(e) && typeof e[0] === 'string' && (e[1] === null || (typeof e[1] === 'number' && e[1] > now)));
  };
  const writeIndex = async (key: string, members: Array<[string, number | null]>): Promise<void> => {
    if (members.length === 0) {
      await base.delete(key);
      return;
    }
    let last = 0;
    for (const [, at] of members) last = at === null ? Number.POSITIVE_INFINITY : Math.max(last, at);
    const value: EmulatedIndex = { agentIamIndex: 1, m: members };
    await base.set(key, value, last === Number.POSITIVE_INFINITY ? undefined : last - nowMs());
  };
  return {
    atomic: false,
    get: (key) => base.get(key),
    set: (key, value, ttlMs) => base.set(key, value, ttlMs),
    delete: (key) => mutex.run(key, () => base.delete(key)),
    getVersioned: read,
    setIfAbsent: (key, value, ttlMs) =>
      mutex.run(key, async () => {
        if ((await base.get(key)) !== undefined) return false;
        await base.set(key, value, ttlMs);
        if (typeof value !== 'string') return true;
        // A string is a lease owner or a binding id, which other processes race for: another one
        // may have read "absent" too and written after us. Wait a moment and read back, so that
        // the earlier writer sees it was overwritten. This narrows the race; it cannot close it (no
        // algorithm over get/set/delete can).
        await sleep(SETTLE_MS);
        const now = await base.get(key);
        return now !== undefined && now !== null && toJson(now) === toJson(value);
      }),
    compareAndSet: (key, expected, value, ttlMs) =>
      mutex.run(key, async () => {
        const cur = await read(key);
        if (expected === null ? cur !== undefined : cur?.version !== expected) return false;
        await base.set(key, value, ttlMs);
        return true;
      }),
    deleteIfOwner: (key, owner) =>
      mutex.run(key, async () => {
        if ((await base.get(key)) !== owner) return false;
        return base.delete(key);
      }),
    consume: <T>(key: string) =>
      mutex.run(key, async () => {
        const value = await base.get<T>(key);
        if (value === undefined || value === null) return undefined;
        await base.delete(key);
        return value;
      }),
    indexAdd: (key, member, ttlMs) =>
      mutex.run(key, async () => {
        const ttl = normalizeTtl(ttlMs);
        const members = (await readIndex(key)).filter(([m]) => m !== member);
        members.push([member, ttl === undefined ? null : nowMs() + ttl]);
        // One record rewritten per addition: keep it bounded (the members expiring soonest go first).
        if (members.length > MAX_EMULATED_INDEX) {
          members.sort((a, b) => (a[1] ?? Number.POSITIVE_INFINITY) - (b[1] ?? Number.POSITIVE_INFINITY));
          members.splice(0, members.length - MAX_EMULATED_INDEX);
        }
        await writeIndex(key, members);
      }),
    indexMembers: async (key, limit) => {
      const live = await readIndex(key);
      live.sort((a, b) => (a[1] ?? Number.POSITIVE_INFINITY) - (b[1] ?? Number.POSITIVE_INFINITY));
      const from = limit !== undefined && live.length > limit ? live.length - limit : 0;
      return live.slice(from).map(([m]) => m);
    },
    indexRemove: (key, member) =>
      mutex.run(key, async () => {
        const members = await readIndex(key);
        const rest = members.filter(([m]) => m !== member);
        if (rest.length === members.length) return false;
        await writeIndex(key, rest);
        return true;
      }),
  };
}

const optionsSchema = z.strictObject({ timeoutMs: z.number().int().positive().max(600_000).optional() });

/**
 * Wrap a store so that it implements the whole {@link Store} contract, every call is bounded by a
 * timeout, an adapter's `error` event never crashes the process, and every failure is
 * `STORE_UNAVAILABLE` (with `reason` `timeout` or `error`), never a silent `undefined`. Errors
 * thrown by the backend as `AgentIamError` pass through unchanged.
 *
 * What it accepts, and what the atomic operations guarantee on it:
 * - nothing: a new in-memory store, exact (one process);
 * - a store that implements the contract itself (`redisStore()` from `agent-iam/redis`,
 *   `postgresStore()` from `agent-iam/postgres`): exact across every process on the server;
 * - a Keyv instance or any object with `get`/`set`/`delete`: the atomic operations are emulated
 *   with a per-key mutex, exact inside one process and **best effort across processes** (two
 *   replicas can both take a lease or both consume a single-use value). Use the Redis or
 *   PostgreSQL store for several replicas.
 *
 * For a Keyv store this sets `throwOnErrors = true` on the Keyv instance and on its adapter (Keyv
 * 5 and `@keyv/redis` otherwise turn a dead server into "no value"). It never calls `clear()`.
 * A write that timed out may still land later; it lands whole. One is undone: a `setIfAbsent` of
 * a string (a lease owner) that the store reports stored after its caller got the timeout is
 * deleted again (with `deleteIfOwner`, so only that value), so that no lease outlives the caller
 * that gave up on it. Only stores that implement the contract report that late answer.
 *
 * @example
 * ```ts
 * import { redisStore } from 'agent-iam/redis';
 * const store = createKeyValueStore(redisStore({ url: 'redis://127.0.0.1:6379' }), { timeoutMs: 1000 });
 * await store.set(storeKey('note', 'alice'), { hello: 'world' }, 60_000);
 * await store.setIfAbsent(storeKey('once', 'job-1'), 'worker-a', 30_000); // true in exactly one replica
 * ```
 */
export function createKeyValueStore(keyv?: Keyv | KeyValueStore, options: KeyValueStoreOptions = {}): Store {
  const opts = parseOptions(optionsSchema, options, 'store');
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (keyv === undefined) return bounded(new MemoryStore(), timeoutMs, { count: 0 });
  const kv: unknown = keyv;
  if (!isBackend(kv)) throw new AgentIamError('CONFIG_INVALID', 'Invalid option store: must be a Keyv instance or have get, set and delete', { field: 'store' });
  const watch = prepare(kv);
  if (!(kv instanceof Keyv) && implementsContract(kv)) return bounded(kv, timeoutMs, watch);
  const basic = bounded(kv as KeyValueStore, timeoutMs, watch);
  // Every wrapper of one backend shares its mutex, so two managers on one Keyv are exact in-process.
  watch.mutex ??= new KeyedMutex();
  return emulate(basic, watch.mutex);
}

/** Bound every call of a store with the timeout and map failures to STORE_UNAVAILABLE. */
function bounded<S extends KeyValueStore>(backend: S, timeoutMs: number, watch: ErrorWatch): S extends Store ? Store : KeyValueStore;
function bounded(backend: KeyValueStore, timeoutMs: number, watch: ErrorWatch): KeyValueStore | Store {
  // One timer and one promise per call (no Promise.race): this sits on every token lookup.
  // `late` receives the backend's answer when it comes after the caller was told 'timeout'.
  const call = <T>(fn: () => T | Promise<T>, failed: (value: T) => boolean, late?: (value: T) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const before = watch.count;
      let settled = false;
      let timedOut = false;
      const timer = setTimeout(() => {
        settled = true;
        timedOut = true;
        reject(unavailable('timeout'));
      }, timeoutMs);
      const onValue = (value: T): void => {
        if (settled) {
          if (timedOut && late !== undefined) late(value);
          return;
        }
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
  const always = (): boolean => true;
  const basic: KeyValueStore = {
    async get<T>(key: string): Promise<T | undefined> {
      const value = await call(() => backend.get(key), (v) => v === undefined || v === null);
      return (value ?? undefined) as T | undefined;
    },
    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      // Keyv reports a swallowed adapter failure on set/delete as success: any error event fails the call.
      const ok: unknown = await call(() => backend.set(key, value, normalizeTtl(ttlMs)), always);
      if (ok === false) throw unavailable('error');
    },
    async delete(key: string): Promise<boolean> {
      return Boolean(await call(() => backend.delete(key), always));
    },
  };
  if (!implementsContract(backend)) return basic;
  const b = backend;
  // A setIfAbsent that timed out can still land: a frozen server (SIGSTOP, a long pause) runs the
  // command when it wakes, or a pool sends it when a connection frees up. Its caller was told
  // STORE_UNAVAILABLE and acts as if it holds nothing, so a lease written then would be held by
  // nobody and block every process until its TTL. When the late answer says it was stored, take
  // it back. Only for strings: deleteIfOwner removes the key only while it still holds exactly
  // that value, and the values raced for this way (lease owners, binding ids) are unique.
  const takeBack = (key: string, value: unknown): ((stored: boolean) => void) | undefined =>
    typeof value !== 'string'
      ? undefined
      : (stored) => {
          if (stored !== true) return;
          try {
            b.deleteIfOwner(key, value).catch(() => false);
          } catch {
            /* the lease expires with its TTL */
          }
        };
  const store: Store = {
    ...basic,
    atomic: b.atomic === true,
    async getVersioned<T>(key: string) {
      return (await call(() => b.getVersioned<T>(key), always)) ?? undefined;
    },
    setIfAbsent: (key, value, ttlMs) => call(() => b.setIfAbsent(key, value, normalizeTtl(ttlMs)), always, takeBack(key, value)),
    compareAndSet: (key, expected, value, ttlMs) => call(() => b.compareAndSet(key, expected, value, normalizeTtl(ttlMs)), always),
    deleteIfOwner: (key, owner) => call(() => b.deleteIfOwner(key, owner), always),
    async consume<T>(key: string) {
      return (await call(() => b.consume<T>(key), always)) ?? undefined;
    },
    indexAdd: (key, member, ttlMs) => call(() => b.indexAdd(key, member, normalizeTtl(ttlMs)), always),
    indexMembers: (key, limit) => call(() => b.indexMembers(key, limit), always),
    indexRemove: (key, member) => call(() => b.indexRemove(key, member), always),
  };
  if (typeof b.close === 'function') store.close = () => b.close!();
  return store;
}
