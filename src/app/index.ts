// Public exports of src/app: createAgentIam, its configuration, and the framework-free core of the
// consent and approval routes. Re-exported by src/index.ts. Imports neither express nor hono.
export { createAgentIam } from './agent-iam.js';
export type { AgentIam } from './agent-iam.js';
export { loadAgentIamConfig } from './config.js';
export type { AgentIamConfig } from './config.js';
export { createConsentRoutes } from '../http/consent-routes.js';
export type { ConsentRoutesOptions, ConsentTokenManager } from '../http/consent-routes.js';
export { createApprovalRoutes } from '../http/approval-routes.js';
export type { ApprovalRoutesOptions, RouteApprovals } from '../http/approval-routes.js';
export type { RouteHandler, RouteRequest, RouteResponse } from '../http/route-core.js';
export type { NodeMiddleware, NodeRequestLike, NodeResponseLike } from '../http/node-routes.js';
export { handleWebRequest } from '../http/web-routes.js';
export type { HonoMiddleware, HonoContextLike } from '../http/web-routes.js';
export type { AgentAuthOptions } from '../http/middleware-core.js';
