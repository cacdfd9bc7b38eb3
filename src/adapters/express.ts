/**
 * `agent-iam/express`: Express middleware over the verifier. The core decides; this file only
 * translates an Express request into a verify call and an error into a response.
 *
 * @module
 */
import type { RequestHandler } from 'express';
import type { AgentContext } from '../context.js';
import type { Verifier, VerifierOptions } from '../inbound/verifier.js';
import { nodeAgentAuth, nodeRequireScopes } from '../http/node-middleware.js';
import { parseScopes, setupAdapter, type AgentAuthOptions } from '../http/middleware-core.js';

export type { AgentAuthOptions } from '../http/middleware-core.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified caller, set by `agentAuth` from `agent-iam/express`. */
      agentContext?: AgentContext;
    }
  }
}

/**
 * Express middleware that verifies the caller's bearer token. On failure it answers with the error's
 * status, `{ error: code, message }`, `WWW-Authenticate` and `Cache-Control: no-store`. On success it
 * replaces any client-sent `X-End-User-ID` with the verified user id, sets `req.agentContext`, and runs
 * the rest of the chain inside the context (`currentContext()`, `toolFetch`).
 *
 * Bad options throw `CONFIG_INVALID` here, at construction.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { agentAuth, requireScopes } from 'agent-iam/express';
 * const app = express();
 * app.use(agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }));
 * app.get('/me', (req, res) => res.json({ user: req.agentContext?.userId }));
 * app.post('/items', requireScopes('items:write'), (req, res) => res.sendStatus(201));
 * ```
 *
 * With `mcp` (per-tool scopes of an MCP endpoint, see `mcpScopes` in `agent-iam/mcp`) it reads the
 * JSON-RPC body first (or takes `req.body` from a body parser that ran) and leaves it on `req.body`:
 *
 * @example
 * ```ts
 * import { mcpScopes } from 'agent-iam/mcp';
 * const mcp = mcpScopes({ tools: { whoami: [], refund: ['payments:write'] } });
 * app.post('/mcp', agentAuth(verifier, { requiredScopes: ['mcp:tools'], mcp }), async (req, res) => {
 *   await transport.handleRequest(req, res, req.body); // the stream has been read: pass the parsed body
 * });
 * ```
 */
export function agentAuth(verifierOrOptions: Verifier | VerifierOptions, options?: AgentAuthOptions): RequestHandler {
  return nodeAgentAuth(setupAdapter(verifierOrOptions, options)) as unknown as RequestHandler;
}

/**
 * Express middleware that requires every named scope of the context set by {@link agentAuth}:
 * 403 `INSUFFICIENT_SCOPE` (`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`), or
 * 401 `TOKEN_MISSING` when the request carries no verified token.
 *
 * @example
 * ```ts
 * app.delete('/items/:id', requireScopes('items:write', 'items:delete'), handler);
 * ```
 */
export function requireScopes(...scopes: string[]): RequestHandler {
  return nodeRequireScopes(parseScopes(scopes)) as unknown as RequestHandler;
}

export { consentRoutes, approvalRoutes, pages } from './express-routes.js';
export type { ApprovalRoutesOptions, ConsentRoutesOptions, PagesOptions } from './express-routes.js';
