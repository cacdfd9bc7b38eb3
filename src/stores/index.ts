// Public exports of src/stores. Re-exported by src/index.ts (which also exports storeKey,
// createKeyValueStore and their types from ./store.js directly).
export { createEncryptor, generateEncryptionKey } from './encryption.js';
export type { Encryptor, EncryptionKeyInput, EncryptorOptions } from './encryption.js';
export { createSecureStore } from './secure-store.js';
export type { EncryptedRecord } from './secure-store.js';
