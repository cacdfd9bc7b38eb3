/**
 * agent-iam/mcp: what an MCP server or an agent publishes so that OAuth clients and authorization
 * servers can find it — RFC 9728 protected resource metadata and OAuth Client ID Metadata Documents —
 * and per-tool scopes for a protected MCP server, checked from the JSON-RPC body.
 * Runtime-neutral (Web APIs only).
 *
 * @module
 */
export { protectedResourceMetadata, protectedResourceMetadataUrl } from './protected-resource-metadata.js';
export type {
  ProtectedResourceMetadataOptions,
  ProtectedResourceMetadata,
  ProtectedResourceMetadataResult,
} from './protected-resource-metadata.js';
export { clientMetadataDocument } from './client-metadata-document.js';
export type { ClientMetadataDocumentOptions, ClientMetadata, ClientMetadataDocumentResult } from './client-metadata-document.js';
export type { PublishedDocument } from './well-known.js';
export { mcpScopes, isMcpScopes } from './scopes.js';
export type { McpScopesOptions, McpScopes, McpRequirement, McpCall, McpHeaders } from './scopes.js';
export { verifyMcpRequest } from './verify-request.js';
export type { VerifyMcpRequestOptions, VerifyMcpRequestResult } from './verify-request.js';
