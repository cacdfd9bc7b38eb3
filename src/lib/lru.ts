/**
 * A small bounded map with least-recently-used eviction, cheap on hits: the Map's insertion order
 * is the recency order, oldest evicted first. A hit moves its entry to the young end only when more
 * than `max / 8` insertions or moves happened since the entry last moved, so a hot entry costs one
 * `Map.get` per hit instead of a delete and a re-insert (which also leaves holes that make the Map
 * rehash). An entry used within the last `max - max / 8` insertions is never the one evicted; below
 * 8 entries this is exact LRU.
 */
interface Slot<V> {
  value: V;
  /** The clock when the entry last moved to the young end. */
  stamp: number;
}

export class LruCache<K, V> {
  readonly #max: number;
  readonly #slack: number;
  readonly #map = new Map<K, Slot<V>>();
  /** Counts insertions and moves; an entry's age is `#clock - stamp`. */
  #clock = 0;

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
    this.#slack = this.#max >> 3;
  }

  get(key: K): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (this.#clock - slot.stamp > this.#slack) {
      this.#map.delete(key);
      slot.stamp = ++this.#clock;
      this.#map.set(key, slot);
    }
    return slot.value;
  }

  set(key: K, value: V): void {
    if (this.#map.has(key)) this.#map.delete(key);
    else if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, { value, stamp: ++this.#clock });
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }

  keys(): IterableIterator<K> {
    return this.#map.keys();
  }
}
