/**
 * agent-iam: identity and access management for AI agents at every hop.
 *
 * This entry is runtime-neutral (WebCrypto, fetch, URL); of Node's modules it uses only
 * `node:async_hooks`. Its exports are listed one by one: `api/index.api.md` is the reviewed
 * public surface, checked in CI by `npm run api:check`. Anything not exported here is internal.
 *
 * @module
 */

// Errors
export { AgentIamError, isAgentIamError, ERROR_STATUS, bearerChallenge, renderError } from './errors.js';
export type {
  AgentIamErrorCode,
  AgentIamErrorOptions,
  AgentIamErrorFields,
  AgentIamErrorReason,
  KnownAgentIamError,
  ApprovalSummary,
  BearerChallenge,
  ErrorResponse,
} from './errors.js';

// Context
export { currentContext, runWithContext, anonymousContext } from './context.js';
export type { AgentContext, Actor } from './context.js';

// Inbound
export { createVerifier, SUPPORTED_ALGORITHMS } from './inbound/verifier.js';
export type { ProviderOptions, VerifierOptions, VerifyRequest, VerifyOptions, Verifier } from './inbound/verifier.js';
export { identityProviders } from './inbound/providers.js';
export type { ProviderOverrides } from './inbound/providers.js';

// Tokens
export { createTokenManager } from './tokens/token-manager.js';
export type {
  TokenManager,
  TokenManagerOptions,
  ListAccountsFilter,
  CompleteAuthorizationOptions,
  SetApiKeyOptions,
  EncryptionKeySource,
} from './tokens/manager-api.js';
export type {
  AccountStatus,
  ConnectedAccount,
  AccessTokenResult,
  AccountRef,
  StartAuthorizationOptions,
  StartAuthorizationResult,
  ClientCredentialsOptions,
  EnterpriseTokenRequest,
  TokenExchangeOptions,
  TokenSource,
} from './tokens/types.js';
export type { ConnectionConfig, TokenEndpointAuthMethod, PrivateJwk } from './tokens/connections.js';
export { connectionPresets } from './tokens/presets.js';
export type { ConnectionPreset } from './tokens/presets.js';
export type { EnterpriseTokenOptions } from './tokens/id-jag.js';
export type { ClientKeyAlg } from './tokens/client-key.js';
export type { SecretSource, SecretLoader } from './lib/secret.js';

// Stores and encryption at rest
export { storeKey, createKeyValueStore } from './stores/store.js';
export type { KeyValueStore, KeyValueStoreOptions, Store, Versioned } from './stores/store.js';
export { createEncryptor, generateEncryptionKey } from './stores/encryption.js';
export type { Encryptor, EncryptionKeyInput, EncryptorOptions } from './stores/encryption.js';
export { createSecureStore } from './stores/secure-store.js';
export type { EncryptedRecord } from './stores/secure-store.js';

// Policy and approvals
export { compileCapabilities } from './policy/capabilities.js';
export type { Capability, CapabilityMatcher } from './policy/capabilities.js';
export { createPolicyEngine } from './policy/policies.js';
export type { PolicyEffect, PolicyRule, PolicyInput, PolicyDecision, PolicyEngine } from './policy/policies.js';
export { createApprovals } from './policy/approvals.js';
export type { Approvals, ApprovalsOptions, ApprovalRecord, ApprovalCheck, ApprovalRequestInput } from './policy/approvals.js';
export { approverFromContext, isClientToken } from './policy/approvers.js';
export type { Approver, ApproverRule, ApprovalRule } from './policy/approvers.js';
export { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from './policy/notify.js';
export type { ApprovalNotification } from './policy/notify.js';

// Outbound
export { createToolFetch } from './outbound/tool-fetch.js';
export type { ToolFetch, ToolFetchInit, ToolFetchOptions, ToolFetchApprovals } from './outbound/tool-fetch.js';
export { toolsFromEnv } from './outbound/tools.js';
export type { ToolDefinition, ToolAuth, ToolCapability, AwsCredentials } from './outbound/tools.js';

// Audit
export type { AuditEvent, AuditEventType, AuditDecision, AuditSink } from './audit/events.js';
export { jsonLinesAudit, memoryAudit } from './audit/json-lines.js';
export type { AuditLineTarget, JsonLinesAudit, JsonLinesAuditOptions, MemoryAudit } from './audit/json-lines.js';
export { verifyAuditChain, AUDIT_CHAIN_GENESIS } from './audit/chain.js';
export type { VerifyAuditChainOptions, VerifyAuditChainResult } from './audit/chain.js';
export { redactEvent } from './audit/redact.js';

// One object for the whole app, and the framework-free routes
export { createAgentIam } from './app/agent-iam.js';
export type { AgentIam } from './app/agent-iam.js';
export { loadAgentIamConfig } from './app/config.js';
export type { AgentIamConfig } from './app/config.js';
export { createConsentRoutes } from './http/consent-routes.js';
export type { ConsentRoutesOptions, ConsentTokenManager } from './http/consent-routes.js';
export { createApprovalRoutes } from './http/approval-routes.js';
export type { ApprovalRoutesOptions, RouteApprovals } from './http/approval-routes.js';
export { handleWebRequest } from './http/web-routes.js';
export type { RouteHandler, RouteRequest, RouteResponse } from './http/route-core.js';
export type { NodeMiddleware, NodeRequestLike, NodeResponseLike } from './http/node-middleware.js';
export type { HonoMiddleware, HonoContextLike } from './http/web-middleware.js';
export type { AgentAuthOptions } from './http/middleware-core.js';

// Pages for humans: the approvals inbox and connected accounts
export { createPages } from './pages/pages.js';
export type { PagesOptions, PagesApprovals, PagesTokenManager, PageRequest, PageUser } from './pages/pages.js';
