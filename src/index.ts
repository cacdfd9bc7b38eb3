/**
 * agent-iam: identity and access management for AI agents at every hop.
 *
 * This entry is runtime-neutral (WebCrypto, fetch, URL); of Node's modules it uses only
 * `node:async_hooks`.
 *
 * @module
 */
export * from './errors.js';
export { currentContext, runWithContext, anonymousContext } from './context.js';
export type { AgentContext, Actor } from './context.js';
export type { AuditEvent, AuditEventType, AuditDecision, AuditSink } from './audit/events.js';
export { storeKey, createKeyValueStore } from './stores/store.js';
export type { KeyValueStore, KeyValueStoreOptions, Store, Versioned } from './stores/store.js';
export type * from './tokens/types.js';
export * from './inbound/index.js';
export * from './tokens/index.js';
export * from './stores/index.js';
export * from './policy/index.js';
export * from './outbound/index.js';
export * from './audit/index.js';
export * from './app/index.js';
export type { SecretSource, SecretLoader } from './lib/secret.js';
export * from './pages/index.js';
