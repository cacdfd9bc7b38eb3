// Public exports of src/inbound. Re-exported by src/index.ts.
export { createVerifier, isVerifier, SUPPORTED_ALGORITHMS } from './verifier.js';
export type { ProviderOptions, VerifierOptions, VerifyRequest, VerifyOptions, Verifier } from './verifier.js';
export { identityProviders } from './providers.js';
export type { ProviderOverrides } from './providers.js';
