/**
 * The store contract emulated on top of get/set/delete (any Keyv store): exact inside one process,
 * best effort across processes.
 *
 * @module
 */
import { toBase64Url } from '../lib/encoding.js';
import { sleep } from '../lib/async.js';
import { sha256Sync } from '../lib/sha256.js';
import { nowMs } from '../lib/clock.js';
import { AgentIamError } from '../errors.js';
import { normalizeTtl, toJson, type KeyValueStore, type Store, type Versioned } from './contract.js';
import type { KeyedMutex } from './memory-store.js';

const ascii = new TextEncoder();

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
export function emulate(base: Pick<KeyValueStore, 'get' | 'set' | 'delete'>, mutex: KeyedMutex): Store {
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
