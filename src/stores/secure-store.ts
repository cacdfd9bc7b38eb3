/**
 * A {@link KeyValueStore} that encrypts every value at rest.
 *
 * @module
 */
import { AgentIamError, storeUnavailable, type AgentIamErrorReason } from '../errors.js';
import type { Encryptor } from './encryption.js';
import { createKeyValueStore, type KeyValueStore, type Store, type Versioned } from './store.js';
import { implementsContract } from './contract.js';

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

function storeError(message: string, reason: AgentIamErrorReason): AgentIamError {
  return storeUnavailable(message, reason);
}

/**
 * Wrap a {@link KeyValueStore} so that each value is stored as JSON encrypted with AES-256-GCM
 * (random 96-bit IV; the store key is the additional authenticated data, so a record copied to
 * another key does not decrypt). Records name their key id, so reads use whichever configured key
 * wrote them and writes use the newest: rotate by putting a new key first.
 *
 * Every operation of the {@link Store} contract is kept: values written by `set`, `setIfAbsent` and
 * `compareAndSet` are encrypted, and the version compared by `compareAndSet` is the store's own,
 * outside the ciphertext. Lease owners (`deleteIfOwner`) and index members are stored in plaintext.
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
export function createSecureStore(store: KeyValueStore, encryptor?: Encryptor): Store {
  if (typeof store !== 'object' || store === null || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.delete !== 'function') {
    throw new AgentIamError('CONFIG_INVALID', 'Invalid option store: must have get, set and delete', { field: 'store' });
  }
  if (encryptor !== undefined && (typeof encryptor.encrypt !== 'function' || typeof encryptor.decrypt !== 'function')) {
    const hint = typeof (encryptor as { then?: unknown }).then === 'function' ? ' (await createEncryptor(...) first)' : '';
    throw new AgentIamError('CONFIG_INVALID', `Invalid option encryptor: must be an Encryptor${hint}`, { field: 'encryptor' });
  }
  const base: Store = implementsContract(store) ? store : createKeyValueStore(store);
  // Leases and index members are not secrets (owner ids, connection and approval ids): they pass
  // through in plaintext, which is what lets the store compare them.
  const plain = {
    atomic: base.atomic,
    delete: (key: string) => base.delete(key),
    deleteIfOwner: (key: string, owner: string) => base.deleteIfOwner(key, owner),
    indexAdd: (key: string, member: string, ttlMs?: number) => base.indexAdd(key, member, ttlMs),
    indexMembers: (key: string, limit?: number) => base.indexMembers(key, limit),
    indexRemove: (key: string, member: string) => base.indexRemove(key, member),
  };
  if (encryptor === undefined) {
    const refuseEncrypted = <T>(value: T): T => {
      if (isEncryptedRecordShape(value)) throw storeError('Stored record is encrypted and no encryption key is configured', 'encrypted');
      return value;
    };
    return {
      ...plain,
      get: async <T>(key: string) => refuseEncrypted(await base.get<T>(key)),
      async getVersioned<T>(key: string) {
        const v = await base.getVersioned<T>(key);
        if (v !== undefined) refuseEncrypted(v.value);
        return v;
      },
      consume: async <T>(key: string) => refuseEncrypted(await base.consume<T>(key)),
      set: (key, value, ttlMs) => base.set(key, value, ttlMs),
      setIfAbsent: (key, value, ttlMs) => base.setIfAbsent(key, value, ttlMs),
      compareAndSet: (key, expected, value, ttlMs) => base.compareAndSet(key, expected, value, ttlMs),
    };
  }
  const enc = encryptor;

  async function open<T>(key: string, record: unknown): Promise<T | undefined> {
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
    const plainText = await enc.decrypt(`v1.${r.kid}.${r.iv}.${r.ct}`, key);
    try {
      return JSON.parse(plainText) as T;
    } catch {
      throw storeError('Stored record cannot be decrypted', 'undecryptable');
    }
  }

  async function seal(key: string, value: unknown): Promise<EncryptedRecord> {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      json = undefined;
    }
    if (json === undefined) throw storeError('Value cannot be stored: it is not JSON-serialisable', 'not_serializable');
    const sealed = await enc.encrypt(json, key);
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') throw storeError('Encryptor returned an unknown format', 'error');
    const [, kid, iv, ct] = parts as [string, string, string, string];
    return { v: 1, alg: 'A256GCM', kid, iv, ct };
  }

  return {
    ...plain,
    get: async <T>(key: string) => open<T>(key, await base.get(key)),
    async getVersioned<T>(key: string): Promise<Versioned<T> | undefined> {
      const v = await base.getVersioned(key);
      if (v === undefined) return undefined;
      // The version is the store's, kept beside the ciphertext: compare-and-set never compares ciphertexts.
      return { value: (await open<T>(key, v.value)) as T, version: v.version };
    },
    consume: async <T>(key: string) => open<T>(key, await base.consume(key)),
    set: async (key, value, ttlMs) => base.set(key, await seal(key, value), ttlMs),
    setIfAbsent: async (key, value, ttlMs) => base.setIfAbsent(key, await seal(key, value), ttlMs),
    compareAndSet: async (key, expected, value, ttlMs) => base.compareAndSet(key, expected, await seal(key, value), ttlMs),
  };
}
