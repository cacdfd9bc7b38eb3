/**
 * Internal module. What the Express and Hono adapters share: building the verifier once, checking adapter
 * options once, and the scope check behind `requireScopes`. Framework-free; never exported from the
 * root entry.
 *
 * @module
 */
import { z } from 'zod';
import type { AgentContext } from '../context.js';
import { AgentIamError, bearerChallenge, isAgentIamError } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { createVerifier, isVerifier, type Verifier, type VerifierOptions } from '../inbound/verifier.js';
import { toMcpScopes, type McpScopes, type McpScopesOptions } from '../mcp/scopes.js';

/** Options of `agentAuth` in both adapters. */
export interface AgentAuthOptions {
  /** Scopes every request through this middleware must hold (403 `INSUFFICIENT_SCOPE` otherwise). */
  requiredScopes?: string[];
  /**
   * Per-tool scopes of an MCP endpoint (`mcpScopes(...)` from `agent-iam/mcp`, or its options): a
   * `POST`'s JSON-RPC body is read (bounded) before the token is verified, its `Mcp-Method` /
   * `Mcp-Name` headers are checked against it (400 `REQUEST_INVALID` when they disagree), and the
   * token must hold `requiredScopes` and every scope the body needs: one 401/403 challenge names them
   * all. Mount this middleware on the MCP endpoint only; with Express, hand `req.body` to the MCP
   * transport (`transport.handleRequest(req, res, req.body)`), since the stream has been read.
   */
  mcp?: McpScopes | McpScopesOptions;
}

/** The `X-End-User-ID` header, lower-cased as Node and `Headers` store it. */
export const END_USER_HEADER = 'x-end-user-id';

/** RFC 6749 §3.3 scope-token: visible ASCII except space, `"` and `\`. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be an RFC 6749 scope token');
const agentAuthOptionsSchema = z.strictObject({
  requiredScopes: z.array(scopeToken).optional(),
  mcp: z.custom<object>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'must be mcpScopes(...) or its options').optional(),
});
const scopeListSchema = z.array(scopeToken).min(1, 'name at least one scope');

/**
 * The verifier each context was produced by, so `requireScopes` can build that verifier's challenge.
 * Keyed by the context's `claims` object, which the verified-token cache shares across every request
 * that presents the same token: a cache hit then costs a lookup, not a new weak entry.
 */
const verifierOfContext = new WeakMap<object, Verifier>();

/** A verifier, or options to build one, and the adapter options; all checked here, at construction. */
export interface AdapterSetup {
  verifier: Verifier;
  /** `undefined` when no scopes are required, so the hot path passes nothing. */
  verifyOptions: { requiredScopes: string[] } | undefined;
  /** The MCP per-tool scopes, when configured. */
  mcp?: McpScopes;
  /** The base scopes (`requiredScopes`), for the MCP plan. */
  requiredScopes?: readonly string[];
}

/** Build (or take) the verifier once and validate `options`; throws `CONFIG_INVALID`. */
export function setupAdapter(verifierOrOptions: Verifier | VerifierOptions, options: AgentAuthOptions | undefined): AdapterSetup {
  const parsed = parseOptions(agentAuthOptionsSchema, options ?? {}, 'agentAuth');
  const verifier = isVerifier(verifierOrOptions) ? verifierOrOptions : createVerifier(verifierOrOptions);
  const required = parsed.requiredScopes;
  const setup: AdapterSetup = { verifier, verifyOptions: required !== undefined && required.length > 0 ? { requiredScopes: [...required] } : undefined };
  if (parsed.mcp !== undefined) {
    setup.mcp = toMcpScopes(parsed.mcp as McpScopes | McpScopesOptions, 'agentAuth.mcp');
    setup.requiredScopes = Object.freeze([...(required ?? [])]);
  }
  return setup;
}

/** Validate the scopes of `requireScopes(...)`; throws `CONFIG_INVALID`. */
export function parseScopes(scopes: string[]): string[] {
  return [...parseOptions(scopeListSchema, scopes, 'requireScopes')];
}

/**
 * Node's `IncomingMessage` builds `headersDistinct` lazily from `rawHeaders`, reading only as many
 * entries as it parsed (a private `kHeadersCount`), found once by its description.
 */
let headersCountKey: symbol | undefined;

/**
 * Drop every client-sent `X-End-User-ID` from a Node `IncomingMessage`-like object (`headers`,
 * `rawHeaders` which keeps every line, and `headersDistinct`) and set the verified one, if any.
 */
export function scrubNodeHeaders(message: unknown, userId: string | undefined): void {
  if (typeof message !== 'object' || message === null) return;
  const target = message as { headers?: unknown; rawHeaders?: unknown; headersDistinct?: unknown } & Record<symbol, unknown>;
  const headers = target.headers; // read first: Node computes it lazily from rawHeaders
  const rawHeaders = target.rawHeaders;
  if (typeof headers === 'object' && headers !== null) {
    const record = headers as Record<string, unknown>;
    if (record[END_USER_HEADER] !== undefined) delete record[END_USER_HEADER];
    if (userId !== undefined) record[END_USER_HEADER] = userId;
  }
  if (!Array.isArray(rawHeaders)) return;
  headersCountKey ??= Object.getOwnPropertySymbols(target).find((s) => s.description === 'kHeadersCount');
  const countKey = headersCountKey !== undefined && typeof target[headersCountKey] === 'number' ? headersCountKey : undefined;
  // Without the count field, patch a computed headersDistinct instead (built before rawHeaders changes).
  const distinct = countKey === undefined && 'headersDistinct' in target ? (target.headersDistinct as Record<string, unknown> | undefined) : undefined;
  for (let i = rawHeaders.length - 2; i >= 0; i -= 2) {
    const name: unknown = rawHeaders[i];
    if (typeof name === 'string' && name.length === END_USER_HEADER.length && name.toLowerCase() === END_USER_HEADER) rawHeaders.splice(i, 2);
  }
  if (userId !== undefined) rawHeaders.push('X-End-User-ID', userId);
  if (countKey !== undefined) {
    target[countKey] = rawHeaders.length;
    // A headersDistinct built before the scrub is dropped (Node's setter), and rebuilt from rawHeaders on
    // demand. Only when one was built: the setter adds a property to every request, which costs more
    // than the rest of the scrub.
    if (headersDistinctBuilt(target)) target.headersDistinct = undefined;
  } else if (typeof distinct === 'object' && distinct !== null) {
    delete distinct[END_USER_HEADER];
    if (userId !== undefined) distinct[END_USER_HEADER] = [userId];
  }
}

/**
 * Node's private `kHeadersDistinct`, learnt once; `null` when this runtime has none (then the cache
 * is always reset).
 */
let headersDistinctKey: symbol | null | undefined;

/** Whether Node has built (cached) `headersDistinct` on this message. */
function headersDistinctBuilt(target: Record<symbol, unknown> & { headersDistinct?: unknown }): boolean {
  if (headersDistinctKey === undefined) {
    const find = () => Object.getOwnPropertySymbols(target).find((s) => s.description === 'kHeadersDistinct');
    let key = find();
    if (key === undefined) {
      void target.headersDistinct; // build it once, on this first message, so that its private key shows
      key = find();
    }
    headersDistinctKey = key ?? null;
  }
  if (headersDistinctKey === null) return true;
  const built = target[headersDistinctKey];
  return built !== undefined && built !== null;
}

/** Remember which verifier produced `context`. */
export function rememberVerifier(context: AgentContext, verifier: Verifier): void {
  const key = context.claims;
  if (verifierOfContext.get(key) !== verifier) verifierOfContext.set(key, verifier);
}

/**
 * Throw unless `context` holds every scope: `TOKEN_MISSING` (401) without a context or for an
 * anonymous one (open mode), `INSUFFICIENT_SCOPE` (403, `scope="..."`) otherwise, with the challenge
 * of the verifier that produced the context.
 */
export function checkScopes(context: AgentContext | undefined, scopes: string[]): void {
  const verifier = context === undefined ? undefined : verifierOfContext.get(context.claims);
  if (context === undefined || !context.authenticated) {
    // RFC 6750 §3.1: no `error` when the request carried no token; keep the verifier's realm and
    // resource_metadata (taken from its insufficient-scope challenge) so the client can find the AS.
    let challenge = bearerChallenge({ scope: scopes });
    if (context !== undefined && verifier !== undefined) {
      try {
        verifier.requireScopes(context, scopes);
      } catch (e) {
        if (isAgentIamError(e) && e.wwwAuthenticate !== undefined) challenge = e.wwwAuthenticate.replace(/error="[^"]*"(, )?/, '').replace(/,? $/, '');
      }
    }
    throw new AgentIamError('TOKEN_MISSING', 'A bearer token is required', { wwwAuthenticate: challenge });
  }
  if (verifier !== undefined) {
    verifier.requireScopes(context, scopes);
    return;
  }
  const missing = scopes.filter((s) => !context.scopes.includes(s));
  if (missing.length > 0) {
    throw new AgentIamError('INSUFFICIENT_SCOPE', 'The token does not grant the required scopes', {
      scopes,
      wwwAuthenticate: bearerChallenge({ error: 'insufficient_scope', scope: scopes }),
    });
  }
}
