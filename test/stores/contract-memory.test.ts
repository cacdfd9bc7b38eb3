import Keyv from 'keyv';
import { createKeyValueStore } from '../../src/stores/store.js';
import { MemoryAdapter } from '../../src/stores/memory-store.js';
import { createSecureStore } from '../../src/stores/secure-store.js';
import { createEncryptor, generateEncryptionKey } from '../../src/stores/encryption.js';
import { describeStoreContract } from './contract.js';

describeStoreContract('in-memory default', () => {
  const store = createKeyValueStore();
  return { store: () => store, exact: true };
});

describeStoreContract('Keyv (emulated, one process)', () => {
  const store = createKeyValueStore(new Keyv({ store: new MemoryAdapter() }));
  return { store: () => store, exact: true };
});

const encryptor = await createEncryptor(generateEncryptionKey());
describeStoreContract('encrypted in-memory', () => {
  const base = createKeyValueStore();
  const store = createSecureStore(base, encryptor);
  return { store: () => store, exact: true, plain: base };
});
