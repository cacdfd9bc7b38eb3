import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEncryptor, generateEncryptionKey, type Encryptor } from '../../src/stores/encryption.js';
import { fromBase64Url, toBase64Url } from '../../src/lib/encoding.js';

const AAD = 'agent-iam:v1:account:github:user:alice';

/** Flip one bit of byte `index` (negative: from the end) of a base64url string. */
function flip(b64: string, index: number): string {
  const bytes = fromBase64Url(b64);
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = (bytes[i] as number) ^ 0x01;
  return toBase64Url(bytes);
}

async function expectStoreError(p: Promise<unknown>, reason: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503, reason });
}

describe('createEncryptor', () => {
  it('round-trips text, including empty and non-ASCII strings', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    for (const text of ['', 'refresh-token-123', '{"a":"b"}', 'emoji 🔐 and ümlauts', 'x'.repeat(100_000)]) {
      const sealed = await enc.encrypt(text, AAD);
      expect(sealed).not.toContain(text === '' ? '\u0000' : text.slice(0, 50));
      expect(await enc.decrypt(sealed, AAD)).toBe(text);
    }
  });

  it('round-trips any well-formed string under any AAD, and only under that AAD (property)', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 64 }), fc.string({ unit: 'grapheme', maxLength: 32 }), fc.string({ unit: 'grapheme', maxLength: 32 }), async (text, aad, other) => {
        const sealed = await enc.encrypt(text, aad);
        expect(await enc.decrypt(sealed, aad)).toBe(text);
        if (other !== aad) await expect(enc.decrypt(sealed, other)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      }),
      { numRuns: 200 },
    );
  });

  it('refuses strings that TextEncoder would alter (lone surrogates) instead of encrypting them lossily', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    await expectStoreError(enc.encrypt('a\uD800b', AAD), 'not_serializable');
    await expectStoreError(enc.encrypt('x', 'key-\uDC00'), 'not_serializable');
    const sealed = await enc.encrypt('x', 'key-\uFFFD');
    await expectStoreError(enc.decrypt(sealed, 'key-\uD800'), 'malformed');
    // JSON.stringify escapes lone surrogates, so the secure store never meets them.
    expect(await enc.decrypt(await enc.encrypt(JSON.stringify('a\uD800b'), AAD), AAD)).toBe('"a\\ud800b"');
  });

  it('uses a fresh random IV each time', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    const a = await enc.encrypt('same', AAD);
    const b = await enc.encrypt('same', AAD);
    expect(a).not.toBe(b);
    expect(a.split('.')[2]).not.toBe(b.split('.')[2]);
    expect(fromBase64Url(a.split('.')[2] as string)).toHaveLength(12);
  });

  it('binds the ciphertext to the AAD (a record moved to another key fails)', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    const sealed = await enc.encrypt('secret', AAD);
    await expectStoreError(enc.decrypt(sealed, 'agent-iam:v1:account:github:user:mallory'), 'undecryptable');
    await expectStoreError(enc.decrypt(sealed, ''), 'undecryptable');
  });

  it('rejects a flipped byte in the ciphertext, the IV, the tag, and a changed key id', async () => {
    const other = generateEncryptionKey();
    const enc = await createEncryptor([generateEncryptionKey(), other]);
    const sealed = await enc.encrypt('a secret value that spans more than one block', AAD);
    const [v, kid, iv, ct] = sealed.split('.') as [string, string, string, string];
    await expectStoreError(enc.decrypt([v, kid, iv, flip(ct, 0)].join('.'), AAD), 'undecryptable');
    await expectStoreError(enc.decrypt([v, kid, flip(iv, 5), ct].join('.'), AAD), 'undecryptable');
    await expectStoreError(enc.decrypt([v, kid, iv, flip(ct, -1)].join('.'), AAD), 'undecryptable'); // tag
    // The other configured key: the id is authenticated and the key differs.
    await expectStoreError(enc.decrypt([v, enc.keyIds[1], iv, ct].join('.'), AAD), 'undecryptable');
    // An id that is not configured.
    await expectStoreError(enc.decrypt([v, 'deadbeef', iv, ct].join('.'), AAD), 'unknown_key');
    // And the original still decrypts.
    expect(await enc.decrypt(sealed, AAD)).toBe('a secret value that spans more than one block');
  });

  it('rejects truncated and garbled ciphertexts with a typed error, never a crash', async () => {
    const enc = await createEncryptor(generateEncryptionKey());
    const sealed = await enc.encrypt('secret', AAD);
    const [v, kid, iv, ct] = sealed.split('.') as [string, string, string, string];
    const cases: Array<[string, string]> = [
      [sealed.slice(0, sealed.length - 3), 'undecryptable'],
      [[v, kid, iv, ct.slice(0, 10)].join('.'), 'malformed'], // shorter than a tag
      [[v, kid, iv].join('.'), 'malformed'],
      [[v, kid, iv.slice(0, 8), ct].join('.'), 'malformed'],
      [['v2', kid, iv, ct].join('.'), 'malformed'],
      [[v, kid, iv, ct + '*'].join('.'), 'malformed'],
      [[v, 'bad kid', iv, ct].join('.'), 'malformed'],
      ['', 'malformed'],
      ['not a record at all', 'malformed'],
    ];
    for (const [text, reason] of cases) await expectStoreError(enc.decrypt(text, AAD), reason);
    await expectStoreError(enc.decrypt(undefined as unknown as string, AAD), 'malformed');
  });

  it('never puts the plaintext or the key into an error', async () => {
    const key = generateEncryptionKey();
    const enc = await createEncryptor(key);
    const sealed = await enc.encrypt('top-secret-token', AAD);
    const err = await enc.decrypt(sealed, 'other').catch((e: unknown) => e);
    const dump = JSON.stringify(err) + String(err) + JSON.stringify(Object.entries(err as object));
    expect(dump).not.toContain('top-secret-token');
    expect(dump).not.toContain(key);
    expect(dump).not.toContain(sealed);
  });

  it('rotates: old records stay readable once a new key is added, new writes use the new key', async () => {
    const oldKey = generateEncryptionKey();
    const newKey = generateEncryptionKey();
    const before = await createEncryptor(oldKey);
    const oldRecord = await before.encrypt('old', AAD);

    const after = await createEncryptor([newKey, oldKey]);
    expect(after.keyIds).toEqual([(await createEncryptor(newKey)).keyIds[0], before.keyIds[0]]);
    expect(await after.decrypt(oldRecord, AAD)).toBe('old');
    const newRecord = await after.encrypt('new', AAD);
    expect(newRecord.split('.')[1]).toBe(after.keyIds[0]);

    // Readers that do not have the new key yet fail loudly (unknown key), not silently.
    await expectStoreError(before.decrypt(newRecord, AAD), 'unknown_key');
    // Once the old key is retired, its records are unknown.
    const retired = await createEncryptor(newKey);
    await expectStoreError(retired.decrypt(oldRecord, AAD), 'unknown_key');
    expect(await retired.decrypt(newRecord, AAD)).toBe('new');
  });

  it('derives the key id from SHA-256 of the raw key, or takes the given id', async () => {
    const raw = randomBytes(32);
    const b64url = toBase64Url(raw);
    const expected = createHash('sha256').update(raw).digest('hex').slice(0, 8);
    expect((await createEncryptor(b64url)).keyIds).toEqual([expected]);
    // Standard base64, with and without padding, is the same key.
    const b64 = raw.toString('base64');
    expect((await createEncryptor(b64)).keyIds).toEqual([expected]);
    expect((await createEncryptor(b64.replace(/=$/, ''))).keyIds).toEqual([expected]);
    const named = await createEncryptor({ id: 'prod-2025', key: b64url });
    expect(named.keyIds).toEqual(['prod-2025']);
    expect((await named.encrypt('x', AAD)).split('.')[1]).toBe('prod-2025');
  });

  it('accepts CryptoKeys: with an id synchronously, extractable without an id, and interoperates with string keys', async () => {
    const raw = randomBytes(32);
    const extractable = await crypto.subtle.importKey('raw', raw, 'AES-GCM', true, ['encrypt', 'decrypt']);
    const fixed = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    const fromString = await createEncryptor(toBase64Url(raw));
    const bare = createEncryptor(extractable);
    expect(bare).toBeInstanceOf(Promise);
    const fromBare = await bare;
    expect(fromBare.keyIds).toEqual(fromString.keyIds);
    const withId = createEncryptor({ id: fromString.keyIds[0] as string, key: fixed });
    expect(withId).not.toBeInstanceOf(Promise);
    const sealed = await fromString.encrypt('interop', AAD);
    expect(await fromBare.decrypt(sealed, AAD)).toBe('interop');
    expect(await (withId as Encryptor).decrypt(sealed, AAD)).toBe('interop');
    // A non-extractable key needs an id.
    await expect(createEncryptor(fixed)).rejects.toMatchObject({ code: 'CONFIG_INVALID', field: 'encryptionKey' });
  });

  it('is synchronous for string keys, so configuration errors surface at construction', () => {
    const enc = createEncryptor([generateEncryptionKey(), generateEncryptionKey()]);
    expect(enc).not.toBeInstanceOf(Promise);
    expect((enc as Encryptor).keyIds).toHaveLength(2);
    expect(() => createEncryptor('nope')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('rejects anything but 32 random bytes, naming the field and never echoing the key', async () => {
    const good = generateEncryptionKey();
    const bad: unknown[] = [
      '',
      'password',
      toBase64Url(randomBytes(16)),
      toBase64Url(randomBytes(31)),
      toBase64Url(randomBytes(33)),
      randomBytes(32).toString('hex'),
      ` ${good}`,
      `${good}\n`,
      toBase64Url(new Uint8Array(32)),
      good.slice(0, 42) + '_', // non-canonical last character
      42,
      null,
      [],
      { id: 'x' },
      { key: good },
      { id: 'has space', key: good },
      { id: 'x', key: good, extra: 1 },
    ];
    for (const value of bad) {
      let err: unknown;
      try {
        await createEncryptor(value as string);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(value)).toMatchObject({ code: 'CONFIG_INVALID' });
      const e = err as { message: string; field: string };
      expect(e.field.startsWith('encryptionKey')).toBe(true);
      if (typeof value === 'string' && value.length > 8) expect(e.message).not.toContain(value.trim());
    }
    const hmac = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
    const aes128 = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['encrypt', 'decrypt']);
    const encryptOnly = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt']);
    for (const key of [hmac, aes128, encryptOnly]) {
      expect(() => createEncryptor({ id: 'k', key })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'encryptionKey.key' }));
    }
  });

  it('names the list entry in errors and refuses duplicate ids', () => {
    const good = generateEncryptionKey();
    expect(() => createEncryptor([good, 'bad'])).toThrow(expect.objectContaining({ field: 'encryptionKey.1' }));
    expect(() => createEncryptor([good, good])).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'encryptionKey.1' }));
    expect(() => createEncryptor([])).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => createEncryptor(good, { field: 'tokens.encryptionKey' })).not.toThrow();
    expect(() => createEncryptor('bad', { field: 'tokens.encryptionKey' })).toThrow(expect.objectContaining({ field: 'tokens.encryptionKey' }));
  });

  it('does not expose key material on the encryptor', async () => {
    const key = generateEncryptionKey();
    const enc = await createEncryptor(key);
    expect(Object.keys(enc).sort()).toEqual(['decrypt', 'encrypt', 'keyIds']);
    expect(JSON.stringify(enc)).not.toContain(key);
  });

  it('generateEncryptionKey returns distinct 43-character base64url keys', () => {
    const keys = new Set(Array.from({ length: 50 }, () => generateEncryptionKey()));
    expect(keys.size).toBe(50);
    for (const k of keys) {
      expect(k).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(fromBase64Url(k)).toHaveLength(32);
    }
  });
});
