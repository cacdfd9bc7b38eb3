// Public exports of src/tokens. Re-exported by src/index.ts.
export { createTokenManager } from './token-manager.js';
export type { TokenManager, TokenManagerOptions, ListAccountsFilter, CompleteAuthorizationOptions, SetApiKeyOptions, EncryptionKeySource } from './manager-api.js';
export type { ConnectionConfig, TokenEndpointAuthMethod } from './connections.js';
export { connectionPresets } from './presets.js';
export type { ConnectionPreset } from './presets.js';
export type { EnterpriseTokenOptions } from './id-jag.js';
export type { PrivateJwk } from './connections.js';
export type { ClientKeyAlg } from './client-key.js';
