// Public exports of src/outbound (owned by the outbound work). Re-exported by src/index.ts.
export { createToolFetch } from './tool-fetch.js';
export type { ToolFetch, ToolFetchInit, ToolFetchOptions, ToolFetchApprovals } from './tool-fetch.js';
export { toolsFromEnv } from './tools.js';
export type { ToolDefinition, ToolAuth, ToolCapability, AwsCredentials } from './tools.js';
