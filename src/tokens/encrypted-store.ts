/**
 * The token manager's store with encryption at rest: keys given once (lazy, imported at first use)
 * or loaded from a secret manager and reloaded on a TTL.
 *
 * @module
 */
import { AgentIamError, isAgentIamError } from '../errors.js';
import { createEncryptor, type EncryptionKeyInput, type Encryptor } from '../stores/encryption.js';
import { createSecureStore } from '../stores/secure-store.js';
import type { Store } from '../stores/store.js';
import { nowMs } from '../lib/clock.js';

const STORE_OPS = ['get', 'set', 'delete', 'getVersioned', 'setIfAbsent', 'compareAndSet', 'deleteIfOwner', 'consume', 'indexAdd', 'indexMembers', 'indexRemove'] as const;


/** A secure store whose encryptor comes from a key loader, reloaded every `ttlMs`. */
export function rotatingSecureStore(base: Store, load: () => Promise<EncryptionKeyInput | EncryptionKeyInput[]>, ttlMs: number): Store {
  let current: { store: Store; until: number } | undefined;
  let inflight: Promise<Store> | undefined;
  const storeNow = (): Promise<Store> | Store => {
    if (current !== undefined && current.until > nowMs()) return current.store;
    inflight ??= (async () => {
      try {
        const encryptor = await createEncryptor(await load());
        current = { store: createSecureStore(base, encryptor), until: nowMs() + ttlMs };
        return current.store;
      } catch (e) {
        if (current !== undefined) return current.store; // keep the keys we have
        if (isAgentIamError(e) && e.code === 'CONFIG_INVALID') throw e; // loaded, but not usable keys
        // The loader's own error is dropped: it may quote the secret manager's answer.
        throw new AgentIamError('TOKEN_ENDPOINT_UNAVAILABLE', 'encryptionKey: the keys could not be read', { reason: 'secret_unavailable' });
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
  const out: Record<string, unknown> = { atomic: base.atomic };
  for (const op of STORE_OPS) {
    out[op] = async (...args: unknown[]) => {
      const s = await storeNow();
      return (s[op] as (...a: unknown[]) => Promise<unknown>)(...args);
    };
  }
  return out as unknown as Store;
}

/** A store whose encryptor is created once (createEncryptor may be async). */
export function lazySecureStore(base: Store, encryptor: Promise<Encryptor> | Encryptor | undefined): Store {
  if (encryptor === undefined) return createSecureStore(base);
  if (!(encryptor instanceof Promise)) return createSecureStore(base, encryptor);
  let ready: Store | undefined;
  const pending = encryptor.then((e) => (ready = createSecureStore(base, e)));
  pending.catch(() => {});
  const out: Record<string, unknown> = { atomic: base.atomic };
  for (const op of STORE_OPS) {
    out[op] = async (...args: unknown[]) => {
      const s = ready ?? (await pending);
      return (s[op] as (...a: unknown[]) => Promise<unknown>)(...args);
    };
  }
  return out as unknown as Store;
}
