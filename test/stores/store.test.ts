import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import Keyv from 'keyv';
import { describe, expect, it, vi } from 'vitest';
import { AgentIamError } from '../../src/errors.js';
import { createKeyValueStore, KEY_PREFIX, storeKey, type KeyValueStore, type Store } from '../../src/stores/store.js';
import { MemoryAdapter } from '../../src/stores/memory-store.js';
import { testClock } from '../helpers/clock.js';

/** A Keyv storage adapter whose behaviour each test chooses; counts clear() calls. */
class ScriptedAdapter extends EventEmitter {
  namespace?: string;
  clears = 0;
  readonly map = new Map<string, unknown>();
  mode: 'ok' | 'hang' | 'throw' | 'emit-and-swallow' = 'ok';

  private act<T>(fn: () => T): Promise<T> {
    switch (this.mode) {
      case 'hang':
        return new Promise<T>(() => {});
      case 'throw':
        return Promise.reject(new Error('ECONNREFUSED 127.0.0.1:6379 password=hunter2'));
      case 'emit-and-swallow':
        // What an adapter without a throw option does: report on the emitter, answer "nothing".
        this.emit('error', new Error('connection lost'));
        return Promise.resolve(undefined as T);
      default:
        return Promise.resolve(fn());
    }
  }
  get(key: string): Promise<unknown> {
    return this.act(() => this.map.get(key));
  }
  set(key: string, value: unknown): Promise<boolean> {
    return this.act(() => (this.map.set(key, value), true));
  }
  delete(key: string): Promise<boolean> {
    return this.act(() => this.map.delete(key));
  }
  clear(): Promise<void> {
    this.clears++;
    this.map.clear();
    return Promise.resolve();
  }
}

async function expectUnavailable(p: Promise<unknown>, reason: string): Promise<AgentIamError> {
  const err = await p.then(
    () => {
      throw new Error('expected STORE_UNAVAILABLE, got a value');
    },
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503, reason });
  return err as AgentIamError;
}

describe('storeKey', () => {
  it('prefixes and percent-encodes each component', () => {
    expect(storeKey('account', 'github', 'user:1')).toBe(`${KEY_PREFIX}:account:github:user%3A1`);
    expect(storeKey()).toBe(KEY_PREFIX);
  });

  it("keeps ('a:b', 'c') and ('a', 'b:c') apart, and every other split", () => {
    expect(storeKey('a:b', 'c')).not.toBe(storeKey('a', 'b:c'));
    expect(storeKey('a', '')).not.toBe(storeKey('a'));
    expect(storeKey('', 'a')).not.toBe(storeKey('a', ''));
    expect(storeKey('a%3Ab')).not.toBe(storeKey('a:b'));
  });

  it('is injective over arbitrary component lists (property)', () => {
    const part = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom(':', '%', '%h', '%u', '::', 'a:b', '\uD800', '\uDC00x'));
    fc.assert(
      fc.property(fc.array(part, { maxLength: 4 }), fc.array(part, { maxLength: 4 }), (a, b) => {
        const same = a.length === b.length && a.every((x, i) => x === b[i]);
        return (storeKey(...a) === storeKey(...b)) === same;
      }),
      { numRuns: 3000 },
    );
  });

  it('encodes lone surrogates instead of throwing, without merging them with U+FFFD', () => {
    expect(() => storeKey('user', '\uD800')).not.toThrow();
    expect(storeKey('\uD800')).not.toBe(storeKey('\uFFFD'));
    expect(storeKey('\uD800')).not.toBe(storeKey('\uDC00'));
    expect(storeKey('\uD800')).not.toBe(storeKey('%uD800'));
    expect(storeKey('😀')).toBe(`${KEY_PREFIX}:${encodeURIComponent('😀')}`);
  });

  it('hashes over-long components so keys fit a 255-character key column', () => {
    const long = 'x'.repeat(5000);
    const key = storeKey('account', 'c'.repeat(300), 'user', long);
    expect(key.length).toBeLessThan(200);
    expect(storeKey('user', long)).not.toBe(storeKey('user', long + 'y'));
    expect(storeKey('user', long)).toBe(storeKey('user', long));
    // A short component that looks like the hashed form cannot meet it: '%' is always encoded.
    const hashed = storeKey(long).split(':').pop() as string;
    expect(hashed.startsWith('%h')).toBe(true);
    expect(storeKey(hashed)).not.toBe(storeKey(long));
    // 64 encoded characters are kept as they are.
    expect(storeKey('a'.repeat(64))).toBe(`${KEY_PREFIX}:${'a'.repeat(64)}`);
  });
});

describe('createKeyValueStore', () => {
  it('round-trips JSON values over the default in-memory Keyv, with TTL', async () => {
    const clock = testClock();
    const store = createKeyValueStore();
    await store.set('k', { a: 1, b: ['x'] });
    expect(await store.get('k')).toEqual({ a: 1, b: ['x'] });
    expect(await store.get('missing')).toBeUndefined();
    await store.set('short', 1, 30);
    clock.advance(29);
    expect(await store.get('short')).toBe(1);
    clock.advance(31);
    expect(await store.get('short')).toBeUndefined();
    expect(await store.delete('k')).toBe(true);
    expect(await store.get('k')).toBeUndefined();
  });

  it('never turns a zero or negative TTL into "keep forever", and rounds fractions up', async () => {
    const clock = testClock();
    const store = createKeyValueStore();
    await store.set('zero', 1, 0);
    await store.set('negative', 1, -5000);
    await store.set('nan', 1, Number.NaN);
    await store.set('forever', 1, Number.POSITIVE_INFINITY);
    await store.set('fraction', 1, 0.4);
    clock.advance(10);
    expect(await store.get('zero')).toBeUndefined();
    expect(await store.get('negative')).toBeUndefined();
    expect(await store.get('nan')).toBeUndefined();
    expect(await store.get('fraction')).toBeUndefined();
    expect(await store.get('forever')).toBe(1);
  });

  it('does not let expired entries pile up in the memory adapter', async () => {
    const clock = testClock();
    const adapter = new MemoryAdapter();
    const store = createKeyValueStore(new Keyv({ store: adapter }));
    await store.set('kept', 'yes');
    for (let i = 0; i < 3000; i++) await store.set(`state:${i}`, { i }, 1);
    clock.advance(5);
    for (let i = 0; i < 3000; i++) await store.set(`later:${i}`, { i }, 60_000);
    // Without sweeping the adapter would hold 6001 entries; the expired 3000 are gone.
    expect(adapter.size).toBeLessThanOrEqual(3001);
    expect(await store.get('kept')).toBe('yes');
    expect(await store.get('later:2999')).toEqual({ i: 2999 });
    expect(await store.get('state:0')).toBeUndefined();
  });

  it('bounds every call with the timeout when the adapter hangs', async () => {
    const adapter = new ScriptedAdapter();
    const store = createKeyValueStore(new Keyv({ store: adapter }), { timeoutMs: 100 });
    adapter.mode = 'hang';
    // The timeout is a timer: fake timers (this test only, nothing here does I/O) show that every
    // call ends exactly when it runs out, not before, and not on some later timer.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const outcomes: unknown[] = [];
      const calls = [store.get('k'), store.set('k', 1), store.delete('k')].map((p) =>
        p.then(
          () => void outcomes.push('resolved'),
          (e: unknown) => void outcomes.push(e),
        ),
      );
      await vi.advanceTimersByTimeAsync(99);
      expect(outcomes).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(outcomes).toHaveLength(3);
      await Promise.all(calls);
      for (const e of outcomes) expect(e).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503, reason: 'timeout' });
    } finally {
      vi.useRealTimers();
    }
    adapter.mode = 'ok';
    await store.set('k', 2);
    expect(await store.get('k')).toBe(2);
  });

  it('takes back a setIfAbsent of a string that lands after its caller got the timeout (no lease held by nobody)', async () => {
    // A contract store whose setIfAbsent answers late but still stores: a frozen server that runs
    // the command when it wakes.
    const inner = createKeyValueStore();
    const released: Array<[string, string]> = [];
    const slow = Object.create(inner) as Store;
    // Each setIfAbsent waits until the test lets it land (`land()`), which resolves once the store's
    // answer has been handled.
    let land: () => Promise<void> = () => Promise.reject(new Error('no setIfAbsent waiting'));
    slow.setIfAbsent = (key, value, ttl) => {
      let wake!: () => void;
      const answer = new Promise<void>((r) => (wake = r)).then(() => inner.setIfAbsent(key, value, ttl));
      land = async () => {
        wake();
        await answer;
        await new Promise((r) => setImmediate(r)); // the late answer's handling has run
      };
      return answer;
    };
    slow.deleteIfOwner = (key, owner) => (released.push([key, owner]), inner.deleteIfOwner(key, owner));
    const store = createKeyValueStore(slow, { timeoutMs: 40 });

    await expectUnavailable(store.setIfAbsent('lease:a', 'owner-1', 60_000), 'timeout');
    expect(released).toEqual([]);
    await land();
    expect(released).toEqual([['lease:a', 'owner-1']]);
    expect(await inner.get('lease:a')).toBeUndefined(); // landed, then taken back

    // Held by someone else when it lands: stored nothing, so nothing is taken back.
    await inner.set('lease:b', 'owner-2', 60_000);
    await expectUnavailable(store.setIfAbsent('lease:b', 'owner-3', 60_000), 'timeout');
    await land();
    expect(released).toHaveLength(1);
    expect(await inner.get('lease:b')).toBe('owner-2');

    // Not a string (an OAuth state record): left to its TTL, never deleted blindly.
    await expectUnavailable(store.setIfAbsent('state:c', { pkce: 'x' }, 60_000), 'timeout');
    await land();
    expect(released).toHaveLength(1);
    expect(await inner.get('state:c')).toEqual({ pkce: 'x' });

    // Answered in time: the caller holds it.
    const fast = createKeyValueStore(slow, { timeoutMs: 1000 });
    const held = fast.setIfAbsent('lease:d', 'owner-4', 60_000);
    await land();
    expect(await held).toBe(true);
    expect(released).toHaveLength(1);
    expect(await inner.get('lease:d')).toBe('owner-4');
  });

  it('turns adapter errors into STORE_UNAVAILABLE, never undefined/false (Keyv swallows them by default)', async () => {
    const adapter = new ScriptedAdapter();
    const keyv = new Keyv({ store: adapter });
    expect(keyv.throwOnErrors).toBe(false);
    // The trap this guards against: plain Keyv turns a dead adapter into "no value".
    adapter.mode = 'throw';
    keyv.on('error', () => {});
    expect(await keyv.get('k')).toBeUndefined();

    const store = createKeyValueStore(keyv, { timeoutMs: 1000 });
    const err = await expectUnavailable(store.get('k'), 'error');
    await expectUnavailable(store.set('k', 1), 'error');
    await expectUnavailable(store.delete('k'), 'error');
    // The adapter's message (which could hold a connection string) is not in the error's message or JSON.
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify(err)).not.toContain('hunter2');
    expect(Object.keys(err)).not.toContain('cause');
  });

  it('catches adapters that emit error and answer "nothing"', async () => {
    const adapter = new ScriptedAdapter();
    const store = createKeyValueStore(new Keyv({ store: adapter }), { timeoutMs: 1000 });
    await store.set('k', 'v');
    adapter.mode = 'emit-and-swallow';
    await expectUnavailable(store.get('k'), 'error');
    await expectUnavailable(store.set('k', 'w'), 'error');
    await expectUnavailable(store.delete('k'), 'error');
    adapter.mode = 'ok';
    expect(await store.get('k')).toBe('v');
    expect(await store.get('nothing-here')).toBeUndefined();
  });

  it("does not crash the process on an adapter 'error' event with no other listener", async () => {
    const adapter = new ScriptedAdapter();
    const keyv = new Keyv({ store: adapter });
    createKeyValueStore(keyv);
    expect(() => adapter.emit('error', new Error('boom'))).not.toThrow();
    expect(() => keyv.emit('error', new Error('boom'))).not.toThrow();
  });

  it('adds one error listener per Keyv, however many wrappers', () => {
    const keyv = new Keyv();
    const before = keyv.listeners('error').length;
    for (let i = 0; i < 20; i++) createKeyValueStore(keyv);
    expect(keyv.listeners('error').length).toBe(before + 1);
  });

  it('never calls clear()', async () => {
    const adapter = new ScriptedAdapter();
    const store = createKeyValueStore(new Keyv({ store: adapter }));
    await store.set('a', 1);
    await store.get('a');
    await store.delete('a');
    adapter.mode = 'throw';
    await store.get('a').catch(() => {});
    expect(adapter.clears).toBe(0);
  });

  it('wraps plain KeyValueStore objects too, and lets AgentIamErrors through', async () => {
    const typed = new AgentIamError('STORE_UNAVAILABLE', 'Stored record cannot be decrypted', { reason: 'undecryptable' });
    const inner: KeyValueStore = {
      get: () => Promise.reject(typed),
      set: () => Promise.reject(new TypeError('socket hang up')),
      delete: () => new Promise(() => {}),
    };
    const store = createKeyValueStore(inner, { timeoutMs: 50 });
    await expect(store.get('k')).rejects.toBe(typed);
    await expectUnavailable(store.set('k', 1), 'error');
    await expectUnavailable(store.delete('k'), 'timeout');
  });

  it('validates its options at construction', () => {
    expect(() => createKeyValueStore(undefined, { timeoutMs: -1 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'store.timeoutMs' }));
    expect(() => createKeyValueStore({} as KeyValueStore)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'store' }));
  });
});
