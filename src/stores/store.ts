/**
 * The small async key-value interface every agent-iam store goes through, over any Keyv instance.
 *
 * @module
 */
import Keyv from 'keyv';
import { z } from 'zod';
import { AgentIamError, isAgentIamError, storeUnavailable } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { implementsContract, normalizeTtl, type KeyValueStore, type Store } from './contract.js';
import { KeyedMutex, MemoryStore } from './memory-store.js';
import { emulate } from './emulated-store.js';

export { KEY_PREFIX, storeKey } from './contract.js';
export type { KeyValueStore, Store, Versioned } from './contract.js';

/** Options for {@link createKeyValueStore}. */
export interface KeyValueStoreOptions {
  /** Bound on every store call, in ms (default 5000). A call past it fails with `STORE_UNAVAILABLE`. */
  timeoutMs?: number;
}


function unavailable(reason: 'timeout' | 'error', cause?: unknown): AgentIamError {
  const message = reason === 'timeout' ? 'The store did not answer in time' : 'The store is unavailable';
  return storeUnavailable(message, reason, cause);
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
