/**
 * The small async key-value interface every agent-iam store goes through, over any Keyv instance.
 *
 * @module
 */
import Keyv from 'keyv';
import { AgentIamError } from '../errors.js';
import { withTimeout } from '../lib/async.js';

/** A minimal async key-value store. Values are JSON-serialisable. */
export interface KeyValueStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** `ttlMs` undefined keeps the value until deleted. */
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

/**
 * Build a store key from components. Each component is percent-encoded, so `('a:b', 'c')` and
 * `('a', 'b:c')` can never produce the same key.
 *
 * @example
 * ```ts
 * storeKey('account', 'github', 'user:1'); // 'agent-iam:v1:account:github:user%3A1'
 * ```
 */
export function storeKey(...parts: string[]): string {
  let key = KEY_PREFIX;
  for (const part of parts) key += ':' + encodeURIComponent(part);
  return key;
}

function unavailable(cause?: unknown): AgentIamError {
  return new AgentIamError('STORE_UNAVAILABLE', 'The store is unavailable', cause === undefined ? {} : { cause });
}

/** True when `value` looks like a Keyv instance. */
function isKeyv(value: unknown): value is Keyv {
  return value instanceof Keyv || (typeof value === 'object' && value !== null && typeof (value as Keyv).get === 'function' && typeof (value as Keyv).set === 'function' && typeof (value as Keyv).delete === 'function');
}

/**
 * Wrap a Keyv instance (default: a new in-memory Keyv) so that every call is bounded by a timeout,
 * an adapter's `error` event never crashes the process, and every failure is `STORE_UNAVAILABLE`.
 *
 * @example
 * ```ts
 * import KeyvRedis from '@keyv/redis';
 * const store = createKeyValueStore(new Keyv(new KeyvRedis('redis://127.0.0.1:6379')));
 * ```
 */
export function createKeyValueStore(keyv?: Keyv | KeyValueStore, options: KeyValueStoreOptions = {}): KeyValueStore {
  const timeoutMs = options.timeoutMs ?? 5000;
  const kv = keyv ?? new Keyv();
  if (!isKeyv(kv)) return kv as KeyValueStore;
  // Keyv re-emits adapter errors; without a listener an EventEmitter 'error' would throw.
  const on = (kv as unknown as { on?: (event: string, fn: (e: unknown) => void) => void }).on;
  if (typeof on === 'function') on.call(kv, 'error', () => {});
  const bound = <T>(p: Promise<T>): Promise<T> =>
    withTimeout(p, timeoutMs, () => unavailable()).catch((e: unknown) => {
      throw e instanceof AgentIamError ? e : unavailable(e);
    });
  return {
    async get<T>(key: string): Promise<T | undefined> {
      return (await bound(Promise.resolve().then(() => kv.get(key)))) as T | undefined;
    },
    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      const ok = await bound(Promise.resolve().then(() => kv.set(key, value, ttlMs)));
      if (ok === false) throw unavailable();
    },
    async delete(key: string): Promise<boolean> {
      return Boolean(await bound(Promise.resolve().then(() => kv.delete(key))));
    },
  };
}
