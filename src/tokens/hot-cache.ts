/**
 * The in-process cache of decrypted access tokens: bounded, oldest entry out first.
 *
 * @module
 */
import type { AccessTokenResult } from './types.js';

/**
 * Key of the in-process token cache. Connection ids and owner ids never contain control characters
 * (validated before anything is cached), so NUL-separated parts cannot collide.
 */
export function hotKey(connection: string, type: 'u' | 'o', id: string): string {
  return connection + '\u0000' + type + '\u0000' + id;
}

/** A bounded map of decrypted tokens; the oldest entry goes first when full (no reordering on hits). */
export class HotCache {
  readonly #max: number;
  readonly #map = new Map<string, CachedToken>();
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): CachedToken | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: CachedToken): void {
    this.#map.delete(key);
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, value);
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
}

export interface CachedToken {
  result: AccessTokenResult;
  /** Serve until this time (the earlier of refresh time and the cache TTL). */
  until: number;
}
