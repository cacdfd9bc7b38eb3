import Keyv from 'keyv';
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../src/lib/encoding.js';
import { createEncryptor, generateEncryptionKey, type Encryptor } from '../../src/stores/encryption.js';
import { createSecureStore, type EncryptedRecord } from '../../src/stores/secure-store.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../../src/stores/store.js';
import { testClock } from '../helpers/clock.js';

const SECRET = 'gho_SuperSecretRefreshToken_0123456789';
const account = { accessToken: SECRET, refreshToken: `${SECRET}-refresh`, scopes: ['repo'], generation: 3 };

function flip(b64: string, index: number): string {
  const bytes = fromBase64Url(b64);
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = (bytes[i] as number) ^ 0x80;
  return toBase64Url(bytes);
}

async function setup(keys: string | string[] = generateEncryptionKey()): Promise<{
  map: Map<string, unknown>;
  keyv: Keyv;
  inner: KeyValueStore;
  store: KeyValueStore;
  enc: Encryptor;
}> {
  const map = new Map<string, unknown>();
  const keyv = new Keyv({ store: map });
  const inner = createKeyValueStore(keyv, { timeoutMs: 1000 });
  const enc = await createEncryptor(keys);
  return { map, keyv, inner, store: createSecureStore(inner, enc), enc };
}

async function expectStoreError(p: Promise<unknown>, reason: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', reason });
}

describe('createSecureStore with an encryptor (memory Keyv)', () => {
  it('round-trips JSON values and returns undefined only for missing keys', async () => {
    const { store } = await setup();
    const key = storeKey('account', 'github', 'user', 'alice');
    await store.set(key, account);
    expect(await store.get(key)).toEqual(account);
    for (const v of [0, '', false, null, [], 'text', { nested: { a: [1, 2] } }]) {
      await store.set(key, v);
      expect(await store.get(key)).toEqual(v);
    }
    expect(await store.get(storeKey('nothing'))).toBeUndefined();
    expect(await store.delete(key)).toBe(true);
    expect(await store.get(key)).toBeUndefined();
  });

  it('keeps the TTL', async () => {
    // Over the in-memory store, whose TTLs read the test clock (Keyv over a Map keeps real time).
    const clock = testClock();
    const store = createSecureStore(createKeyValueStore(), await createEncryptor(generateEncryptionKey()));
    await store.set('k', { a: 1 }, 30);
    expect(await store.get('k')).toEqual({ a: 1 });
    clock.advance(29);
    expect(await store.get('k')).toEqual({ a: 1 });
    clock.advance(2);
    expect(await store.get('k')).toBeUndefined();
  });

  it('stores { v, alg, kid, iv, ct } and no plaintext', async () => {
    const { store, inner, map, enc } = await setup();
    const key = storeKey('account', 'github', 'user', 'alice');
    await store.set(key, account);
    const record = await inner.get<EncryptedRecord>(key);
    expect(Object.keys(record ?? {}).sort()).toEqual(['alg', 'ct', 'iv', 'kid', 'v']);
    expect(record).toMatchObject({ v: 1, alg: 'A256GCM', kid: enc.keyIds[0] });
    const raw = JSON.stringify([...map.entries()]);
    expect(raw).not.toContain(SECRET);
    expect(raw).not.toContain('refreshToken');
    expect(raw).not.toContain(toBase64Url(new TextEncoder().encode(SECRET)).slice(0, 20));
  });

  it('binds each record to its key: a record copied to another key does not decrypt', async () => {
    const { store, inner } = await setup();
    await store.set(storeKey('account', 'github', 'user', 'alice'), account);
    const record = await inner.get(storeKey('account', 'github', 'user', 'alice'));
    await inner.set(storeKey('account', 'github', 'user', 'mallory'), record);
    await expectStoreError(store.get(storeKey('account', 'github', 'user', 'mallory')), 'undecryptable');
  });

  it('refuses tampered records (ct, iv, tag, kid) with a typed error, never undefined', async () => {
    const { store, inner, enc } = await setup([generateEncryptionKey(), generateEncryptionKey()]);
    await store.set('k', account);
    const good = (await inner.get<EncryptedRecord>('k')) as EncryptedRecord;
    const cases: Array<[Partial<EncryptedRecord> & Record<string, unknown>, string]> = [
      [{ ...good, ct: flip(good.ct, 3) }, 'undecryptable'],
      [{ ...good, iv: flip(good.iv, 0) }, 'undecryptable'],
      [{ ...good, ct: flip(good.ct, -2) }, 'undecryptable'],
      [{ ...good, kid: enc.keyIds[1] as string }, 'undecryptable'],
      [{ ...good, kid: 'ffffffff' }, 'unknown_key'],
      [{ ...good, kid: 'a.b' }, 'malformed'],
      [{ ...good, ct: good.ct.slice(0, 8) }, 'malformed'],
      [{ ...good, v: 2 as 1 }, 'malformed'],
      [{ ...good, iv: 42 as unknown as string }, 'malformed'],
    ];
    for (const [record, reason] of cases) {
      await inner.set('k', record);
      await expectStoreError(store.get('k'), reason);
    }
  });

  it('refuses records of the wrong shape and plain records', async () => {
    const { store, inner } = await setup();
    const cases: Array<[unknown, string]> = [
      ['a string', 'malformed'],
      [42, 'malformed'],
      [[1, 2], 'malformed'],
      [true, 'malformed'],
      [{}, 'not_encrypted'],
      [account, 'not_encrypted'],
      [{ v: 1, kid: 'x', iv: 'y' }, 'not_encrypted'],
    ];
    for (const [value, reason] of cases) {
      await inner.set('k', value);
      await expectStoreError(store.get('k'), reason);
    }
  });

  it('turns a truncated or garbled raw value into STORE_UNAVAILABLE, not a crash', async () => {
    const { store, map } = await setup();
    await store.set('k', account);
    const [rawKey, rawValue] = [...map.entries()][0] as [string, string];
    map.set(rawKey, rawValue.slice(0, Math.floor(rawValue.length / 2)));
    await expect(store.get('k')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    map.set(rawKey, '\u0000\u0001 not json');
    await expect(store.get('k')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('rotates: records written with the old key stay readable, new writes use the new key', async () => {
    const oldKey = generateEncryptionKey();
    const newKey = generateEncryptionKey();
    const { inner, store: before } = await setup(oldKey);
    await before.set('old', { t: 'old' });
    const after = createSecureStore(inner, await createEncryptor([newKey, oldKey]));
    expect(await after.get('old')).toEqual({ t: 'old' });
    await after.set('new', { t: 'new' });
    const newKid = (await createEncryptor(newKey)).keyIds[0];
    expect((await inner.get<EncryptedRecord>('new'))?.kid).toBe(newKid);
    // Re-writing an old record moves it to the new key.
    await after.set('old', await after.get('old'));
    expect((await inner.get<EncryptedRecord>('old'))?.kid).toBe(newKid);
    await expectStoreError(before.get('new'), 'unknown_key');
  });

  it('refuses values that are not JSON-serialisable before writing anything', async () => {
    const { store, map } = await setup();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expectStoreError(store.set('k', undefined), 'not_serializable');
    await expectStoreError(store.set('k', () => 1), 'not_serializable');
    await expectStoreError(store.set('k', circular), 'not_serializable');
    await expectStoreError(store.set('k', { n: 10n }), 'not_serializable');
    expect(map.size).toBe(0);
  });

  it('leaves a whole record when many writers race on one key', async () => {
    const { store } = await setup();
    const values = Array.from({ length: 100 }, (_, i) => ({ writer: i, blob: String(i).repeat(2000) }));
    await Promise.all(values.map((v) => store.set('race', v)));
    const got = await store.get<{ writer: number; blob: string }>('race');
    expect(got).toEqual(values[got?.writer ?? -1]);
  });

  it('passes store failures through as STORE_UNAVAILABLE', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    const never: KeyValueStore = { get: () => new Promise(() => {}), set: () => new Promise(() => {}), delete: () => new Promise(() => {}) };
    const hanging = createKeyValueStore(never, { timeoutMs: 50 });
    const store = createSecureStore(hanging, enc);
    await expectStoreError(store.get('k'), 'timeout');
    await expectStoreError(store.set('k', 1), 'timeout');
    await expectStoreError(store.delete('k'), 'timeout');
  });
});

describe('createSecureStore without an encryptor', () => {
  it('stores values as they are', async () => {
    const map = new Map<string, unknown>();
    const inner = createKeyValueStore(new Keyv({ store: map }));
    const store = createSecureStore(inner);
    await store.set('k', account);
    expect(await store.get('k')).toEqual(account);
    expect(await inner.get('k')).toEqual(account);
    expect(await store.get('missing')).toBeUndefined();
  });

  it('fails loudly on an encrypted record instead of handing it out as a value', async () => {
    const map = new Map<string, unknown>();
    const inner = createKeyValueStore(new Keyv({ store: map }));
    await createSecureStore(inner, await createEncryptor(generateEncryptionKey())).set('k', account);
    await expectStoreError(createSecureStore(inner).get('k'), 'encrypted');
  });
});

describe('createSecureStore configuration', () => {
  it('refuses a missing store and a not-awaited encryptor', async () => {
    const inner = createKeyValueStore();
    expect(() => createSecureStore(undefined as unknown as KeyValueStore)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'store' }));
    const pending = Promise.resolve(await createEncryptor(generateEncryptionKey()));
    expect(() => createSecureStore(inner, pending as unknown as Encryptor)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'encryptor' }));
  });
});
