/**
 * A {@link KeyValueStore} that encrypts every value at rest.
 *
 * @module
 */
import { AgentIamError } from '../errors.js';
import type { Encryptor } from './encryption.js';
import type { KeyValueStore } from './store.js';

/**
 * The shape of an encrypted record as written to the underlying store. Only the key id, the IV and
 * the ciphertext (with its GCM tag) are stored; nothing in it is secret without the key.
 *
 * @example
 * ```ts
 * // what a raw dump of the store shows for one record:
 * const record: EncryptedRecord = { v: 1, alg: 'A256GCM', kid: '3f9a0c1e', iv: 'k3Jx…', ct: 'Vb0q…' };
 * ```
 */
export interface EncryptedRecord {
  /** Record format version. */
  v: 1;
  /** Always `A256GCM`. */
  alg: 'A256GCM';
  /** Id of the key that encrypted the record. */
  kid: string;
  /** base64url of the 96-bit IV. */
  iv: string;
  /** base64url of the ciphertext followed by the 128-bit tag. */
  ct: string;
}

function isEncryptedRecordShape(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    (value as { alg?: unknown }).alg === 'A256GCM' &&
    'ct' in value &&
    'iv' in value &&
    'kid' in value
  );
}

function storeError(message: string, reason: string): AgentIamError {
  return new AgentIamError('STORE_UNAVAILABLE', message, { reason });
}

/**
 * Wrap a {@link KeyValueStore} so that each value is stored as JSON encrypted with AES-256-GCM
 * (random 96-bit IV; the store key is the additional authenticated data, so a record copied to
 * another key does not decrypt). Records name their key id, so reads use whichever configured key
 * wrote them and writes use the newest: rotate by putting a new key first.
 *
 * Reading a record that was tampered with, was truncated, names an unknown key, is not encrypted
 * or is not a record at all throws `STORE_UNAVAILABLE` (with a `reason`); it never returns
 * `undefined` for a record that exists. Without an `encryptor` values are stored as they are, and
 * an encrypted record read without a key fails the same way.
 *
 * @example
 * ```ts
 * import Keyv from 'keyv';
 * import KeyvRedis from '@keyv/redis';
 * const store = createSecureStore(
 *   createKeyValueStore(new Keyv(new KeyvRedis('redis://127.0.0.1:6379'))),
 *   await createEncryptor(process.env.AGENT_IAM_ENCRYPTION_KEY!),
 * );
 * await store.set(storeKey('note', 'alice'), { secret: 's3cr3t' });
 * await store.get<{ secret: string }>(storeKey('note', 'alice')); // { secret: 's3cr3t' }
 * ```
 */
export function createSecureStore(store: KeyValueStore, encryptor?: Encryptor): KeyValueStore {
  if (typeof store !== 'object' || store === null || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.delete !== 'function') {
    throw new AgentIamError('CONFIG_INVALID', 'Invalid option store: must have get, set and delete', { field: 'store' });
  }
  if (encryptor !== undefined && (typeof encryptor.encrypt !== 'function' || typeof encryptor.decrypt !== 'function')) {
    const hint = typeof (encryptor as { then?: unknown }).then === 'function' ? ' (await createEncryptor(...) first)' : '';
    throw new AgentIamError('CONFIG_INVALID', `Invalid option encryptor: must be an Encryptor${hint}`, { field: 'encryptor' });
  }
  if (encryptor === undefined) {
    return {
      async get<T>(key: string): Promise<T | undefined> {
        const value = await store.get<T>(key);
        if (isEncryptedRecordShape(value)) {
          throw storeError('Stored record is encrypted and no encryption key is configured', 'encrypted');
        }
        return value;
      },
      set: (key, value, ttlMs) => store.set(key, value, ttlMs),
      delete: (key) => store.delete(key),
    };
  }

  return {
    async get<T>(key: string): Promise<T | undefined> {
      const record = await store.get<unknown>(key);
      if (record === undefined || record === null) return undefined;
      if (typeof record !== 'object' || Array.isArray(record)) {
        throw storeError('Stored record is malformed and cannot be decrypted', 'malformed');
      }
      const r = record as Partial<Record<keyof EncryptedRecord, unknown>>;
      if (!isEncryptedRecordShape(r)) {
        throw storeError('Stored record is not encrypted; refusing to use it', 'not_encrypted');
      }
      if (r.v !== 1 || typeof r.kid !== 'string' || typeof r.iv !== 'string' || typeof r.ct !== 'string') {
        throw storeError('Stored record is malformed and cannot be decrypted', 'malformed');
      }
      const plain = await encryptor.decrypt(`v1.${r.kid}.${r.iv}.${r.ct}`, key);
      try {
        return JSON.parse(plain) as T;
      } catch {
        throw storeError('Stored record cannot be decrypted', 'undecryptable');
      }
    },

    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch {
        json = undefined;
      }
      if (json === undefined) throw storeError('Value cannot be stored: it is not JSON-serialisable', 'not_serializable');
      const sealed = await encryptor.encrypt(json, key);
      const parts = sealed.split('.');
      if (parts.length !== 4 || parts[0] !== 'v1') throw storeError('Encryptor returned an unknown format', 'error');
      const [, kid, iv, ct] = parts as [string, string, string, string];
      const record: EncryptedRecord = { v: 1, alg: 'A256GCM', kid, iv, ct };
      await store.set(key, record, ttlMs);
    },

    delete: (key) => store.delete(key),
  };
}
