import type { AgentContext } from '../context.js';
import type { Verifier } from '../inbound/verifier.js';
import { readWebJson } from './read-body.js';
import { planMcpRequest, type McpScopes } from './scopes.js';

/**
 * Options of {@link verifyMcpRequest}.
 *
 * @example
 * ```ts
 * const options: VerifyMcpRequestOptions = { requiredScopes: ['mcp:tools'] };
 * ```
 */
export interface VerifyMcpRequestOptions {
  /** Scopes every request needs, whatever it calls (e.g. `mcp:tools`); they lead the challenge's `scope`. */
  requiredScopes?: string[];
}

/**
 * What {@link verifyMcpRequest} resolves to.
 *
 * @example
 * ```ts
 * const { context, body }: VerifyMcpRequestResult = await verifyMcpRequest(verifier, request, scopes);
 * ```
 */
export interface VerifyMcpRequestResult {
  /** The verified caller. */
  context: AgentContext;
  /**
   * The parsed JSON-RPC body of a `POST` (`undefined` for other methods), for the MCP transport's
   * `parsedBody` option; the request's own body is left unread either way.
   */
  body: unknown;
}

/**
 * Verify an MCP request on any Web-API server (Workers, Deno, Bun, plain `fetch` handlers) with
 * per-tool scopes: reads a clone of a `POST`'s JSON-RPC body (bounded by `maxBodyBytes`), checks the
 * `Mcp-Method` / `Mcp-Name` headers against it, and verifies the bearer token with the base scopes and
 * the body's, so that a missing scope is one 403 challenge naming all of them. Rejects with an
 * `AgentIamError` (`REQUEST_INVALID` 400/413, `TOKEN_*` 401, `INSUFFICIENT_SCOPE` or
 * `TOOL_NOT_REGISTERED` 403); render it with `renderError`. Express and Hono users pass the same
 * scopes to `agentAuth(verifier, { mcp })` instead.
 *
 * @example
 * ```ts
 * import { renderError } from 'agent-iam';
 * import { mcpScopes, verifyMcpRequest } from 'agent-iam/mcp';
 * const scopes = mcpScopes({ tools: { whoami: [], refund: ['payments:write'] } });
 * export default {
 *   async fetch(request: Request): Promise<Response> {
 *     try {
 *       const { context, body } = await verifyMcpRequest(verifier, request, scopes, { requiredScopes: ['mcp:tools'] });
 *       return runWithContext(context, () => transport.handleRequest(request, { parsedBody: body }));
 *     } catch (e) {
 *       const r = renderError(e);
 *       return new Response(JSON.stringify(r.body), { status: r.status, headers: r.headers });
 *     }
 *   },
 * };
 * ```
 */
export async function verifyMcpRequest(
  verifier: Verifier,
  request: Request,
  scopes: McpScopes,
  options: VerifyMcpRequestOptions = {},
): Promise<VerifyMcpRequestResult> {
  const base = options.requiredScopes ?? [];
  if (request.method.toUpperCase() !== 'POST') {
    return { context: await verifier.verify(request, base.length > 0 ? { requiredScopes: [...base] } : undefined), body: undefined };
  }
  const { body } = await readWebJson(request.clone(), scopes.maxBodyBytes);
  const plan = planMcpRequest(scopes, base, body, request.headers);
  const context = await verifier.verify(request, plan.requiredScopes.length > 0 ? { requiredScopes: plan.requiredScopes } : undefined);
  if (plan.refusal !== undefined) throw plan.refusal;
  return { context, body };
}
