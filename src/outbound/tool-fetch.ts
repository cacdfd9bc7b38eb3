/**
 * toolFetch: the egress gate. Every request (and every redirect hop) goes through URL safety →
 * tool identification → policy → capability → approval → credential injection and identity
 * forwarding, and only then is sent. Any failure is an {@link AgentIamError} plus an audit event,
 * and nothing is sent.
 *
 * Caller headers are dropped when they are the SDK's to set or describe only the caller's hop
 * (credentials, identity, hop-by-hop), and refused when they would change which operation the tool
 * runs (method and target overrides, another `Host`) unless the tool allows them; an allowed method
 * override is checked by policy and capability like the method itself, and bound by approvals.
 *
 * Capability comes before approval so that no approval is ever created for, or consumed by, a
 * request that could not be sent anyway. `X-End-User-ID` is set just before the credential so that
 * a SigV4 signature covers it.
 *
 * @module
 */
import { z } from 'zod';
import { AgentIamError, configError, isAgentIamError, requestInvalid, storeUnavailable, type AgentIamErrorCode } from '../errors.js';
import { currentContext, type AgentContext } from '../context.js';
import { emitAudit, type AuditDecision, type AuditEvent, type AuditSink } from '../audit/events.js';
import { parseOptions } from '../lib/options.js';
import { hasControlChars, sha256Hex } from '../lib/encoding.js';
import type { TokenSource } from '../tokens/types.js';
import { compileCapabilities, type CapabilityMatcher } from '../policy/capabilities.js';
import { createPolicyEngine, type PolicyEngine, type PolicyRule } from '../policy/policies.js';
import type { ApprovalCheck, ApprovalRequestInput } from '../policy/approvals.js';
import { resolveTools, ToolRegistry, type ResolvedTool, type ToolDefinition } from './tools.js';
import { safeUrl } from './url-safety.js';
import { bodyToBytes, isReplayable } from './body.js';
import { ALLOWABLE_HEADERS, METHOD_OVERRIDES } from '../policy/headers.js';
import { createInjector, type Injector, type OutgoingRequest } from './credentials/index.js';
import { isoNow } from '../lib/clock.js';
import { PREFLIGHT, type ToolPreflight } from './preflight.js';

/**
 * What toolFetch asks an approvals service; `createApprovals()` implements it.
 *
 * @example
 * ```ts
 * const approvals: ToolFetchApprovals = createApprovals({ store: new Keyv(new KeyvRedis(url)) });
 * ```
 */
export interface ToolFetchApprovals {
  /**
   * `options.consume: false` (a preflight, see the framework adapters): look without spending a
   * single-use approval. An implementation that ignores it fails closed: the approval is spent by the
   * preflight and the request needs another one.
   */
  check(request: ApprovalRequestInput, options?: { consume?: boolean }): Promise<ApprovalCheck>;
  /** Needed for `waitForApproval`: resolves when the approval is decided, or at the timeout. */
  waitForDecision?(id: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<{ status: string } | undefined>;
}

/**
 * Options of {@link createToolFetch}, validated once at construction (`CONFIG_INVALID` naming the
 * field). Unknown keys are refused (a typo such as `polices` or `timeout` is named, not ignored), and
 * so are combinations that cannot work: a rule for this agent (or `*`) naming a tool that is not
 * registered, an `oauth2`/`clientCredentials`/`tokenExchange` tool whose `connection` the token
 * manager does not have, `perUser: false` on an `oauth2` or `tokenExchange` tool.
 *
 * @example
 * ```ts
 * const options: ToolFetchOptions = { agent: { id: 'a' }, tools: toolsFromEnv(), policies: [{ agent: 'a', tool: '*' }], timeoutMs: 30_000 };
 * ```
 */
export interface ToolFetchOptions {
  /** The agent this toolFetch acts as; policies name it. */
  agent: { id: string };
  tools: ToolDefinition[];
  /** Every rule that can apply to this agent must name a registered tool or `*`. */
  policies: PolicyRule[];
  /**
   * Token manager, required by `oauth2`, `clientCredentials` and `tokenExchange` tools. With
   * `createTokenManager()`'s manager, each such tool's `connection` must be one of its connections.
   */
  tokens?: TokenSource;
  /** Required when a policy has `effect: 'approval'`. */
  approvals?: ToolFetchApprovals;
  audit?: AuditSink;
  /** The fetch to send with (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Claim holding the user's groups (default `groups`). */
  groupsClaim?: string;
  /** Bound on the whole request including redirects, in ms (default: none). */
  timeoutMs?: number;
  /** Bound on a credential source (token manager, AWS credential provider), in ms (default 10000). */
  credentialTimeoutMs?: number;
  /** Redirects followed within the same tool (default 5, at most 20). */
  maxRedirects?: number;
}

/**
 * `RequestInit` plus an explicit context (default: the current one set by the inbound adapters)
 * and an optional summary for an approver.
 * `redirect`: `follow` (default) follows redirects within the same tool, re-checking every hop;
 * `manual` returns the 3xx response as is; `error` fails with `REDIRECT_BLOCKED` on any redirect.
 *
 * @example
 * ```ts
 * await toolFetch(url, { method: 'POST', body: JSON.stringify(item), headers: { 'content-type': 'application/json' }, context });
 * ```
 */
export type ToolFetchInit = RequestInit & {
  context?: AgentContext;
  /**
   * For a request a policy sends to approval: a summary for the approver (at most 500 characters,
   * no control characters; `REQUEST_INVALID` otherwise), e.g. `'Refund 20 EUR on ch_123'`. Shown
   * as given, never verified and not bound: the approval is bound to the request itself (see
   * `createApprovals`). Ignored when no approval is needed.
   */
  approvalDescription?: string;
  /**
   * For a request a policy sends to approval: wait up to this many milliseconds for a person to
   * decide (the approvals inbox, the JSON routes, CIBA on the user's device) instead of failing at
   * once with `APPROVAL_REQUIRED`. Approved: the request goes on and is sent once. Denied or
   * lapsed: `POLICY_DENIED` with `reason` `approval_denied` / `approval_expired`. Still pending at
   * the end: `APPROVAL_REQUIRED` as without waiting.
   */
  waitForApproval?: number;
};

/**
 * A `fetch` that only reaches registered tools, under policy, with credentials injected.
 *
 * @example
 * ```ts
 * const res = await toolFetch('https://api.github.com/user', { context: req.agentContext });
 * ```
 */
export type ToolFetch = (input: string | URL | Request, init?: ToolFetchInit) => Promise<Response>;

interface CompiledTool extends ResolvedTool {
  readonly matcher: CapabilityMatcher;
  readonly injector: Injector;
}

const optionsSchema = z.strictObject({
  agent: z.strictObject({ id: z.string().min(1).regex(/^[\x21-\x7e]{1,256}$/, 'must be visible ASCII') }),
  tools: z.array(z.unknown()),
  policies: z.array(z.unknown()),
  tokens: z.custom<TokenSource>((v) => typeof v === 'object' && v !== null, 'must be a token source').optional(),
  approvals: z
    .custom<ToolFetchApprovals>((v) => typeof (v as { check?: unknown })?.check === 'function', 'must have check()')
    .optional(),
  audit: z
    .custom<AuditSink>(
      (v) => typeof v === 'function' || typeof (v as { write?: unknown })?.write === 'function',
      'must be a function or have write()',
    )
    .optional(),
  fetch: z.custom<typeof fetch>((v) => typeof v === 'function', 'must be a function').optional(),
  groupsClaim: z.string().min(1).optional(),
  timeoutMs: z.number().int().positive().optional(),
  credentialTimeoutMs: z.number().int().positive().optional(),
  maxRedirects: z.number().int().min(0).max(20).optional(),
});

/**
 * Caller headers dropped without a word: the caller's value is never what the tool sees, and
 * dropping it cannot change which operation the tool runs.
 * - Credentials and identity (`Authorization`, `Cookie`, `Proxy-Authorization`, `X-End-User-ID`,
 *   `X-Amz-*`, client-address headers): the SDK sets them itself, after every check.
 * - Hop-by-hop and framing (`Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
 *   `Transfer-Encoding`, `Upgrade`, `Expect`, `Content-Length`): they describe the caller's hop to
 *   toolFetch, not the request to the tool; an intermediary must remove them (RFC 9110 §7.6.1), and
 *   fetch frames the body and manages the connection itself (it refuses several of them outright).
 *   Refusing them would break passing an incoming request's headers on, for no gain.
 * `Host` is dropped when it names the URL's own host and refused otherwise (see {@link checkRestricted}).
 */
const STRIPPED = new Set([
  'authorization',
  'cookie',
  'proxy-authorization',
  'x-end-user-id',
  'host',
  'content-length',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'upgrade',
  'trailer',
  'expect',
  // client-address headers a tool may trust: only the SDK speaks for the caller
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
]);
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location'];
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
// eslint-disable-next-line no-control-regex
/** CR, LF, NUL and every other control but tab, and DEL. */
const BAD_HEADER_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const USER_ID = /^[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?$/;
/**
 * The code of a tool that cannot be reached (connection refused, DNS, TLS, reset): `TOOL_UNAVAILABLE`,
 * 502, with `reason: 'tool_unreachable'`. A code of its own: none of the published ones said "the tool".
 */
const TOOL_UNREACHABLE: AgentIamErrorCode = 'TOOL_UNAVAILABLE';
const RANK = { allow: 0, approval: 1, deny: 2 } as const;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function invalid(message: string): AgentIamError {
  return requestInvalid(message);
}

function decisionOf(code: AgentIamErrorCode | undefined): AuditDecision {
  switch (code) {
    case undefined:
      return 'error';
    case 'APPROVAL_REQUIRED':
      return 'approval';
    case 'CONSENT_REQUIRED':
      return 'consent';
    case 'REQUEST_INVALID':
    case 'TOOL_NOT_REGISTERED':
    case 'POLICY_DENIED':
    case 'CAPABILITY_DENIED':
    case 'REDIRECT_BLOCKED':
    case 'SCOPE_ESCALATION':
      return 'deny';
    default:
      return 'error';
  }
}

/** One `tool.*` audit event: never a query string, header or body. */
function toolEvent(
  type: AuditEvent['type'],
  decision: AuditDecision,
  agentId: string,
  context: AgentContext | undefined,
  tool: string | undefined,
  method: string,
  path: string | undefined,
  approvalId: string | undefined,
  started: number,
  status: number | undefined,
): AuditEvent {
  const event: AuditEvent = { type, time: isoNow(), agentId, decision };
  if (context !== undefined) {
    if (context.userId !== undefined) event.userId = context.userId;
    if (context.actorChain.length > 0) event.actorChain = context.actorChain.map((a) => a.subject);
  }
  if (tool !== undefined) event.tool = tool;
  event.method = method;
  if (path !== undefined) event.path = path;
  if (approvalId !== undefined) event.approvalId = approvalId;
  if (context !== undefined) event.requestId = context.requestId;
  event.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
  if (status !== undefined) event.status = status;
  return event;
}

/**
 * What {@link callerHeaders} found besides the headers it keeps: the caller's `Host` (dropped, but
 * compared with the URL once the tool is known) and the restricted headers present, which
 * {@link checkRestricted} refuses or binds per tool.
 */
interface HeaderFindings {
  host: string | undefined;
  /** Names as they appear in the `Headers` (lower case), each a restricted header or an underscore spelling of one. */
  restricted: string[] | undefined;
}

/**
 * Caller headers as one `Headers`, refusing CR/LF/NUL before `Headers` can trim them away, and
 * dropping the {@link STRIPPED} ones.
 */
function callerHeaders(init: HeadersInit | undefined | null, found: HeaderFindings): Headers {
  if (init === undefined || init === null) return new Headers(); // the common case: nothing to check or strip
  if (!(init instanceof Headers)) {
    const entries: Iterable<readonly unknown[]> = Array.isArray(init) ? init : Object.entries(init);
    for (const entry of entries) {
      const [name, value] = entry;
      if (typeof name !== 'string' || typeof value !== 'string' || BAD_HEADER_VALUE.test(value) || BAD_HEADER_VALUE.test(name)) {
        throw invalid('Request header rejected: names and values must be strings without CR, LF, NUL or other controls');
      }
    }
  }
  let headers: Headers;
  try {
    headers = new Headers(init);
  } catch {
    throw invalid('Request header rejected: invalid name or value');
  }
  let drop: string[] | undefined;
  for (const name of headers.keys()) {
    // CGI/WSGI servers read `X_End_User_ID` as `X-End-User-ID`: compare with `_` as `-`.
    const n = name.indexOf('_') === -1 ? name : name.replace(/_/g, '-');
    if (ALLOWABLE_HEADERS.has(n)) (found.restricted ??= []).push(name);
    else if (STRIPPED.has(n) || n.startsWith('x-amz-') || n.startsWith('proxy-') || n.startsWith('x-forwarded-')) {
      if (name === 'host') found.host = headers.get('host') ?? undefined;
      (drop ??= []).push(name);
    }
  }
  if (drop !== undefined) for (const name of drop) headers.delete(name);
  return headers;
}

/** Reasons toolFetch itself puts on its errors and audit events (others' reasons are not copied). */
const OWN_REASONS: ReadonlySet<string> = new Set(['tool_unreachable', 'header_not_allowed', 'approval_denied', 'approval_expired']);

function headerRefused(name: string, message: string): AgentIamError {
  return requestInvalid(message, { field: `headers.${name}`, reason: 'header_not_allowed' });
}

/** What an allowed restricted header adds to the checks: methods the tool may run, values an approval binds. */
interface Restricted {
  /** Methods named by allowed method-override headers (upper case), besides the method sent. */
  overrides: string[] | undefined;
  /** Allowed restricted headers sent, lower-case name → value, for the approval binding. */
  bound: Record<string, string> | undefined;
}

const NOTHING_RESTRICTED: Restricted = Object.freeze({ overrides: undefined, bound: undefined });

/**
 * The header policy of one tool, applied once the tool is known and before any policy, approval or
 * credential. Refused (`REQUEST_INVALID`, `field: 'headers.<name>'`, `reason: 'header_not_allowed'`),
 * never stripped:
 * - a method override the tool does not allow: the caller meant another method than the one the
 *   policy and capabilities would check, so dropping it silently would run an operation the caller
 *   did not ask for, and sending it would run one nobody checked;
 * - a target override (`X-Original-URL`, `X-Rewrite-URL`, `X-Host`, `X-HTTP-Host-Override`) the tool
 *   does not allow, for the same reason with the path or host;
 * - an underscore spelling of either (`X_HTTP_Method_Override`), which CGI-style servers read as the
 *   real header and which cannot be bound unambiguously;
 * - a `Host` naming another host than the URL: the URL decides which tool is called, and the tool is
 *   found by its origin, so another `Host` would reach what no check looked at. Never allowable; a
 *   `Host` equal to the URL's is dropped (fetch sets it).
 * An allowed method override must hold exactly one method (not `CONNECT`, `TRACE` or `TRACK`); it is
 * sent upper case, as the method is.
 */
function checkRestricted(found: HeaderFindings, headers: Headers, tool: CompiledTool, target: URL): Restricted {
  if (found.host !== undefined && !sameHost(found.host, target)) {
    throw headerRefused('host', `Tool ${tool.name}: request header host names another host than the URL (the URL decides which tool is called)`);
  }
  if (found.restricted === undefined) return NOTHING_RESTRICTED; // the common case
  const out: Restricted = { overrides: undefined, bound: undefined };
  for (const name of found.restricted) {
    const canonical = name.replace(/_/g, '-');
    const what = METHOD_OVERRIDES.has(canonical) ? 'the method' : 'the URL or host';
    if (name !== canonical) {
      throw headerRefused(canonical, `Tool ${tool.name}: request header ${name} (an underscore spelling of ${canonical}, which changes ${what} the tool acts on) is not allowed`);
    }
    if (!tool.allowHeaders.has(name)) {
      throw headerRefused(name, `Tool ${tool.name}: request header ${name} changes ${what} the tool acts on and is not allowed (list it in the tool's allowHeaders to send it)`);
    }
    const value = headers.get(name) as string;
    if (METHOD_OVERRIDES.has(name)) {
      const m = value.toUpperCase();
      if (!METHOD.test(value) || FORBIDDEN_METHODS.has(m)) throw headerRefused(name, `Tool ${tool.name}: request header ${name} must hold one HTTP method`);
      if (!(out.overrides ??= []).includes(m)) out.overrides.push(m);
      // Sent, checked and bound as one spelling: the method, upper case (as the method itself).
      if (value !== m) headers.set(name, m);
      (out.bound ??= {})[name] = m;
    } else (out.bound ??= {})[name] = value;
  }
  return out;
}

/** Does a caller's `Host` value name the URL's own host (and port; `:443` on https is the same host)? */
function sameHost(host: string, target: URL): boolean {
  const h = host.trim().toLowerCase();
  if (h === target.host) return true;
  if (!/^[a-z0-9.:[\]-]+$/.test(h)) return false;
  try {
    return new URL(`${target.protocol}//${h}`).host === target.host;
  } catch {
    return false;
  }
}

/**
 * Run an approvals-service call: its own typed errors pass through, an abort is the signal's reason; any
 * other failure is `STORE_UNAVAILABLE`, without the service's error (it may quote a stored record).
 */
async function approvalStore<T>(op: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  try {
    return await op();
  } catch (error) {
    if (isAgentIamError(error)) throw error;
    if (signal?.aborted === true) throw signal.reason;
    throw storeUnavailable('Approval store failed', 'error');
  }
}

function toolFetchReason(error: AgentIamError): string | undefined {
  return error.reason !== undefined && OWN_REASONS.has(error.reason) ? error.reason : undefined;
}

/** A network error code (`ECONNREFUSED`, `ENOTFOUND`, `UND_ERR_CONNECT_TIMEOUT`, `CERT_HAS_EXPIRED`…), when there is one. */
function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) return code;
  }
  return undefined;
}

/**
 * What the send step throws when `fetch` rejects. An abort (the caller's signal, or `timeoutMs`)
 * stays what `fetch` raised, as `fetch` callers expect (`AbortError` / `TimeoutError`). Anything
 * else (connection refused, DNS, TLS, reset) means the tool could not be reached: a typed error
 * naming the tool, with `reason: 'tool_unreachable'` and fetch's error as a non-enumerable `cause`.
 */
function sendFailure(error: unknown, tool: string, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted === true) return error;
  if (isAgentIamError(error)) return error;
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'AbortError' || name === 'TimeoutError') return error;
  const code = networkCode(error);
  return new AgentIamError(TOOL_UNREACHABLE, `Tool ${tool} could not be reached${code === undefined ? '' : ` (${code})`}`, {
    reason: 'tool_unreachable',
    cause: error,
  });
}

/** `error="..."` parameters of a `WWW-Authenticate` value (RFC 6750 §3). */
const CHALLENGE_ERROR = /(?:^|[\s,])error\s*=\s*"?([A-Za-z0-9_.-]+)"?/gi;

/**
 * Does a 401 reject the token itself? Yes, unless every `error` the challenge names says the
 * request, not the token, is at fault (`invalid_request`, `insufficient_scope`): many APIs answer a
 * revoked or expired token with a bare 401 and no `WWW-Authenticate`, so a 401 without an `error`
 * (or with `error="invalid_token"`) counts as a rejection.
 */
function rejectsToken(challenge: string | null): boolean {
  if (challenge === null || challenge.indexOf('error') === -1) return true;
  let named = false;
  for (const m of challenge.matchAll(CHALLENGE_ERROR)) {
    named = true;
    if ((m[1] as string).toLowerCase() === 'invalid_token') return true;
  }
  return !named;
}

/**
 * The scopes a 403 `insufficient_scope` challenge asks for (RFC 6750 §3.1), or undefined when the
 * challenge is not that or names no scope.
 */
function challengedScopes(challenge: string | null): string[] | undefined {
  if (challenge === null || !/(?:^|[\s,])error\s*=\s*"?insufficient_scope"?/i.test(challenge)) return undefined;
  const m = /(?:^|[\s,])scope\s*=\s*(?:"([^"]*)"|([^\s,]+))/i.exec(challenge);
  const value = m?.[1] ?? m?.[2];
  if (value === undefined) return undefined;
  const scopes = value.split(' ').filter((x) => x !== '' && !/[\u0000-\u001f\u007f]/.test(x));
  return scopes.length > 0 && scopes.length <= 100 ? scopes : undefined;
}

const NONE: readonly string[] = Object.freeze([]);

function groupsOf(context: AgentContext | undefined, claim: string): readonly string[] {
  const value = context?.claims[claim];
  if (Array.isArray(value)) return value.every((g) => typeof g === 'string') ? (value as string[]) : value.filter((g): g is string => typeof g === 'string');
  if (typeof value === 'string' && value !== '') return [value];
  return NONE;
}

/** A name from the configuration, fit for a message: printable ASCII, bounded, quoted. */
function printable(value: string): string {
  return JSON.stringify(value.replace(/[^\x20-\x7e]/g, '?').slice(0, 64));
}

/** At most 20 names, for a message that helps find a typo. */
function listOf(names: Iterable<string>): string {
  const all = [...names];
  if (all.length === 0) return 'none';
  const shown = all.slice(0, 20).map(printable).join(', ');
  return all.length > 20 ? `${shown}, … ${all.length - 20} more` : shown;
}

/**
 * A rule that can apply to this agent (its id or `*`) and names a tool that is not registered can
 * never match: a typo that would only show later as `POLICY_DENIED` (or, for a deny rule, as a
 * denial that never happens). Rules for other agents are left alone: one rule list may serve
 * several agents.
 */
function checkPolicyTools(rules: readonly PolicyRule[], tools: readonly ResolvedTool[], agentId: string): void {
  const names = new Set(tools.map((t) => t.name));
  rules.forEach((rule, i) => {
    if (rule.tool === '*' || names.has(rule.tool)) return;
    if (rule.agent !== agentId && rule.agent !== '*') return;
    throw configError(`policies.${i}.tool`, `names tool ${printable(rule.tool)}, which is not registered (tools: ${listOf(names)})`);
  });
}

/** The connection ids of a token manager (`createTokenManager` exposes them), or undefined for another token source. */
function connectionIds(tokens: TokenSource | undefined): ReadonlySet<string> | undefined {
  const ids = (tokens as { connections?: unknown } | undefined)?.connections;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) return undefined;
  return new Set(ids as string[]);
}

/**
 * Create a `fetch` that reaches only registered tools, under policy, with the tool's credential
 * injected and the verified user forwarded as `X-End-User-ID`.
 *
 * Checks, on every request and every redirect hop: URL safety (`REQUEST_INVALID`), tool by exact
 * origin and base path (`TOOL_NOT_REGISTERED`), headers that change what the tool does
 * (`REQUEST_INVALID` with `reason: 'header_not_allowed'` and `field: 'headers.<name>'`: method
 * overrides, target overrides and a `Host` other than the URL's, unless the tool lists them in
 * `allowHeaders`), policy (`POLICY_DENIED`), capability
 * (`CAPABILITY_DENIED`), approval (`APPROVAL_REQUIRED`), credential (`CONSENT_REQUIRED`,
 * `TOKEN_ENDPOINT_UNAVAILABLE`, ...). A tool that acts for a user (`oauth2`, `tokenExchange`,
 * or `perUser: true`) called without a user in the context fails with `POLICY_DENIED`. Redirects
 * are followed (at most `maxRedirects`) only within the same tool; anything else is
 * `REDIRECT_BLOCKED`. A tool that cannot be reached (connection refused, DNS, TLS, reset) fails
 * with `TOOL_UNAVAILABLE` (502), `reason: 'tool_unreachable'`, a message naming the tool and
 * the network error code, and fetch's own error as a non-enumerable `cause`; its audit event carries
 * the same code and reason. Aborts stay as `fetch` raises them (`AbortError` for the caller's
 * signal, `TimeoutError` for `timeoutMs`), with `reason: 'aborted'` or `'timeout'` in the audit event.
 *
 * A tool that answers 401 to a cached `clientCredentials` or `tokenExchange` token (revoked, say)
 * makes the token manager forget exactly that token (that connection, scopes and resource; or that
 * subject token, audience and scopes), so the next call obtains a fresh one. The 401 is returned
 * as is and not retried (a body may not be replayable, and an approval is single use). A 401 whose
 * `WWW-Authenticate` names only `error="invalid_request"` or `"insufficient_scope"` keeps the token.
 *
 * @example
 * ```ts
 * const toolFetch = createToolFetch({
 *   agent: { id: 'support-agent' },
 *   tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'apiKey', key: env.STRIPE_KEY },
 *             capabilities: [{ method: 'GET', path: '/v1/charges/:id' }] }],
 *   policies: [{ agent: 'support-agent', tool: 'stripe' }],
 *   audit: (event) => console.log(JSON.stringify(event)),
 * });
 * const res = await toolFetch('https://api.stripe.com/v1/charges/ch_123');
 * ```
 */
export function createToolFetch(options: ToolFetchOptions): ToolFetch {
  const opts = parseOptions(optionsSchema, options);
  const resolved = resolveTools(opts.tools);
  const engine: PolicyEngine = createPolicyEngine(opts.policies as PolicyRule[]);
  const rules = opts.policies as PolicyRule[];
  checkPolicyTools(rules, resolved, opts.agent.id);
  if (opts.approvals === undefined) {
    const i = rules.findIndex((r) => r.effect === 'approval');
    if (i !== -1) throw configError('approvals', `is required by policies.${i} (effect approval)`);
  }
  const known = connectionIds(opts.tokens);
  const credentialTimeoutMs = opts.credentialTimeoutMs ?? 10_000;
  const compiled: CompiledTool[] = resolved.map((tool) => {
    const needsTokens = tool.auth.type === 'oauth2' || tool.auth.type === 'clientCredentials' || tool.auth.type === 'tokenExchange' || tool.auth.type === 'enterprise';
    if (needsTokens && opts.tokens === undefined) throw configError('tokens', `is required by tools.${tool.index} (${tool.auth.type})`);
    if (needsTokens && known !== undefined) {
      const id = (tool.auth as { connection: string }).connection;
      if (!known.has(id)) {
        throw configError(
          `tools.${tool.index}.auth.connection`,
          `tool ${tool.name} names connection ${printable(id)}, which the token manager does not have (${listOf(known)})`,
        );
      }
      const idp = tool.auth.type === 'enterprise' ? tool.auth.idp : undefined;
      if (idp !== undefined && !known.has(idp)) {
        throw configError(`tools.${tool.index}.auth.idp`, `tool ${tool.name} names connection ${printable(idp)}, which the token manager does not have (${listOf(known)})`);
      }
    }
    return {
      ...tool,
      matcher: compileCapabilities(tool.capabilities, `tools.${tool.index}.capabilities`),
      injector: createInjector(tool.auth, { tool: tool.name, tokens: opts.tokens, credentialTimeoutMs }),
    };
  });
  const registry = new ToolRegistry(compiled);
  const agentId = opts.agent.id;
  const sendFetch = opts.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const groupsClaim = opts.groupsClaim ?? 'groups';
  const timeoutMs = opts.timeoutMs;
  const maxRedirects = opts.maxRedirects ?? 5;
  const approvals = opts.approvals;
  const sink = opts.audit;

  /**
   * The gate. With `dry` it runs every check up to and including the approval (which it only looks
   * at: a single-use approval is not spent) and stops before any credential is asked for: what it
   * would send is written to `dry`, and any refusal is thrown exactly as a real call throws it.
   */
  async function gate(input: string | URL | Request, init: ToolFetchInit | undefined, dry: ToolPreflight | undefined): Promise<Response | undefined> {
    const started = sink === undefined ? 0 : performance.now();
    const context = init?.context ?? currentContext();
    const userId = context?.userId;
    let toolName: string | undefined;
    let method = 'GET';
    let path: string | undefined;
    let approvalId: string | undefined;
    /** The `timeoutMs` bound of this call, to tell a timeout from the caller's own abort. */
    let timeout: AbortSignal | undefined;
    let signal: AbortSignal | undefined;

    try {
      // ---- the request as the caller gave it -------------------------------------------------
      let raw: string;
      let headersInit: HeadersInit | undefined | null = init?.headers;
      let body: unknown = init?.body;
      signal = init?.signal ?? undefined;
      if (typeof input === 'string') raw = input;
      else if (input instanceof URL) raw = input.href;
      else if (input instanceof Request) {
        raw = input.url;
        if (init?.method === undefined) method = input.method;
        if (headersInit === undefined) headersInit = input.headers;
        if (body === undefined) body = input.body;
        if (signal === undefined) signal = input.signal;
      } else throw invalid('toolFetch input must be a string, URL or Request');
      if (init?.method !== undefined) method = init.method;
      const description = init?.approvalDescription;
      if (description !== undefined && (typeof description !== 'string' || description.length > 500 || hasControlChars(description))) {
        throw invalid('approvalDescription must be a string of at most 500 characters without control characters');
      }
      const waitMs = init?.waitForApproval;
      if (waitMs !== undefined && !(typeof waitMs === 'number' && Number.isFinite(waitMs) && waitMs >= 0)) throw invalid('waitForApproval must be a number of milliseconds');
      const redirectMode = init?.redirect ?? (input instanceof Request ? input.redirect : 'follow');
      if (method !== 'GET') {
        // 'GET' (the default) passes both checks as it is
        if (typeof method !== 'string' || !METHOD.test(method)) throw invalid('Invalid request method');
        method = method.toUpperCase();
        if (FORBIDDEN_METHODS.has(method)) throw invalid('Request method not allowed');
      }
      const found: HeaderFindings = { host: undefined, restricted: undefined };
      const headers = callerHeaders(headersInit, found);
      if (body === null) body = undefined;
      if (body !== undefined && (method === 'GET' || method === 'HEAD')) throw invalid('A GET or HEAD request cannot have a body');

      if (timeoutMs !== undefined) {
        timeout = AbortSignal.timeout(timeoutMs);
        signal = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
      }
      const groups = groupsOf(context, groupsClaim);
      const actorChain = context === undefined || context.actorChain.length === 0 ? NONE : context.actorChain.map((a) => a.subject);

      let bodyBytes: Uint8Array | undefined;
      let bodyHash: string | undefined;
      let defaultContentType: string | null = null;

      let url: URL | undefined;
      let tool: CompiledTool | undefined;
      let restricted: Restricted | undefined;
      let rejectedOnce = false;
      let steppedUp = false;
      for (let hop = 0; ; hop++) {
        // ---- 1. URL safety, 2. tool -------------------------------------------------------------
        if (hop === 0) {
          url = safeUrl(raw);
          path = url.pathname;
          tool = registry.find(url);
          if (tool === undefined) throw new AgentIamError('TOOL_NOT_REGISTERED', 'No registered tool for this URL');
        } else {
          let next: URL;
          try {
            next = safeUrl(raw, url);
          } catch {
            throw new AgentIamError('REDIRECT_BLOCKED', `Tool ${toolName} redirected to an unsafe URL`);
          }
          if (registry.find(next) !== tool) {
            throw new AgentIamError('REDIRECT_BLOCKED', `Tool ${toolName} redirected outside the tool`);
          }
          url = next;
          path = url.pathname;
        }
        const current = tool as CompiledTool;
        const target = url as URL;
        const pathname = path as string; // read once: each URL getter call builds a new string
        toolName = current.name;
        // ---- 2b. headers that change what the tool does (the caller's headers are the same on every hop)
        restricted ??= checkRestricted(found, headers, current, target);
        const overrides = restricted.overrides;

        // ---- 3. policy (for the method sent and every method an allowed override names) ----------
        let effect: 'allow' | 'approval' | 'deny';
        /** The rule that asked for approval: it says who may decide. */
        let approvalRule: PolicyRule | undefined;
        try {
          const input = { agentId, tool: current.name, userId, groups, domain: context?.domain, actorChain, method, path: pathname };
          const first = engine.evaluate(input);
          effect = first.effect;
          approvalRule = first.effect === 'approval' ? first.rule : undefined;
          if (overrides !== undefined) {
            for (const m of overrides) {
              const d = engine.evaluate({ ...input, method: m });
              if (RANK[d.effect] > RANK[effect]) effect = d.effect;
              if (d.effect === 'approval' && approvalRule === undefined) approvalRule = d.rule;
            }
          }
        } catch {
          throw new AgentIamError('POLICY_DENIED', 'Policy evaluation failed');
        }
        if (effect === 'deny') throw new AgentIamError('POLICY_DENIED', `Policy does not allow ${agentId} to use tool ${current.name}`);

        // ---- 4. capability ----------------------------------------------------------------------
        if (!current.matcher.all) {
          if (current.matcher.match(method, pathname) === undefined || (overrides !== undefined && overrides.some((m) => current.matcher.match(m, pathname) === undefined))) {
            throw new AgentIamError('CAPABILITY_DENIED', `Tool ${current.name} does not allow this operation`);
          }
        }

        // A per-user tool without a user, or a user id that cannot be a header, fails before any
        // approval is created or consumed and before any credential source is asked.
        if (current.perUser && (typeof userId !== 'string' || userId === '')) {
          throw new AgentIamError('POLICY_DENIED', `Tool ${current.name} acts for a user and the request has no user context`);
        }
        const forwardUser = current.forwardUser && userId !== undefined;
        if (forwardUser && (typeof userId !== 'string' || !USER_ID.test(userId))) throw invalid('User id cannot be sent as a header');

        // The body is read into memory only when an approval (its hash) or the credential (a
        // signature) needs it; a plain request sends the caller's body as given.
        if (body !== undefined && bodyBytes === undefined && (effect === 'approval' || current.injector.needsBody)) {
          const read = await bodyToBytes(body);
          bodyBytes = read.bytes;
          defaultContentType = read.contentType;
        }

        // ---- 5. approval ------------------------------------------------------------------------
        if (effect === 'approval') {
          bodyHash ??= bodyBytes === undefined ? EMPTY_SHA256 : await sha256Hex(bodyBytes);
          let result: Awaited<ReturnType<ToolFetchApprovals['check']>>;
          const checkInput: ApprovalRequestInput = {
              agentId,
              ...(userId !== undefined ? { userId } : {}),
              tool: current.name,
              method,
              path: pathname,
              query: target.search,
              bodySha256: bodyHash,
              host: target.host,
              ...(restricted.bound !== undefined ? { headers: restricted.bound } : {}),
              ...(description !== undefined ? { description } : {}),
              ...(actorChain.length > 0 ? { actorChain } : {}),
              ...(approvalRule !== undefined && (approvalRule.approvedBy !== undefined || approvalRule.approvers !== undefined || approvalRule.approvalMode === 'ciba')
                ? {
                    rule: {
                      ...(approvalRule.approvedBy !== undefined ? { approvedBy: approvalRule.approvedBy } : {}),
                      ...(approvalRule.approvers !== undefined ? { approvers: approvalRule.approvers } : {}),
                      ...(approvalRule.approvalMode === 'ciba' ? { mode: 'ciba' as const } : {}),
                    },
                  }
                : {}),
          };
          const service = approvals as ToolFetchApprovals;
          result = await approvalStore(() => (dry === undefined ? service.check(checkInput) : service.check(checkInput, { consume: false })), signal);
          approvalId = result.id;
          if (result.status === 'pending' && dry === undefined && waitMs !== undefined && waitMs > 0 && typeof service.waitForDecision === 'function') {
            const pendingId = result.id;
            const waitFor = service.waitForDecision.bind(service);
            const decided = await approvalStore(() => waitFor(pendingId, { timeoutMs: Math.min(waitMs, 86_400_000), ...(signal !== undefined ? { signal } : {}) }), signal);
            signal?.throwIfAborted();
            if (decided?.status === 'denied') throw new AgentIamError('POLICY_DENIED', 'The approval was denied', { approvalId: result.id, reason: 'approval_denied' });
            if (decided?.status === 'expired') throw new AgentIamError('POLICY_DENIED', 'The approval lapsed before anyone approved it', { approvalId: result.id, reason: 'approval_expired' });
            if (decided?.status === 'approved') {
              // The approval lets the request through once: the check consumes it (and of several
              // identical waiting calls, exactly one passes; the others find a new pending approval).
              result = await approvalStore(() => service.check(checkInput), signal);
              approvalId = result.id;
            }
          }
          if (result.status === 'denied') throw new AgentIamError('POLICY_DENIED', 'The approval was denied', { approvalId: result.id, reason: 'approval_denied' });
          if (result.status !== 'approved') {
            throw new AgentIamError('APPROVAL_REQUIRED', `Tool ${current.name}: this request needs approval`, {
              approvalId: result.id,
              // what the approvals service shows its approvers (createApprovals: with host, bound headers and hashes)
              approval:
                typeof result.summary === 'object' && result.summary !== null
                  ? result.summary
                  : { agentId, ...(userId !== undefined ? { userId } : {}), tool: current.name, method, path: pathname, host: target.host },
            });
          }
        }

        if (dry !== undefined) {
          dry.tool = current.name;
          dry.method = method;
          dry.url = target.href;
          if (approvalId !== undefined) dry.approvalId = approvalId;
          // A preflight ends here (every decision before the credential is made), unless it was
          // asked to look at the credential too.
          if (dry.credential !== true) return undefined;
        }

        // ---- 6. credential ----------------------------------------------------------------------
        const sendBody: unknown = bodyBytes ?? body;
        if (sendBody !== undefined && bodyBytes === undefined && !isReplayable(sendBody) && hop > 0) {
          throw new AgentIamError('REDIRECT_BLOCKED', 'A streamed body cannot be sent again on a redirect');
        }
        if (bodyBytes !== undefined && defaultContentType !== null && !headers.has('content-type')) {
          headers.set('content-type', defaultContentType);
        }
        const outgoing: OutgoingRequest = {
          method,
          url: target,
          headers,
          bodyBytes,
          hasOpaqueBody: sendBody !== undefined && bodyBytes === undefined && !isReplayable(sendBody),
          mayProbe: effect !== 'approval',
        };
        // ---- 7. identity (set before the credential step so that a SigV4 signature covers it) ----
        if (forwardUser) headers.set('x-end-user-id', userId as string);
        const injected = current.injector.inject(outgoing, context);
        if (injected !== undefined) await injected;
        if (dry !== undefined) {
          // The credential is there (held in memory, never sent); a tool that would first be probed
          // without one needs consent.
          if (outgoing.probe !== undefined) throw await outgoing.probe(null);
          return undefined;
        }

        // ---- send -------------------------------------------------------------------------------
        const requestInit: RequestInit & { duplex?: 'half' } = { method, headers, redirect: 'manual' };
        if (sendBody !== undefined) {
          requestInit.body = sendBody as BodyInit;
          if (sendBody instanceof ReadableStream) requestInit.duplex = 'half';
        }
        if (signal !== undefined) requestInit.signal = signal;
        let response: Response;
        try {
          response = await sendFetch(target.href, requestInit);
        } catch (error) {
          throw sendFailure(error, current.name, signal);
        }
        if (sendBody instanceof ReadableStream) body = sendBody; // consumed: not replayable

        const status = response.status;
        if (outgoing.probe !== undefined && status === 401) {
          const err = await outgoing.probe(response.headers.get('www-authenticate'));
          void response.body?.cancel().catch(() => {});
          throw err;
        }
        if (status === 401 && outgoing.dropToken !== undefined && rejectsToken(response.headers.get('www-authenticate'))) {
          try {
            outgoing.dropToken();
          } catch {
            // forgetting a token is best effort: the answer still goes to the caller
          }
        }
        if (status === 401 && outgoing.account !== undefined && current.injector.onRejected !== undefined && rejectsToken(response.headers.get('www-authenticate'))) {
          // The user's token was rejected: never send it again. Once, with a body that can be sent
          // again and no approval spent on it, refresh and retry; a second rejection needs consent.
          const replayable = effect !== 'approval' && !outgoing.hasOpaqueBody && !(sendBody instanceof ReadableStream);
          const again = rejectedOnce || !replayable;
          const err = await current.injector.onRejected(outgoing, rejectedOnce).catch(() => undefined);
          if (!again) {
            rejectedOnce = true;
            void response.body?.cancel().catch(() => {});
            hop--;
            continue;
          }
          if (err !== undefined) {
            void response.body?.cancel().catch(() => {});
            throw err;
          }
        }
        if (status === 403 && (outgoing.account !== undefined || outgoing.serviceScopes !== undefined) && current.injector.stepUp !== undefined) {
          const wanted = challengedScopes(response.headers.get('www-authenticate'));
          const replayable = effect !== 'approval' && !outgoing.hasOpaqueBody && !(sendBody instanceof ReadableStream);
          const err = wanted === undefined || (outgoing.serviceScopes !== undefined && (steppedUp || !replayable)) ? undefined : await current.injector.stepUp(outgoing, wanted);
          if (err === 'retry') {
            // A service token for the challenged scopes too, and one more send.
            steppedUp = true;
            void response.body?.cancel().catch(() => {});
            hop--;
            continue;
          }
          if (err !== undefined) {
            void response.body?.cancel().catch(() => {});
            throw err;
          }
        }
        const location = status >= 300 && status < 400 ? response.headers.get('location') : null;
        if (
          location === null ||
          (status !== 301 && status !== 302 && status !== 303 && status !== 307 && status !== 308) ||
          redirectMode === 'manual'
        ) {
          if (sink !== undefined) {
            emitAudit(sink, toolEvent('tool.request', 'allow', agentId, context, toolName, method, path, approvalId, started, status));
          }
          return response;
        }
        void response.body?.cancel().catch(() => {});
        if (redirectMode === 'error') throw new AgentIamError('REDIRECT_BLOCKED', `Tool ${current.name} redirected and redirect is 'error'`);
        if (sink !== undefined) {
          emitAudit(sink, toolEvent('tool.redirect', 'allow', agentId, context, toolName, method, path, approvalId, started, status));
        }
        if (hop + 1 > maxRedirects) throw new AgentIamError('REDIRECT_BLOCKED', `Tool ${current.name}: too many redirects`);
        if (status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
          method = 'GET';
          body = undefined;
          bodyBytes = undefined;
          bodyHash = undefined;
          for (const name of BODY_HEADERS) headers.delete(name);
        } else if (sendBody instanceof ReadableStream) {
          throw new AgentIamError('REDIRECT_BLOCKED', 'A streamed body cannot be sent again on a redirect');
        }
        approvalId = undefined;
        raw = location;
      }
    } catch (error) {
      const code = isAgentIamError(error) ? error.code : undefined;
      // An unsafe URL's path is not logged; a refused header's request had a safe one.
      if (code === 'REQUEST_INVALID' && (error as AgentIamError).reason !== 'header_not_allowed') path = undefined;
      if (sink !== undefined) {
        const event = toolEvent('tool.request', decisionOf(code), agentId, context, toolName, method, path, approvalId, started, undefined);
        if (code !== undefined) event.code = code;
        const own = code !== undefined ? toolFetchReason(error as AgentIamError) : signal?.aborted === true ? (timeout?.aborted === true ? 'timeout' : 'aborted') : undefined;
        // A refusal decided before the request was due (a framework asking before its tool runs) says so.
        const reason = dry !== undefined ? 'preflight' : own;
        if (reason !== undefined) event.reason = reason;
        emitAudit(sink, event);
      }
      throw error;
    }
  }

  // Not `async`: the gate's own promise is the result (one promise and one await fewer per call,
  // which matters on Node 20, where AsyncLocalStorage hooks every promise).
  const toolFetch: ToolFetch = function toolFetch(input, init) {
    return gate(input, init, undefined) as Promise<Response>;
  };
  Object.defineProperty(toolFetch, PREFLIGHT, {
    value: async (input: string | URL | Request, init?: ToolFetchInit, options?: { credential?: boolean }): Promise<ToolPreflight> => {
      const out: ToolPreflight = { tool: '', method: '', url: '' };
      if (options?.credential === true) out.credential = true;
      await gate(input, init, out);
      delete out.credential;
      return out;
    },
  });
  return toolFetch;
}
