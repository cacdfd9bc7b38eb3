// Public exports of src/app: createAgentIam, its configuration, and the framework-free core of the
// consent and approval routes. Re-exported by src/index.ts. Imports neither express nor hono.
export { createAgentIam } from './agent-iam.js';
export type { AgentIam } from './agent-iam.js';
export { loadAgentIamConfig } from './config.js';
export type { AgentIamConfig } from './config.js';
export { createConsentRoutes } from './consent-routes.js';
export type { ConsentRoutesOptions, ConsentTokenManager } from './consent-routes.js';
export { createApprovalRoutes } from './approval-routes.js';
export type { ApprovalRoutesOptions, RouteApprovals } from './approval-routes.js';
export type { RouteHandler, RouteRequest, RouteResponse } from './http.js';
export type { NodeMiddleware, NodeRequestLike, NodeResponseLike } from './node.js';
export { handleWebRequest } from './web.js';
export type { HonoMiddleware, HonoContextLike } from './web.js';
export type { AgentAuthOptions } from '../adapters/shared.js';
