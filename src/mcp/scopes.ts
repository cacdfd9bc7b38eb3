import { z } from 'zod';
import { AgentIamError, configError, requestInvalid } from '../errors.js';
import { parseOptions } from '../lib/options.js';

/**
 * Options of {@link mcpScopes}: which scopes each MCP tool (and, optionally, each JSON-RPC method)
 * needs on top of the base scopes every request through the middleware needs (`requiredScopes`).
 *
 * @example
 * ```ts
 * const options: McpScopesOptions = {
 *   tools: { whoami: [], refund: ['payments:write'] },
 *   methods: { 'resources/read': ['files:read'] },
 *   maxBodyBytes: 256 * 1024,
 * };
 * ```
 */
export interface McpScopesOptions {
  /**
   * Scopes by tool name, for `tools/call` (`params.name`). `[]` lets a tool through with the base
   * scopes alone. A tool that is not listed here is refused (403 `TOOL_NOT_REGISTERED`) unless
   * {@link McpScopesOptions.unlistedTools} is set: list every tool your server registers.
   */
  tools?: Record<string, string[]>;
  /**
   * Scopes by JSON-RPC method, e.g. `{ 'resources/read': ['files:read'] }`. Scopes given for
   * `tools/call` are needed by every tool call, in addition to the tool's own. A method not listed
   * needs only the base scopes.
   */
  methods?: Record<string, string[]>;
  /**
   * Scopes a `tools/call` of a tool that {@link McpScopesOptions.tools} does not list needs. Without
   * this option such calls are refused (deny by default); `[]` lets them through with the base scopes.
   */
  unlistedTools?: string[];
  /**
   * Largest JSON-RPC body the middleware reads, in bytes (default 1 MiB). A larger body is refused
   * with 413 `REQUEST_INVALID` before it is parsed.
   */
  maxBodyBytes?: number;
}

/**
 * One JSON-RPC request or notification of a body, as {@link McpScopes.requirement} read it.
 *
 * @example
 * ```ts
 * const call: McpCall = { method: 'tools/call', name: 'refund' };
 * ```
 */
export interface McpCall {
  /** The JSON-RPC `method`, e.g. `tools/call`. */
  readonly method: string;
  /**
   * What `Mcp-Name` mirrors for this method: `params.name` of `tools/call` and `prompts/get`,
   * `params.uri` of `resources/read`, `params.taskId` of `tasks/get`, `tasks/update`, `tasks/cancel`.
   */
  readonly name?: string;
}

/**
 * What one JSON-RPC body needs: see {@link McpScopes.requirement}.
 *
 * @example
 * ```ts
 * const r: McpRequirement = scopes.requirement(body, request.headers);
 * if (r.unlistedTools.length > 0) refuse();
 * else await verifier.verify(request, { requiredScopes: ['mcp:tools', ...r.scopes] });
 * ```
 */
export interface McpRequirement {
  /** The requests and notifications of the body, in order (JSON-RPC responses carry no method and are left out). */
  readonly calls: readonly McpCall[];
  /** The union of the scopes they need (not counting the middleware's own `requiredScopes`), in first-seen order. */
  readonly scopes: readonly string[];
  /** Tools called that the configuration does not list (never set when `unlistedTools` is configured). */
  readonly unlistedTools: readonly string[];
}

/**
 * Headers as the adapters have them: a `Headers`, or Node's `req.headers` (lower-case names; an
 * array value means the header was sent more than once).
 *
 * @example
 * ```ts
 * scopes.requirement(req.body, req.headers as McpHeaders, req.rawHeaders);
 * ```
 */
export type McpHeaders = Headers | Record<string, string | string[] | undefined>;

/**
 * Per-tool scopes of an MCP server, built by {@link mcpScopes}; pass it to `agentAuth(verifier,
 * { mcp })` (Express, Hono) or to {@link verifyMcpRequest}.
 *
 * @example
 * ```ts
 * const scopes = mcpScopes({ tools: { refund: ['payments:write'], whoami: [] } });
 * scopes.requirement({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'refund' } }).scopes;
 * // ['payments:write']
 * ```
 */
export interface McpScopes {
  /**
   * The scopes a parsed JSON-RPC body (one message or a batch) needs, after checking the
   * `Mcp-Method` and `Mcp-Name` headers against it: when present, they must equal the body's values
   * (for a batch, every message's). Throws `REQUEST_INVALID` (400) for a body that is not JSON-RPC,
   * a `tools/call` without a tool name, or a header that the body contradicts.
   */
  requirement(body: unknown, headers?: McpHeaders, rawHeaders?: readonly string[]): McpRequirement;
  /** Largest body the adapters read, in bytes. */
  readonly maxBodyBytes: number;
}

const MCP_SCOPES = Symbol.for('agent-iam.mcpScopes');
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** RFC 6749 §3.3 scope-token: visible ASCII except space, `"` and `\`. */
const scopeToken = z
  .string()
  .regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be an RFC 6749 scope token')
  .refine((s) => s !== 'offline_access', 'offline_access asks the authorization server for refresh tokens; a resource never requires it');
const scopeList = z.array(scopeToken);
const optionsSchema = z.strictObject({
  tools: z.record(z.string().min(1).max(256), scopeList).optional(),
  methods: z.record(z.string().min(1).max(256), scopeList).optional(),
  unlistedTools: scopeList.optional(),
  maxBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).optional(),
});

/** Which `params` member `Mcp-Name` mirrors, per method (MCP 2026-07-28, SEP-2243 and SEP-2663). */
const NAME_PARAM: ReadonlyMap<string, string> = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
  ['tasks/get', 'taskId'],
  ['tasks/update', 'taskId'],
  ['tasks/cancel', 'taskId'],
]);

const jsonRpcId = z.union([z.string(), z.number(), z.null()]);
const requestMessage = z.looseObject({
  jsonrpc: z.literal('2.0'),
  method: z.string().min(1).max(1024),
  id: jsonRpcId.optional(),
  params: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
});
const responseMessage = z.union([
  z.looseObject({ jsonrpc: z.literal('2.0'), id: jsonRpcId, result: z.unknown() }).refine((m) => 'result' in m),
  z.looseObject({ jsonrpc: z.literal('2.0'), id: jsonRpcId, error: z.looseObject({ code: z.number(), message: z.string() }) }),
]);

const invalid = requestInvalid;

/** The one value of a header, `undefined` when absent; several lines of it are refused. */
function headerValue(headers: McpHeaders | undefined, rawHeaders: readonly string[] | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  if (rawHeaders !== undefined) {
    let count = 0;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const n = rawHeaders[i];
      if (typeof n === 'string' && n.length === name.length && n.toLowerCase() === name) count++;
    }
    if (count > 1) throw invalid(`The request carries more than one ${displayName(name)} header`);
  }
  const value = isHeaders(headers) ? headers.get(name) : headers[name];
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) {
    if (value.length !== 1) throw invalid(`The request carries more than one ${displayName(name)} header`);
    return value[0];
  }
  return value;
}

/** A `Headers` (duck-typed: another realm's, or a runtime's own class, is one too). */
function isHeaders(headers: McpHeaders): headers is Headers {
  return typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function';
}

function displayName(name: string): string {
  return name === 'mcp-method' ? 'Mcp-Method' : 'Mcp-Name';
}

const BASE64_PREFIX = '=?base64?';
const BASE64_SUFFIX = '?=';
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An `Mcp-Name` value as the client meant it: `=?base64?…?=` is decoded (UTF-8), anything else is literal. */
function decodeNameHeader(value: string): string {
  if (!value.startsWith(BASE64_PREFIX) || !value.endsWith(BASE64_SUFFIX) || value.length < BASE64_PREFIX.length + BASE64_SUFFIX.length) return value;
  const b64 = value.slice(BASE64_PREFIX.length, value.length - BASE64_SUFFIX.length);
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw invalid('The Mcp-Name header carries invalid Base64');
  try {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return utf8.decode(bytes);
  } catch {
    throw invalid('The Mcp-Name header carries invalid Base64');
  }
}

/** The calls of a body, checked against the headers. */
function readCalls(body: unknown, headers: McpHeaders | undefined, rawHeaders: readonly string[] | undefined): McpCall[] {
  const messages = Array.isArray(body) ? body : [body];
  if (messages.length === 0) throw invalid('The JSON-RPC batch is empty');
  const methodHeader = headerValue(headers, rawHeaders, 'mcp-method');
  const nameHeaderRaw = headerValue(headers, rawHeaders, 'mcp-name');
  const nameHeader = nameHeaderRaw === undefined ? undefined : decodeNameHeader(nameHeaderRaw);
  const calls: McpCall[] = [];
  for (const message of messages) {
    const request = requestMessage.safeParse(message);
    if (!request.success) {
      if (!responseMessage.safeParse(message).success) throw invalid('The request body is not a JSON-RPC 2.0 message');
      // A response (to a server request) carries no method: no header may claim one.
      if (methodHeader !== undefined || nameHeader !== undefined) throw invalid('The Mcp-Method or Mcp-Name header does not match the request body');
      continue;
    }
    const { method } = request.data;
    const params = request.data.params;
    const key = NAME_PARAM.get(method);
    const named = key !== undefined && params !== undefined && !Array.isArray(params) && Object.hasOwn(params, key) ? params[key] : undefined;
    if (method === 'tools/call' && (typeof named !== 'string' || named === '')) throw invalid('A tools/call request must name the tool (params.name)');
    if (methodHeader !== undefined && methodHeader !== method) throw invalid('The Mcp-Method header does not match the method of the request body');
    if (nameHeader !== undefined && (typeof named !== 'string' || named !== nameHeader)) {
      throw invalid('The Mcp-Name header does not match the name of the request body');
    }
    calls.push(typeof named === 'string' ? { method, name: named } : { method });
  }
  return calls;
}

/**
 * Per-tool scopes for an MCP server, enforced at the HTTP layer from the JSON-RPC body: `tools/call`
 * needs the scopes of the tool it names (`params.name`), any method may need scopes of its own, and a
 * batch needs the union of its messages'. The `Mcp-Method` and `Mcp-Name` headers (MCP 2026-07-28),
 * when sent, must agree with the body, else 400 `REQUEST_INVALID`: authorization always follows the
 * body, never a header that the body contradicts.
 *
 * A missing scope is answered with one 403 `insufficient_scope` challenge whose `scope` names every
 * scope the request needs (the middleware's `requiredScopes` and the tool's), so that a client can
 * step up in one authorization. A tool that is not listed is refused with 403 `TOOL_NOT_REGISTERED`
 * unless `unlistedTools` says which scopes such tools need. `offline_access` is refused
 * (`CONFIG_INVALID`): it is the authorization server's business, never a resource's requirement.
 *
 * Bad options throw `CONFIG_INVALID` here, at construction.
 *
 * @see https://modelcontextprotocol.io/specification/2026-07-28/basic/authorization
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (`insufficient_scope`)
 *
 * @example
 * ```ts
 * import { agentAuth } from 'agent-iam/express';
 * import { mcpScopes } from 'agent-iam/mcp';
 * const scopes = mcpScopes({
 *   tools: { whoami: [], refund: ['payments:write'] },
 *   methods: { 'resources/read': ['files:read'] },
 * });
 * app.post('/mcp', agentAuth(verifier, { requiredScopes: ['mcp:tools'], mcp: scopes }), mcpHandler);
 * // tools/call refund with only mcp:tools → 403
 * // WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:tools payments:write", resource_metadata="…"
 * ```
 */
export function mcpScopes(options: McpScopesOptions): McpScopes {
  return buildMcpScopes(options, 'mcpScopes');
}

function buildMcpScopes(options: McpScopesOptions, prefix: string): McpScopes {
  const o = parseOptions(optionsSchema, options, prefix);
  const tools = new Map<string, readonly string[]>(Object.entries(o.tools ?? {}).map(([k, v]) => [k, Object.freeze([...v])]));
  const methods = new Map<string, readonly string[]>(Object.entries(o.methods ?? {}).map(([k, v]) => [k, Object.freeze([...v])]));
  const unlisted = o.unlistedTools === undefined ? undefined : Object.freeze([...o.unlistedTools]);
  const maxBodyBytes = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  function requirement(body: unknown, headers?: McpHeaders, rawHeaders?: readonly string[]): McpRequirement {
    const calls = readCalls(body, headers, rawHeaders);
    const scopes = new Set<string>();
    const unlistedTools: string[] = [];
    for (const call of calls) {
      for (const s of methods.get(call.method) ?? []) scopes.add(s);
      if (call.method !== 'tools/call') continue;
      const own = tools.get(call.name as string) ?? unlisted;
      if (own === undefined) unlistedTools.push(call.name as string);
      else for (const s of own) scopes.add(s);
    }
    return { calls, scopes: [...scopes], unlistedTools };
  }

  return Object.freeze({ [MCP_SCOPES]: true, requirement, maxBodyBytes });
}

/**
 * True when `value` was built by {@link mcpScopes} (from either the ESM or the CJS build).
 *
 * @example
 * ```ts
 * const scopes = isMcpScopes(arg) ? arg : mcpScopes(arg);
 * ```
 */
export function isMcpScopes(value: unknown): value is McpScopes {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MCP_SCOPES] === true;
}

/** @internal What the middleware does with one request: verify with these scopes, then refuse, or not. */
export interface McpPlan {
  /** The base scopes and the body's, for the verifier (one challenge naming them all). */
  readonly requiredScopes: string[];
  /** Set when the body calls an unlisted tool: answered once the caller is authenticated. */
  readonly refusal?: AgentIamError;
}

/** @internal Plan a request from its parsed body; throws `REQUEST_INVALID`. */
export function planMcpRequest(
  scopes: McpScopes,
  base: readonly string[],
  body: unknown,
  headers: McpHeaders | undefined,
  rawHeaders?: readonly string[],
): McpPlan {
  const r = scopes.requirement(body, headers, rawHeaders);
  if (r.unlistedTools.length > 0) {
    // Authenticate first (base scopes only), so an anonymous caller learns nothing about the tool list.
    return {
      requiredScopes: [...base],
      refusal: new AgentIamError('TOOL_NOT_REGISTERED', 'The MCP tool called is not in the server’s scope configuration'),
    };
  }
  const all = new Set(base);
  for (const s of r.scopes) all.add(s);
  return { requiredScopes: [...all] };
}

/** @internal The scopes (`McpScopes`, or options to build one) given to an adapter; throws `CONFIG_INVALID`. */
export function toMcpScopes(value: McpScopes | McpScopesOptions, field: string): McpScopes {
  if (isMcpScopes(value)) return value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw configError(field, 'must be mcpScopes(...) or its options');
  return buildMcpScopes(value, field);
}
