/**
 * agent-iam/testing: a real local identity provider (oidc-provider) for agent authors' own tests.
 * Node only; needs the optional peer dependency `oidc-provider` (v9).
 *
 * @module
 */
export { createTestIdentityProvider } from './identity-provider.js';
export type {
  TestIdentityProvider,
  BackchannelRequest,
  TestIdentityProviderOptions,
  TokenForOptions,
  TokenEndpointFault,
  RegisteredClient,
} from './identity-provider.js';
export { installTestClock } from './clock.js';
export type { TestClock } from './clock.js';
export { createTestContext } from '../context.js';
export type { TestContextOptions } from '../context.js';
