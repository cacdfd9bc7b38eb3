/**
 * Internal: a bounded in-process cache of issued tokens (client credentials, token exchange), each
 * entry served until its own deadline, with one request in flight per key.
 *
 * @module
 */
import { SingleFlight } from '../lib/async.js';
import { LruCache } from '../lib/lru.js';
import { nowMs } from '../lib/clock.js';

interface Entry<V> {
  value: V;
  /** Serve until this time, epoch ms. */
  until: number;
}

/** What a load returns: the value, and until when it may be served (undefined: do not cache). */
export interface Loaded<V> {
  value: V;
  until: number | undefined;
}

export class ExpiringCache<V> {
  readonly #entries: LruCache<string, Entry<V>>;
  readonly #flight = new SingleFlight<V>();

  constructor(maxEntries: number) {
    this.#entries = new LruCache(maxEntries);
  }

  /** The cached value while it is still servable; an expired entry is dropped. */
  get(key: string, now = nowMs()): V | undefined {
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    if (now < hit.until) return hit.value;
    this.#entries.delete(key);
    return undefined;
  }

  /**
   * Load `key` with `load`, sharing one call among concurrent callers of the same key, and keep the
   * value while its deadline is in the future. A failed load caches nothing.
   */
  load(key: string, load: () => Promise<Loaded<V>>): Promise<V> {
    return this.#flight.run(key, async () => {
      const { value, until } = await load();
      if (until !== undefined && nowMs() < until) this.#entries.set(key, { value, until });
      return value;
    });
  }

  /**
   * Drop `key` only while its entry still holds a value `matches` accepts (compare-and-delete: an
   * entry replaced meanwhile by a fresh load stays). Returns true when an entry was dropped.
   */
  deleteIf(key: string, matches: (value: V) => boolean): boolean {
    const hit = this.#entries.get(key);
    if (hit === undefined || !matches(hit.value)) return false;
    this.#entries.delete(key);
    return true;
  }

  get size(): number {
    return this.#entries.size;
  }
}
