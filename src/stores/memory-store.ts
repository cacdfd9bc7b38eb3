/**
 * The in-memory stores: the default exact store of one process ({@link MemoryStore}), the Keyv
 * adapter that sweeps expired entries, and the per-key mutex of the emulated contract.
 *
 * @module
 */
import { nowMs } from '../lib/clock.js';
import { normalizeTtl, toJson, type Store, type Versioned } from './contract.js';

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

/** An index is swept for expired members once it holds this many (then each time it doubles). */
const INDEX_SWEEP_MIN = 64;

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
export class MemoryStore implements Store {
  readonly atomic = true;
  readonly #map = new Map<string, MemoryEntry>();
  readonly #sets = new Map<string, Map<string, number>>();
  /** Per index: its size at which `indexAdd` next sweeps expired members. */
  readonly #sweepAt = new Map<string, number>();
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
    else if (set.size >= (this.#sweepAt.get(key) ?? INDEX_SWEEP_MIN)) {
      // Expired members are dropped when the index has doubled since the last sweep (amortised O(1)
      // per add); sweeping on every add made n adds to one index (the approvals list) cost O(n²).
      for (const [m, at] of set) if (at <= now) set.delete(m);
      this.#sweepAt.set(key, Math.max(INDEX_SWEEP_MIN, set.size * 2));
    }
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
    if (set.size === 0) {
      this.#sets.delete(key);
      this.#sweepAt.delete(key);
    }
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
