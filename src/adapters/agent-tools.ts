/**
 * The framework-free part of the agent-framework adapters (`agent-iam/ai-sdk`, `/openai-agents`,
 * `/langgraph`, `/mastra`). Each adapter only translates between its framework and this module;
 * every decision is the core's (toolFetch, its preflight, approvals, the token manager).
 *
 * - **Sessions.** A paused run must resume with the identity it started with, possibly in another
 *   process. The verified context is kept in the store under a random id (`ags_…`); the framework's
 *   state holds only that id, never a token. Restoring gives the context back (without the raw
 *   token, so token-exchange tools need a fresh request).
 * - **Gate.** Before a tool runs (where the framework asks first), the tool's declared request
 *   goes through toolFetch's preflight: allowed, a pending approval to pause on, or a denial.
 * - **Run.** The tool body runs inside the caller's context with a toolFetch bound to it; a
 *   refusal becomes an outcome the adapter turns into its framework's pause or a denied result.
 * - **Consent.** `CONSENT_REQUIRED` becomes one consent request per user, connection and scopes:
 *   parallel tool calls that need the same account share it.
 *
 * @module
 */
import type Keyv from 'keyv';
import { z } from 'zod';
import { currentContext, runWithContext, type Actor, type AgentContext } from '../context.js';
import { AgentIamError, isAgentIamError, requestInvalid, type ApprovalSummary } from '../errors.js';
import { readBoundedBytes } from '../lib/bounded-read.js';
import { hasControlChars, randomToken } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { preflightOf, type Preflight } from '../outbound/preflight.js';
import type { ToolFetch, ToolFetchInit } from '../outbound/tool-fetch.js';
import type { ApprovalRecord, Approvals } from '../policy/approvals.js';
import { createKeyValueStore, storeKey, type KeyValueStore, type Store } from '../stores/store.js';

/**
 * The agent-iam pieces an adapter uses. `createAgentIam()`'s result has them; so does
 * `{ toolFetch: createToolFetch(...), approvals }`.
 *
 * @example
 * ```ts
 * const iam = createAgentIam({ ... });          // iam.toolFetch, iam.approvals
 * const tools = await createAiSdkTools(iam, { store });
 * ```
 */
export interface AgentIamParts {
  /** The toolFetch every tool sends through (it must come from `createToolFetch`). */
  readonly toolFetch: ToolFetch;
  /** Needed to approve or deny from the framework's resume (the same instance toolFetch uses). */
  readonly approvals?: Approvals | undefined;
}

/**
 * Options of the adapters' factories (`createAiSdkTools`, `createOpenAIAgentsTools`,
 * `createLangGraphTools`, `createMastraTools`).
 *
 * @example
 * ```ts
 * const store = redisStore({ url: process.env.REDIS_URL! });
 * const iam = createAgentIam({ ..., store });
 * const tools = await createLangGraphTools(iam, { store });   // sessions resume on any replica
 * ```
 */
export interface AgentToolsOptions {
  /**
   * Where sessions (the caller's verified identity, by id) and pending consent requests are kept.
   * Give the store your approvals and tokens use, so that a run paused in one process resumes in
   * another. Default: in memory (one process).
   */
  store?: Keyv | KeyValueStore;
  /** How long a paused run can be resumed with its session, in seconds (default 604800 = 7 days). */
  sessionTtlSeconds?: number;
  /**
   * The link a consent pause shows. Default: the authorization server's URL from
   * `CONSENT_REQUIRED` (single use, bound to the user). Give your consent route instead
   * (`(c) => \`https://agent.example.com/oauth/connect/${c.connection}\``) to keep even that out
   * of the framework's persisted state.
   */
  connectUrl?: (consent: { connection: string; userId: string | undefined }) => string;
  /**
   * How long parallel tool calls that need the same account share one consent request, in seconds
   * (default 120).
   */
  consentWindowSeconds?: number;
}

/**
 * The request a tool sends for an input. Declaring it lets the adapter decide before the tool runs
 * (where the framework asks first: AI SDK, OpenAI Agents, Mastra `requireApproval`), and the
 * approval created then is bound to exactly this request.
 *
 * @example
 * ```ts
 * request: ({ charge, amount }) => ({ url: 'https://api.stripe.com/v1/refunds', method: 'POST',
 *   body: JSON.stringify({ charge, amount }), approvalDescription: `Refund ${amount} on ${charge}` })
 * ```
 */
export interface AgentToolRequest {
  url: string;
  /** Default `GET`. */
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** A summary for the approver (at most 500 characters): shown as given, not bound. */
  approvalDescription?: string;
}

/** What a tool body gets: the caller's context and a toolFetch bound to it. */
export interface AgentToolRun {
  /** The caller's verified context (restored from the session after a resume). */
  readonly context: AgentContext | undefined;
  /** toolFetch with the caller's context: every check, credential and `X-End-User-ID` as usual. */
  readonly fetch: ToolFetch;
  /** Send the tool's declared `request` for this input (only when the tool declares one). */
  send(): Promise<Response>;
}

/**
 * What a tool declares, framework-neutral: its request, its body, or both. Without `execute` the
 * tool sends `request(input)` and returns `{ status, body }` (JSON when the answer is JSON).
 */
export interface AgentToolBehaviour<I, O> {
  request?: (input: I) => AgentToolRequest;
  execute?: (input: I, run: AgentToolRun) => O | Promise<O>;
}

/** The default result of a tool without `execute`: the tool's answer. */
export interface AgentToolResponse {
  status: number;
  /** Parsed JSON, or text (at most 256 KiB; longer answers are cut and `truncated` is set). */
  body: unknown;
  truncated?: true;
}

/**
 * A pause for a human approval: what the approver sees. Holds ids and the approval's safe summary
 * (no query, no body, no credential).
 */
export interface ApprovalPause {
  type: 'agent-iam.approval';
  /** The agent-iam approval (`apr_…`): approve or deny this id. */
  approvalId: string;
  /** The registered tool the request goes to. */
  tool: string;
  /** The framework's name of the tool that made the request. */
  toolName?: string;
  /** The requester: the user the agent acts for. */
  userId?: string;
  method: string;
  host?: string;
  path: string;
  /** The author's summary (`approvalDescription`), unverified. */
  description?: string;
  /** One line for a human: who asks, what, for whom. */
  text: string;
  /** The approval's full summary (with SHA-256 of query and body). */
  summary: ApprovalSummary;
}

/** A pause for the user to connect an account (`CONSENT_REQUIRED`). */
export interface ConsentPause {
  type: 'agent-iam.consent';
  /** Shared by every tool call that needs the same account at once (`acn_…`). */
  consentId: string;
  /** The connection (provider) to connect, e.g. `github`. */
  connection?: string;
  /** Where to send the user: the authorization URL, or `connectUrl`'s link. */
  url?: string;
  /** The scopes asked for, after a step-up (the granted ones plus what the tool demanded). */
  scopes?: string[];
  userId?: string;
  toolName?: string;
  text: string;
}

/**
 * The structured result a tool returns to the model when it could not act: where the framework has
 * no pause inside a tool (AI SDK, OpenAI Agents) or for a denial. Render it for the user; nothing
 * was sent to the tool.
 */
export type AgentToolRefusal =
  | { status: 'approval_required'; approval: ApprovalPause; message: string }
  | { status: 'consent_required'; consent: ConsentPause; message: string }
  | { status: 'denied'; code: string; reason: string; message: string };

/** @internal What the gate decided before a tool runs. */
export type Gate =
  | { kind: 'allow' }
  | { kind: 'approval'; pause: ApprovalPause }
  | { kind: 'consent'; pause: ConsentPause }
  | { kind: 'denied'; code: string; reason: string };

/** @internal What running a tool gave. */
export type Outcome<O> =
  | { kind: 'ok'; value: O }
  | { kind: 'approval'; pause: ApprovalPause }
  | { kind: 'consent'; pause: ConsentPause }
  | { kind: 'denied'; code: string; reason: string };

/** @internal The core an adapter wraps. */
export interface AgentToolsCore {
  session(context?: AgentContext): Promise<string>;
  restore(sessionId: string): Promise<AgentContext>;
  /** The context of a call: the session's when an id is given, else the current one. */
  contextOf(sessionId: unknown): Promise<AgentContext | undefined>;
  gate<I>(behaviour: AgentToolBehaviour<I, unknown>, input: I, context: AgentContext | undefined, toolName: string | undefined): Promise<Gate>;
  run<I, O>(behaviour: AgentToolBehaviour<I, O>, input: I, context: AgentContext | undefined, toolName: string | undefined): Promise<Outcome<O | AgentToolResponse>>;
  approve(approvalId: string, options: { approver: string; ttlSeconds?: number }): Promise<ApprovalRecord>;
  deny(approvalId: string, options: { approver: string; reason?: string }): Promise<ApprovalRecord>;
  refusal(outcome: Exclude<Outcome<unknown>, { kind: 'ok' }> | Exclude<Gate, { kind: 'allow' }>): AgentToolRefusal;
}

const SESSION_ID = /^ags_[A-Za-z0-9_-]{22}$/;
const MAX_RESULT_BYTES = 256 * 1024;
/** Refusals a tool turns into a denied result for the model (anything else is the framework's error). */
const DENIALS = new Set(['POLICY_DENIED', 'CAPABILITY_DENIED', 'TOOL_NOT_REGISTERED', 'REQUEST_INVALID', 'SCOPE_ESCALATION', 'REDIRECT_BLOCKED']);

const optionsSchema = z.strictObject({
  store: z.custom<Keyv | KeyValueStore>((v) => typeof v === 'object' && v !== null && typeof (v as KeyValueStore).get === 'function', 'must be a Keyv instance or a KeyValueStore').optional(),
  sessionTtlSeconds: z.number().int().min(60).max(366 * 86_400).optional(),
  connectUrl: z.custom<(c: { connection: string; userId: string | undefined }) => string>((v) => typeof v === 'function', 'must be a function').optional(),
  consentWindowSeconds: z.number().int().min(1).max(3600).optional(),
});

const actorSchema = z.object({ subject: z.string(), issuer: z.string().optional(), claims: z.record(z.string(), z.unknown()) });
const sessionSchema = z.object({
  v: z.literal(1),
  userId: z.string().optional(),
  subject: z.string().optional(),
  issuer: z.string().optional(),
  scopes: z.array(z.string()),
  claims: z.record(z.string(), z.unknown()),
  email: z.string().optional(),
  domain: z.string().optional(),
  actorChain: z.array(actorSchema),
  requestId: z.string(),
  authenticated: z.boolean(),
});
type StoredSession = z.infer<typeof sessionSchema>;

const consentSchema = z.object({
  id: z.string(),
  url: z.string().optional(),
  scopes: z.array(z.string()).optional(),
});

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function sessionRefused(): AgentIamError {
  return requestInvalid('Unknown or expired agent-iam session: start a new run', { field: 'agentIamSession' });
}

/** One line an approver can read; every part comes from the approval's bound summary. */
function approvalText(s: ApprovalSummary): string {
  const who = s.userId !== undefined ? ` for ${s.userId}` : '';
  const what = s.description !== undefined ? `: ${s.description}` : '';
  return `${s.agentId} asks to ${s.method} ${s.host ?? ''}${s.path}${who} (tool ${s.tool})${what}`;
}

/** The pause for a pending approval, from `APPROVAL_REQUIRED`. */
export function approvalPause(error: { approvalId?: string; approval?: ApprovalSummary }, toolName: string | undefined): ApprovalPause {
  const s = error.approval as ApprovalSummary;
  const pause: ApprovalPause = { type: 'agent-iam.approval', approvalId: error.approvalId as string, tool: s.tool, method: s.method, path: s.path, text: approvalText(s), summary: { ...s } };
  if (toolName !== undefined) pause.toolName = toolName;
  if (s.userId !== undefined) pause.userId = s.userId;
  if (s.host !== undefined) pause.host = s.host;
  if (s.description !== undefined) pause.description = s.description;
  return pause;
}

async function readResult(res: Response): Promise<AgentToolResponse> {
  const bytes = res.body === null ? new Uint8Array() : await readBoundedBytes(res.body, MAX_RESULT_BYTES);
  if (bytes === undefined) return { status: res.status, body: undefined, truncated: true };
  const text = new TextDecoder().decode(bytes);
  if (/\bjson\b/i.test(res.headers.get('content-type') ?? '')) {
    try {
      return { status: res.status, body: JSON.parse(text) as unknown };
    } catch {
      // not JSON after all: the text
    }
  }
  return { status: res.status, body: text };
}

/** @internal Build the core an adapter wraps. */
export function createAgentToolsCore(iam: AgentIamParts, options: AgentToolsOptions = {}, entry = 'adapters'): AgentToolsCore {
  const opts = parseOptions(optionsSchema, options, entry);
  if (typeof iam !== 'object' || iam === null || typeof iam.toolFetch !== 'function') {
    throw new AgentIamError('CONFIG_INVALID', 'Invalid option toolFetch: give createAgentIam()\'s result or { toolFetch, approvals }', { field: 'toolFetch' });
  }
  const toolFetch = iam.toolFetch;
  const preflight: Preflight | undefined = preflightOf(toolFetch);
  if (preflight === undefined) throw new AgentIamError('CONFIG_INVALID', 'Invalid option toolFetch: must come from createToolFetch (or createAgentIam)', { field: 'toolFetch' });
  const approvals = iam.approvals;
  const kv: Store = createKeyValueStore(opts.store);
  const sessionTtlMs = (opts.sessionTtlSeconds ?? 604_800) * 1000;
  const consentWindowMs = (opts.consentWindowSeconds ?? 120) * 1000;
  const connectUrl = opts.connectUrl;

  function needApprovals(): Approvals {
    if (approvals === undefined) throw new AgentIamError('CONFIG_INVALID', 'Invalid option approvals: approving from a framework needs the approvals toolFetch uses', { field: 'approvals' });
    return approvals;
  }

  function bound(context: AgentContext | undefined): ToolFetch {
    return (input, init) => toolFetch(input, { ...init, ...(context !== undefined ? { context } : {}) });
  }

  function initOf(req: AgentToolRequest, context: AgentContext | undefined): ToolFetchInit {
    const init: ToolFetchInit = { method: req.method ?? 'GET' };
    if (req.headers !== undefined) init.headers = req.headers;
    if (req.body !== undefined) init.body = req.body;
    if (req.approvalDescription !== undefined) init.approvalDescription = req.approvalDescription;
    if (context !== undefined) init.context = context;
    return init;
  }

  async function deniedReason(error: AgentIamError): Promise<string> {
    if (error.reason === 'approval_denied' && error.approvalId !== undefined && approvals !== undefined) {
      const rec = await approvals.get(error.approvalId).catch(() => undefined);
      return rec?.reason !== undefined ? `Denied by ${rec.approver ?? 'an approver'}: ${rec.reason}` : `Denied by ${rec?.approver ?? 'an approver'}`;
    }
    return error.message;
  }

  async function consentPause(error: AgentIamError, context: AgentContext | undefined, toolName: string | undefined): Promise<ConsentPause> {
    const connection = error.connection;
    const userId = context?.userId;
    const scopes = error.scopes !== undefined ? [...error.scopes].sort() : undefined;
    let consentId = `acn_${randomToken(16)}`;
    let url = error.authorizationUrl;
    let shared = scopes;
    if (connection !== undefined && userId !== undefined) {
      // One consent request per user, connection and scope set while it is fresh: the first
      // caller's URL is the one every parallel caller shows.
      const key = storeKey('agent-consent', connection, userId, (scopes ?? []).join(' '));
      const mine = { id: consentId, ...(url !== undefined ? { url } : {}), ...(scopes !== undefined ? { scopes } : {}) };
      if (!(await kv.setIfAbsent(key, mine, consentWindowMs))) {
        const found = consentSchema.safeParse(await kv.get(key));
        if (found.success) {
          consentId = found.data.id;
          url = found.data.url;
          shared = found.data.scopes;
        }
      }
    }
    if (connectUrl !== undefined && connection !== undefined) url = connectUrl({ connection, userId });
    const pause: ConsentPause = {
      type: 'agent-iam.consent',
      consentId,
      text: `Connect your ${connection ?? ''} account${shared !== undefined ? ` (scopes: ${shared.join(' ')})` : ''} so that the agent can continue`.replace('your  account', 'your account'),
    };
    if (connection !== undefined) pause.connection = connection;
    if (url !== undefined) pause.url = url;
    if (shared !== undefined) pause.scopes = shared;
    if (userId !== undefined) pause.userId = userId;
    if (toolName !== undefined) pause.toolName = toolName;
    return pause;
  }

  async function restore(sessionId: string): Promise<AgentContext> {
    if (typeof sessionId !== 'string' || !SESSION_ID.test(sessionId)) throw sessionRefused();
    const parsed = sessionSchema.safeParse(await kv.get(storeKey('agent-session', sessionId)));
    if (!parsed.success) throw sessionRefused();
    const s = parsed.data;
    const context: AgentContext = {
      userId: s.userId,
      subject: s.subject,
      issuer: s.issuer,
      scopes: s.scopes,
      claims: s.claims,
      ...(s.email !== undefined ? { email: s.email } : {}),
      ...(s.domain !== undefined ? { domain: s.domain } : {}),
      actorChain: s.actorChain.map((a): Actor => ({ subject: a.subject, ...(a.issuer !== undefined ? { issuer: a.issuer } : {}), claims: a.claims })),
      requestId: s.requestId,
      authenticated: s.authenticated,
    };
    return deepFreeze(context);
  }

  return Object.freeze({
    async session(context: AgentContext | undefined = currentContext()): Promise<string> {
      if (context === undefined) throw new AgentIamError('REQUEST_INVALID', 'No agent context: verify the caller first (agentAuth, runWithContext) or pass a context', { field: 'context' });
      const stored: StoredSession = {
        v: 1,
        scopes: [...context.scopes],
        claims: { ...context.claims },
        actorChain: context.actorChain.map((a) => ({ subject: a.subject, ...(a.issuer !== undefined ? { issuer: a.issuer } : {}), claims: { ...a.claims } })),
        requestId: context.requestId,
        authenticated: context.authenticated,
      };
      if (context.userId !== undefined) stored.userId = context.userId;
      if (context.subject !== undefined) stored.subject = context.subject;
      if (context.issuer !== undefined) stored.issuer = context.issuer;
      if (context.email !== undefined) stored.email = context.email;
      if (context.domain !== undefined) stored.domain = context.domain;
      const id = `ags_${randomToken(16)}`;
      await kv.set(storeKey('agent-session', id), stored, sessionTtlMs);
      return id;
    },

    restore,

    async contextOf(sessionId: unknown): Promise<AgentContext | undefined> {
      if (sessionId === undefined || sessionId === null) return currentContext();
      return restore(sessionId as string);
    },

    async gate<I>(behaviour: AgentToolBehaviour<I, unknown>, input: I, context: AgentContext | undefined, toolName: string | undefined): Promise<Gate> {
      if (behaviour.request === undefined) return { kind: 'allow' }; // decided inside the tool
      const req = behaviour.request(input);
      try {
        await preflight(req.url, initOf(req, context), { credential: true });
        return { kind: 'allow' };
      } catch (error) {
        if (!isAgentIamError(error)) throw error;
        if (error.code === 'APPROVAL_REQUIRED') return { kind: 'approval', pause: approvalPause(error, toolName) };
        if (error.code === 'CONSENT_REQUIRED') return { kind: 'consent', pause: await consentPause(error, context, toolName) };
        if (DENIALS.has(error.code)) return { kind: 'denied', code: error.code, reason: await deniedReason(error) };
        throw error;
      }
    },

    async run<I, O>(behaviour: AgentToolBehaviour<I, O>, input: I, context: AgentContext | undefined, toolName: string | undefined): Promise<Outcome<O | AgentToolResponse>> {
      const fetch = bound(context);
      const run: AgentToolRun = {
        context,
        fetch,
        send() {
          if (behaviour.request === undefined) throw new AgentIamError('CONFIG_INVALID', 'Invalid option request: send() needs the tool to declare request', { field: 'request' });
          const req = behaviour.request(input);
          return toolFetch(req.url, initOf(req, context));
        },
      };
      const body = async (): Promise<O | AgentToolResponse> => (behaviour.execute !== undefined ? await behaviour.execute(input, run) : await readResult(await run.send()));
      try {
        const value = context !== undefined ? await runWithContext(context, body) : await body();
        return { kind: 'ok', value };
      } catch (error) {
        if (!isAgentIamError(error)) throw error;
        if (error.code === 'APPROVAL_REQUIRED') return { kind: 'approval', pause: approvalPause(error, toolName) };
        if (error.code === 'CONSENT_REQUIRED') return { kind: 'consent', pause: await consentPause(error, context, toolName) };
        if (DENIALS.has(error.code)) return { kind: 'denied', code: error.code, reason: await deniedReason(error) };
        throw error;
      }
    },

    approve(approvalId: string, o: { approver: string; ttlSeconds?: number }): Promise<ApprovalRecord> {
      return needApprovals().approve(approvalId, o);
    },

    deny(approvalId: string, o: { approver: string; reason?: string }): Promise<ApprovalRecord> {
      if (o?.reason !== undefined && (typeof o.reason !== 'string' || hasControlChars(o.reason))) {
        throw new AgentIamError('REQUEST_INVALID', 'reason must be a string without control characters', { field: 'reason' });
      }
      return needApprovals().deny(approvalId, o);
    },

    refusal(outcome: Exclude<Outcome<unknown>, { kind: 'ok' }> | Exclude<Gate, { kind: 'allow' }>): AgentToolRefusal {
      switch (outcome.kind) {
        case 'approval':
          return { status: 'approval_required', approval: outcome.pause, message: `Not sent: a human must approve this request first (${outcome.pause.approvalId}). ${outcome.pause.text}` };
        case 'consent':
          return { status: 'consent_required', consent: outcome.pause, message: `Not sent: ${outcome.pause.text}.` };
        case 'denied':
          return { status: 'denied', code: outcome.code, reason: outcome.reason, message: `Not sent: ${outcome.reason}` };
      }
    },
  });
}
