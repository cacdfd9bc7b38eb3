/**
 * The store contract, as one suite that every store runs: memory, Keyv (emulated), Redis (both
 * clients) and PostgreSQL. `exact` stores must also hold it under concurrency from many callers.
 */
import { describe, expect, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Store } from '../../src/stores/store.js';
import { testClock } from '../helpers/clock.js';

export interface ContractTarget {
  /** A store on a fresh namespace (keys never collide between calls). */
  store: () => Store;
  /** A second, independent connection to the same data (another "process"); defaults to store(). */
  peer?: () => Store;
  /** True when the guarantees hold across connections (Redis, PostgreSQL, memory). */
  exact: boolean;
  /** Where lease owners are written, when `store` encrypts (leases are plaintext by design). */
  plain?: Store;
  /**
   * True when TTLs run on the store's server (Redis, PostgreSQL): they cannot be moved with the test
   * clock, so a short TTL is used and its end is polled for. Otherwise (in-process stores) the test
   * clock jumps past each TTL, and nothing sleeps.
   */
  serverClock?: boolean;
}

/** How long an expiry may take to show on a server clock before the test fails. */
const SERVER_EXPIRY_WAIT_MS = 5_000;

export function describeStoreContract(name: string, target: () => ContractTarget, options: { skip?: boolean } = {}): void {
  const d = options.skip === true ? describe.skip : describe;
  d(`store contract: ${name}`, () => {
    const k = (label: string): string => `agent-iam:v1:contract:${randomUUID()}:${label}`;
    const pair = (): { a: Store; b: Store; exact: boolean; plain: Store; serverClock: boolean } => {
      const t = target();
      const a = t.store();
      return { a, b: t.peer?.() ?? a, exact: t.exact, plain: t.plain ?? a, serverClock: t.serverClock === true };
    };
    /**
     * For the TTL tests: `short`, a TTL that ends within the test, and `expire(ttl, check)`, which
     * lets a TTL of `ttl` ms run out and then asserts `check`. In-process stores: the test clock
     * (installed here until the test ends) first stops 1 ms short of the TTL, where `stillThere`
     * must hold, then jumps past it. Server clocks: `check` is polled until it passes.
     */
    const ttls = (serverClock: boolean): { short: number; expire: (ttl: number, check: () => Promise<void>, stillThere?: () => Promise<void>) => Promise<void> } => {
      if (serverClock) {
        return {
          short: 80,
          expire: (_ttl, check) => vi.waitFor(check, { timeout: SERVER_EXPIRY_WAIT_MS, interval: 10 }),
        };
      }
      const clock = testClock();
      return {
        // Long enough that Keyv's own expiry check (real time) cannot end it during the test.
        short: 5_000,
        async expire(ttl, check, stillThere) {
          clock.advance(ttl - 1);
          await stillThere?.();
          clock.advance(2);
          await check();
        },
      };
    };

    it('get / set / delete round-trip JSON, with TTLs', async () => {
      const { a, b, serverClock } = pair();
      const { short: ttl, expire } = ttls(serverClock);
      const key = k('rt');
      expect(await a.get(key)).toBeUndefined();
      await a.set(key, { n: 1, s: 'x', l: [true, null] });
      expect(await b.get(key)).toEqual({ n: 1, s: 'x', l: [true, null] });
      expect(await b.delete(key)).toBe(true);
      expect(await a.get(key)).toBeUndefined();
      expect(await a.delete(key)).toBe(false);
      const short = k('short');
      await a.set(short, 'v', ttl);
      expect(await b.get(short)).toBe('v');
      await expire(
        ttl,
        async () => expect(await b.get(short)).toBeUndefined(),
        async () => expect(await b.get(short)).toBe('v'),
      );
      const zero = k('zero');
      await a.set(zero, 'v', 0); // a TTL of 0 is 1 ms, never "keep forever"
      await expire(1, async () => expect(await a.get(zero)).toBeUndefined());
    });

    it('versions change on every write, and getVersioned agrees across connections', async () => {
      const { a, b } = pair();
      const key = k('ver');
      expect(await a.getVersioned(key)).toBeUndefined();
      await a.set(key, { g: 1 });
      const v1 = await a.getVersioned<{ g: number }>(key);
      expect(v1?.value).toEqual({ g: 1 });
      expect(typeof v1?.version).toBe('string');
      expect((await b.getVersioned(key))?.version).toBe(v1?.version);
      await b.set(key, { g: 2 });
      const v2 = await a.getVersioned(key);
      expect(v2?.version).not.toBe(v1?.version);
    });

    it('setIfAbsent stores only when absent or expired', async () => {
      const { a, b, serverClock } = pair();
      const { short: ttl, expire } = ttls(serverClock);
      const key = k('nx');
      expect(await a.setIfAbsent(key, 'one', ttl)).toBe(true);
      expect(await b.setIfAbsent(key, 'two', ttl)).toBe(false);
      expect(await b.get(key)).toBe('one');
      await expire(
        ttl,
        async () => expect(await b.get(key)).toBeUndefined(),
        async () => expect(await b.setIfAbsent(key, 'two', ttl)).toBe(false),
      );
      expect(await b.setIfAbsent(key, 'three')).toBe(true);
      expect(await a.get(key)).toBe('three');
    });

    it('compareAndSet writes only over the expected version (null: only when absent)', async () => {
      const { a, b, serverClock } = pair();
      const { short: ttl, expire } = ttls(serverClock);
      const key = k('cas');
      expect(await a.compareAndSet(key, null, { g: 1 })).toBe(true);
      expect(await b.compareAndSet(key, null, { g: 9 })).toBe(false);
      const v1 = (await a.getVersioned(key))!.version;
      expect(await b.compareAndSet(key, v1, { g: 2 })).toBe(true);
      expect(await a.compareAndSet(key, v1, { g: 3 })).toBe(false); // stale version: refused
      expect(await a.get(key)).toEqual({ g: 2 });
      expect(await a.compareAndSet(key, 'no-such-version', { g: 4 })).toBe(false);
      await a.delete(key);
      expect(await a.compareAndSet(key, v1, { g: 5 })).toBe(false); // gone: only null matches
      expect(await a.compareAndSet(key, null, { g: 6 }, ttl)).toBe(true);
      await expire(
        ttl,
        async () => expect(await a.get(key)).toBeUndefined(),
        async () => expect(await a.compareAndSet(key, null, { g: 8 })).toBe(false),
      );
      expect(await a.compareAndSet(key, null, { g: 7 })).toBe(true); // expired counts as absent
    });

    it('a plain set changes the version, so a compare-and-set on the old one fails', async () => {
      const { a, b } = pair();
      const key = k('cas-set');
      await a.set(key, { g: 1 });
      const v = (await a.getVersioned(key))!.version;
      await b.set(key, { g: 1 }); // same value, new write
      const after = (await a.getVersioned(key))!.version;
      // Atomic stores version every write; a Keyv store versions by content, so an identical rewrite keeps it.
      if (a.atomic) {
        expect(after).not.toBe(v);
        expect(await a.compareAndSet(key, v, { g: 2 })).toBe(false);
      } else expect(after).toBe(v);
    });

    it('deleteIfOwner deletes only the owner\'s value', async () => {
      const { a, b, plain } = pair();
      const key = k('lease');
      expect(await plain.setIfAbsent(key, 'owner-a', 10_000)).toBe(true);
      expect(await b.deleteIfOwner(key, 'owner-b')).toBe(false);
      expect(await plain.get(key)).toBe('owner-a');
      expect(await b.deleteIfOwner(key, 'owner-a')).toBe(true);
      expect(await plain.get(key)).toBeUndefined();
      expect(await a.deleteIfOwner(key, 'owner-a')).toBe(false);
    });

    it('consume returns the value once and removes it', async () => {
      const { a, b } = pair();
      const key = k('consume');
      await a.set(key, { once: true }, 10_000);
      expect(await b.consume(key)).toEqual({ once: true });
      expect(await a.consume(key)).toBeUndefined();
      expect(await a.get(key)).toBeUndefined();
    });

    it('index: add, re-add, expire, remove, order and limit', async () => {
      const { a, b, serverClock } = pair();
      const { short: ttl, expire } = ttls(serverClock);
      const key = k('index');
      expect(await a.indexMembers(key)).toEqual([]);
      await a.indexAdd(key, 'forever');
      await a.indexAdd(key, 'short', ttl);
      await b.indexAdd(key, 'long', 60_000);
      await b.indexAdd(key, 'longer', 120_000);
      expect(await b.indexMembers(key)).toEqual(['short', 'long', 'longer', 'forever']);
      expect(await a.indexMembers(key, 2)).toEqual(['longer', 'forever']);
      await a.indexAdd(key, 'long', 60_000); // re-add: one member
      expect((await b.indexMembers(key)).filter((m) => m === 'long')).toHaveLength(1);
      await expire(
        ttl,
        async () => expect(await a.indexMembers(key)).toEqual(['long', 'longer', 'forever']),
        async () => expect(await a.indexMembers(key)).toEqual(['short', 'long', 'longer', 'forever']),
      );
      expect(await b.indexRemove(key, 'long')).toBe(true);
      expect(await b.indexRemove(key, 'long')).toBe(false);
      expect(await a.indexMembers(key)).toEqual(['longer', 'forever']);
      // members are arbitrary strings, not patterns
      await a.indexAdd(key, 'a:b* ?%\u00e9');
      expect(await a.indexMembers(key)).toContain('a:b* ?%\u00e9');
    });

    it('concurrent index additions from two connections lose no member', async () => {
      const { a, b, exact } = pair();
      const key = k('index-race');
      const n = 60;
      await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? a : b).indexAdd(key, `m${i}`)));
      const members = await a.indexMembers(key);
      if (exact) expect(members.length).toBe(n);
      else expect(members.length).toBeGreaterThan(0);
    });

    it('under concurrency exactly one caller wins setIfAbsent, compareAndSet and consume', async () => {
      const { a, b, exact } = pair();
      const n = 24;
      const who = (i: number): Store => (i % 2 === 0 ? a : b);
      for (let round = 0; round < 5; round++) {
        const nx = k(`nx-race-${round}`);
        const wins = await Promise.all(Array.from({ length: n }, (_, i) => who(i).setIfAbsent(nx, `o${i}`, 10_000)));
        const cas = k(`cas-race-${round}`);
        await a.set(cas, { g: 0 });
        const v = (await a.getVersioned(cas))!.version;
        const casWins = await Promise.all(Array.from({ length: n }, (_, i) => who(i).compareAndSet(cas, v, { g: i + 1 })));
        const once = k(`consume-race-${round}`);
        await a.set(once, 'token', 10_000);
        const got = await Promise.all(Array.from({ length: n }, (_, i) => who(i).consume(once)));
        if (exact || a === b) {
          expect(wins.filter(Boolean)).toHaveLength(1);
          expect(casWins.filter(Boolean)).toHaveLength(1);
          expect(got.filter((x) => x !== undefined)).toHaveLength(1);
        } else {
          expect(wins.filter(Boolean).length).toBeGreaterThanOrEqual(1);
        }
      }
    });

    it('values are stored whole: nested objects, unicode, large strings', async () => {
      const { a, b } = pair();
      const key = k('whole');
      const value = { s: '\u00e9\u4e2d\u{1F600}', big: 'x'.repeat(100_000), deep: { a: [1, { b: [2, 3] }] } };
      expect(await a.compareAndSet(key, null, value, 60_000)).toBe(true);
      expect(await b.get(key)).toEqual(value);
      expect((await b.getVersioned(key))?.value).toEqual(value);
      expect(await b.consume(key)).toEqual(value);
    });
  });
}
