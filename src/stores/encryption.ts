/**
 * Encryption at rest: AES-256-GCM over WebCrypto, with key ids so that keys can be rotated.
 *
 * @module
 */
import { z } from 'zod';
import { AgentIamError, configError, storeUnavailable } from '../errors.js';
import { fromBase64Url, toBase64Url, toHex } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { sha256Sync } from '../lib/sha256.js';

/**
 * An encryption key: a base64 or base64url string of exactly 32 random bytes (see
 * {@link generateEncryptionKey}), an AES-GCM 256-bit `CryptoKey`, or either with an explicit id.
 * Without an id, the id is the first 8 hex characters of the SHA-256 of the raw key.
 *
 * @example
 * ```ts
 * const keys: EncryptionKeyInput[] = [
 *   { id: '2025-06', key: process.env.AGENT_IAM_KEY_2025_06! },   // newest: encrypts
 *   process.env.AGENT_IAM_KEY_2024_11!,                           // older: still decrypts
 * ];
 * ```
 */
export type EncryptionKeyInput = string | CryptoKey | { id: string; key: string | CryptoKey };

/**
 * Encrypts and decrypts strings with AES-256-GCM. Ciphertexts name the id of the key that made them:
 * `decrypt` uses whichever configured key the ciphertext names, `encrypt` always uses the newest
 * (the first) key.
 *
 * @example
 * ```ts
 * const encryptor: Encryptor = await createEncryptor(generateEncryptionKey());
 * encryptor.keyIds; // ['3f9a0c1e']
 * ```
 */
export interface Encryptor {
  /**
   * Encrypt `plaintext`, binding it to `aad` (additional authenticated data, e.g. the store key):
   * decrypting with any other `aad` fails. Returns a compact, printable string. Both strings must be
   * well-formed Unicode (no lone surrogates; `JSON.stringify` output always is).
   */
  encrypt(plaintext: string, aad: string): Promise<string>;
  /**
   * Decrypt a string made by {@link Encryptor.encrypt} with the same `aad`. A tampered, truncated or
   * foreign ciphertext, or one made with a key that is not configured, throws `STORE_UNAVAILABLE`
   * (with `reason` `undecryptable`, `unknown_key` or `malformed`); it never returns a wrong value.
   */
  decrypt(ciphertext: string, aad: string): Promise<string>;
  /** The configured key ids, newest first. Ids are not secret. */
  readonly keyIds: string[];
}

/**
 * Options for {@link createEncryptor}.
 *
 * @example
 * ```ts
 * createEncryptor(keys, { field: 'tokens.encryptionKey' }); // CONFIG_INVALID names tokens.encryptionKey.1
 * ```
 */
export interface EncryptorOptions {
  /** The option name used in `CONFIG_INVALID` messages (default `encryptionKey`). */
  field?: string;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const encoder = new TextEncoder();
/** A lone surrogate: TextEncoder would turn it into U+FFFD, so two different strings would encrypt alike. */
const LONE_SURROGATE = /\p{Cs}/u;
const decoder = new TextDecoder('utf-8', { fatal: true });

function isCryptoKeyLike(value: unknown): value is CryptoKey {
  if (typeof CryptoKey !== 'undefined' && value instanceof CryptoKey) return true;
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CryptoKey).type === 'string' &&
    typeof (value as CryptoKey).algorithm === 'object' &&
    Array.isArray((value as CryptoKey).usages)
  );
}

const keyMaterialSchema = z.union([
  z.string(),
  z.custom<CryptoKey>(isCryptoKeyLike, { message: 'must be a base64/base64url string of 32 bytes or a CryptoKey' }),
]);
const keyEntrySchema = z.union([keyMaterialSchema, z.object({ id: z.string(), key: keyMaterialSchema }).strict()]);
const keysSchema = z.union([keyEntrySchema, z.array(keyEntrySchema).min(1, 'must hold at least one key')]);

/** Decode a base64 or base64url string of 32 bytes; anything else is a configuration error. */
function decodeKeyString(value: string, field: string): Uint8Array {
  const hint = 'must be the base64 or base64url encoding of exactly 32 random bytes (see generateEncryptionKey())';
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(value)) throw configError(field, hint);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value.replace(/\+/g, '-').replace(/\//g, '_'));
  } catch {
    throw configError(field, hint);
  }
  if (bytes.length !== 32) throw configError(field, hint);
  // 43 characters carry 258 bits: the last character's 2 low bits must be zero in a canonical encoding.
  if (toBase64Url(bytes) !== value.replace(/=$/, '').replace(/\+/g, '-').replace(/\//g, '_')) throw configError(field, hint);
  if (bytes.every((b) => b === bytes[0])) throw configError(field, 'is not random (all bytes are equal)');
  return bytes;
}

function checkCryptoKey(key: CryptoKey, field: string): void {
  const alg = key.algorithm as Partial<AesKeyAlgorithm>;
  if (key.type !== 'secret' || alg.name !== 'AES-GCM' || alg.length !== 256) {
    throw configError(field, 'must be an AES-GCM 256-bit secret CryptoKey');
  }
  if (!key.usages.includes('encrypt') || !key.usages.includes('decrypt')) {
    throw configError(field, "must allow the 'encrypt' and 'decrypt' usages");
  }
}

interface KeyEntry {
  id: string;
  key: Promise<CryptoKey>;
}

function importRaw(bytes: Uint8Array): Promise<CryptoKey> {
  const p = crypto.subtle.importKey('raw', bytes as BufferSource, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  p.then(
    () => bytes.fill(0),
    () => bytes.fill(0),
  );
  return p;
}

function keyIdOf(bytes: Uint8Array): string {
  return toHex(sha256Sync(bytes)).slice(0, 8);
}

function undecryptable(reason: 'undecryptable' | 'malformed'): AgentIamError {
  return storeUnavailable(reason === 'malformed' ? 'Stored record is malformed and cannot be decrypted' : 'Stored record cannot be decrypted', reason);
}

function buildEncryptor(entries: KeyEntry[]): Encryptor {
  const byId = new Map<string, Promise<CryptoKey>>();
  for (const entry of entries) byId.set(entry.id, entry.key);
  const newest = entries[0] as KeyEntry;
  const keyIds = Object.freeze(entries.map((e) => e.id)) as string[];
  const aadFor = (kid: string, aad: string): Uint8Array => encoder.encode(`agent-iam.${VERSION}.${kid}.${aad}`);

  return {
    keyIds,
    async encrypt(plaintext: string, aad: string): Promise<string> {
      if (typeof plaintext !== 'string' || typeof aad !== 'string' || LONE_SURROGATE.test(plaintext) || LONE_SURROGATE.test(aad)) {
        throw new AgentIamError('STORE_UNAVAILABLE', 'Value cannot be encrypted: it is not a well-formed string', { reason: 'not_serializable' });
      }
      const key = await newest.key;
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
      const ct = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: aadFor(newest.id, aad) as BufferSource, tagLength: TAG_BYTES * 8 },
        key,
        encoder.encode(plaintext),
      );
      return `${VERSION}.${newest.id}.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(ct))}`;
    },
    async decrypt(ciphertext: string, aad: string): Promise<string> {
      if (typeof ciphertext !== 'string' || typeof aad !== 'string' || LONE_SURROGATE.test(aad)) throw undecryptable('malformed');
      const parts = ciphertext.split('.');
      if (parts.length !== 4 || parts[0] !== VERSION) throw undecryptable('malformed');
      const [, kid, ivText, ctText] = parts as [string, string, string, string];
      if (!KEY_ID.test(kid)) throw undecryptable('malformed');
      const keyPromise = byId.get(kid);
      if (keyPromise === undefined) {
        throw new AgentIamError('STORE_UNAVAILABLE', `Stored record was encrypted with key id ${kid}, which is not configured`, {
          reason: 'unknown_key',
        });
      }
      let iv: Uint8Array;
      let ct: Uint8Array;
      try {
        iv = fromBase64Url(ivText);
        ct = fromBase64Url(ctText);
      } catch {
        throw undecryptable('malformed');
      }
      if (iv.length !== IV_BYTES || ct.length < TAG_BYTES) throw undecryptable('malformed');
      const key = await keyPromise;
      let plain: ArrayBuffer;
      try {
        plain = await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: iv as BufferSource, additionalData: aadFor(kid, aad) as BufferSource, tagLength: TAG_BYTES * 8 },
          key,
          ct as BufferSource,
        );
      } catch {
        throw undecryptable('undecryptable');
      }
      try {
        return decoder.decode(plain);
      } catch {
        throw undecryptable('undecryptable');
      }
    },
  };
}

/**
 * Create an {@link Encryptor} from one key or a list of keys, newest first. The newest key encrypts;
 * every key listed can decrypt records it made, so rotating is: put the new key first, keep the old
 * ones until their records have been rewritten.
 *
 * Keys are checked here: anything but 32 random bytes in base64/base64url, or an AES-GCM 256-bit
 * `CryptoKey`, throws `CONFIG_INVALID` naming the entry (e.g. `encryptionKey.1`), as do duplicate ids.
 * Returns the encryptor synchronously, except when a `CryptoKey` is given without an id: its id is then
 * derived from the exported key (the key must be extractable) and a Promise is returned. Always
 * `await` the result and both cases are covered.
 *
 * @example
 * ```ts
 * const encryptor = await createEncryptor([process.env.AGENT_IAM_KEY_2025!, process.env.AGENT_IAM_KEY_2024!]);
 * const sealed = await encryptor.encrypt('{"refreshToken":"..."}', 'agent-iam:v1:account:github:user:alice');
 * const plain = await encryptor.decrypt(sealed, 'agent-iam:v1:account:github:user:alice');
 * ```
 */
export function createEncryptor(keys: EncryptionKeyInput | EncryptionKeyInput[], options: EncryptorOptions = {}): Promise<Encryptor> | Encryptor {
  const field = options.field ?? 'encryptionKey';
  const parsed = parseOptions(keysSchema, keys, field) as EncryptionKeyInput | EncryptionKeyInput[];
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const isList = Array.isArray(parsed);
  const entries: Array<KeyEntry | { bare: CryptoKey; field: string }> = [];
  list.forEach((input, i) => {
    const f = isList ? `${field}.${i}` : field;
    if (typeof input === 'string') {
      const bytes = decodeKeyString(input, f);
      entries.push({ id: keyIdOf(bytes), key: importRaw(bytes) });
    } else if (isCryptoKeyLike(input)) {
      checkCryptoKey(input, f);
      entries.push({ bare: input, field: f });
    } else {
      if (!KEY_ID.test(input.id)) throw configError(`${f}.id`, 'must be 1-64 characters of A-Z, a-z, 0-9, _ and -');
      if (typeof input.key === 'string') {
        entries.push({ id: input.id, key: importRaw(decodeKeyString(input.key, `${f}.key`)) });
      } else {
        checkCryptoKey(input.key, `${f}.key`);
        entries.push({ id: input.id, key: Promise.resolve(input.key) });
      }
    }
  });

  const finish = (resolved: KeyEntry[]): Encryptor => {
    const seen = new Set<string>();
    resolved.forEach((entry, i) => {
      if (seen.has(entry.id)) throw configError(isList ? `${field}.${i}` : field, `duplicate key id ${entry.id}`);
      seen.add(entry.id);
    });
    return buildEncryptor(resolved);
  };

  if (entries.every((e): e is KeyEntry => 'id' in e)) {
    try {
      return finish(entries);
    } finally {
      // Keep a failed import from surfacing as an unhandled rejection; it is reported on first use.
      for (const e of entries) e.key.catch(() => {});
    }
  }
  return (async () => {
    const resolved: KeyEntry[] = [];
    for (const e of entries) {
      if ('id' in e) {
        resolved.push(e);
        continue;
      }
      if (!e.bare.extractable) {
        throw configError(e.field, 'is a non-extractable CryptoKey: give it an id, as { id, key }');
      }
      const raw = new Uint8Array(await crypto.subtle.exportKey('raw', e.bare));
      const id = keyIdOf(raw);
      raw.fill(0);
      resolved.push({ id, key: Promise.resolve(e.bare) });
    }
    return finish(resolved);
  })();
}

/**
 * Generate a new random encryption key: base64url of 32 random bytes, ready for
 * {@link createEncryptor} or the token manager's `encryptionKey`. Keep it in a secret manager.
 *
 * @example
 * ```ts
 * // once, e.g. in a setup script: node -e "import('agent-iam').then(m => console.log(m.generateEncryptionKey()))"
 * const key = generateEncryptionKey(); // e.g. 'q0H2...' (43 characters)
 * ```
 */
export function generateEncryptionKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const key = toBase64Url(bytes);
  bytes.fill(0);
  return key;
}
