/**
 * `agent-iam/hono`: Hono middleware over the verifier, for any runtime Hono runs on. The core
 * decides; this file only hands the request to the verifier and renders its errors.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono';
import type { AgentContext } from '../context.js';
import type { Verifier, VerifierOptions } from '../inbound/verifier.js';
import { parseScopes, setupAdapter, type AgentAuthOptions } from '../http/middleware-core.js';
import { honoAgentAuth, honoRequireScopes } from '../http/web-middleware.js';

export type { AgentAuthOptions } from '../http/middleware-core.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The verified caller, set by `agentAuth` from `agent-iam/hono`. */
    agentContext: AgentContext;
  }
}

/**
 * Hono middleware that verifies the caller's bearer token. On failure it answers with the error's
 * status, `{ error: code, message }`, `WWW-Authenticate` and `Cache-Control: no-store`. On success it
 * replaces any client-sent `X-End-User-ID` with the verified user id (handlers reading
 * `c.req.header('x-end-user-id')` see only that), sets `c.get('agentContext')`, and runs the rest of
 * the chain inside the context (`currentContext()`, `toolFetch`).
 *
 * Bad options throw `CONFIG_INVALID` here, at construction.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { agentAuth, requireScopes } from 'agent-iam/hono';
 * const app = new Hono();
 * app.use('/api/*', agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }));
 * app.get('/api/me', (c) => c.json({ user: c.get('agentContext').userId }));
 * app.post('/api/items', requireScopes('items:write'), (c) => c.body(null, 201));
 * ```
 *
 * With `mcp` (per-tool scopes of an MCP endpoint, see `mcpScopes` in `agent-iam/mcp`) it reads the
 * JSON-RPC body first and hands on an equal `c.req.raw`, still readable by the MCP transport:
 *
 * @example
 * ```ts
 * import { mcpScopes } from 'agent-iam/mcp';
 * const mcp = mcpScopes({ tools: { whoami: [], refund: ['payments:write'] } });
 * app.post('/mcp', agentAuth(verifier, { requiredScopes: ['mcp:tools'], mcp }), (c) => transport.handleRequest(c.req.raw));
 * ```
 */
export function agentAuth(verifierOrOptions: Verifier | VerifierOptions, options?: AgentAuthOptions): MiddlewareHandler {
  return honoAgentAuth(setupAdapter(verifierOrOptions, options)) as MiddlewareHandler;
}

/**
 * Hono middleware that requires every named scope of the context set by {@link agentAuth}:
 * 403 `INSUFFICIENT_SCOPE` (`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`), or
 * 401 `TOKEN_MISSING` when the request carries no verified token.
 *
 * @example
 * ```ts
 * app.delete('/api/items/:id', requireScopes('items:write', 'items:delete'), handler);
 * ```
 */
export function requireScopes(...scopes: string[]): MiddlewareHandler {
  return honoRequireScopes(parseScopes(scopes)) as MiddlewareHandler;
}

export { consentRoutes, approvalRoutes, pages } from './hono-routes.js';
export type { ApprovalRoutesOptions, ConsentRoutesOptions, PagesOptions } from './hono-routes.js';
