/**
 * `agent-iam/ai-sdk`: agent-iam for the Vercel AI SDK (`ai` 7).
 *
 * Tools built with {@link AiSdkTools.tool} run in the caller's {@link AgentContext} (restored from
 * a session id after a resume) with a toolFetch bound to it. `toolApproval` asks agent-iam's policy
 * for the tool's declared request before the tool runs: an approval it requires, or an account the
 * user must connect, becomes the AI SDK's own `tool-approval-request`; a denial becomes a denied
 * tool call whose reason the model reads. The AI SDK is loaded when {@link createAiSdkTools} runs;
 * without it that call fails with `CONFIG_INVALID` naming the package.
 *
 * @module
 */
import type { FlexibleSchema, Tool, ToolApprovalConfiguration, ToolApprovalResponse, ToolSet } from 'ai';
import {
  createAgentToolsCore,
  type AgentIamParts,
  type AgentToolBehaviour,
  type AgentToolRefusal,
  type AgentToolResponse,
  type AgentToolsCore,
  type AgentToolsOptions,
  type ApprovalPause,
  type ConsentPause,
} from './agent-tools.js';
import { loadPeer } from './peer.js';
import type { AgentContext } from '../context.js';
import { AgentIamError } from '../errors.js';
import type { ApprovalRecord } from '../policy/approvals.js';

export type { AgentIamParts, AgentToolsOptions, AgentToolRequest, AgentToolRun, AgentToolResponse, AgentToolRefusal, ApprovalPause, ConsentPause } from './agent-tools.js';

/** What each agent-iam tool reads from `toolsContext[name]`: the run's session. */
export type AiSdkToolContext = {
  /** The session id from {@link AiSdkTools.session}; without one the tool uses `currentContext()`. */
  agentIamSession?: string;
};

/**
 * An agent-iam tool for the AI SDK: what `tool()` takes (`description`, `inputSchema`) plus the
 * request it sends, its body, or both.
 *
 * @example
 * ```ts
 * const refund = tools.tool({
 *   description: 'Refund a charge',
 *   inputSchema: z.object({ charge: z.string(), amount: z.number() }),
 *   request: ({ charge, amount }) => ({ url: 'https://api.stripe.com/v1/refunds', method: 'POST', body: JSON.stringify({ charge, amount }) }),
 * });
 * ```
 */
export interface AiSdkToolSpec<I, O> extends AgentToolBehaviour<I, O> {
  description: string;
  inputSchema: FlexibleSchema<I>;
}

/** A paused tool call, as {@link AiSdkTools.pendingApprovals} lists it: the AI SDK's ids and agent-iam's pause. */
export type AiSdkPendingApproval = (ApprovalPause | ConsentPause) & {
  /** The AI SDK's approval id (of its `tool-approval-request`). */
  toolApprovalId: string;
  toolCallId: string;
  toolName: string;
};

/** What {@link createAiSdkTools} returns. */
export interface AiSdkTools {
  /** An AI SDK tool that runs in the caller's context, through agent-iam. */
  tool<I, O = AgentToolResponse>(spec: AiSdkToolSpec<I, O>): Tool<I, O | AgentToolRefusal, AiSdkToolContext>;
  /** `generateText({ toolApproval })` for the agent-iam tools of `tools` (others are left as they are). */
  toolApproval<T extends ToolSet>(tools: T): ToolApprovalConfiguration<T, never>;
  /** `generateText({ toolsContext })` carrying the session to every agent-iam tool of `tools`. */
  toolsContext<T extends ToolSet>(tools: T, session: string | undefined): { [K in keyof T]: AiSdkToolContext };
  /** Keep the caller's verified context (default `currentContext()`) under an id for a later resume. */
  session(context?: AgentContext): Promise<string>;
  /** The context a session id stands for. */
  restore(session: string): Promise<AgentContext>;
  /**
   * The agent-iam pauses behind the AI SDK's approval requests in `content` (`result.content`, or
   * the messages of a saved chat), with what a human must see. Approval requests of other tools,
   * and automatic ones, are skipped.
   */
  pendingApprovals<T extends ToolSet>(content: ReadonlyArray<unknown>, tools: T, options?: { session?: string }): Promise<AiSdkPendingApproval[]>;
  /** Approve in agent-iam (that exact request, once) and return the AI SDK's approval response. */
  approve(pending: AiSdkPendingApproval, options: { approver: string; ttlSeconds?: number }): Promise<ToolApprovalResponse>;
  /** Deny in agent-iam and return the AI SDK's denial: the model reads `reason`. */
  deny(pending: AiSdkPendingApproval, options: { approver: string; reason?: string }): Promise<ToolApprovalResponse>;
  /** After the user connected the account of a consent pause: the response that lets the tool run again. */
  afterConsent(pending: AiSdkPendingApproval): ToolApprovalResponse;
}

const SPEC = Symbol.for('agent-iam.ai-sdk.spec.v1');

type Spec = AgentToolBehaviour<unknown, unknown>;

function specOf(tool: unknown): Spec | undefined {
  return typeof tool === 'object' && tool !== null ? ((tool as Record<symbol, unknown>)[SPEC] as Spec | undefined) : undefined;
}

function sessionOf(context: unknown): string | undefined {
  const id = (context as AiSdkToolContext | undefined)?.agentIamSession;
  return typeof id === 'string' ? id : undefined;
}

/**
 * agent-iam tools for the Vercel AI SDK (`ai` 7, an optional peer: `npm install ai`).
 *
 * @example
 * ```ts
 * import { generateText } from 'ai';
 * import { createAiSdkTools } from 'agent-iam/ai-sdk';
 *
 * const iamTools = await createAiSdkTools(iam, { store });
 * const tools = { refund: iamTools.tool({ description: 'Refund', inputSchema, request: (i) => ({ url, method: 'POST', body: JSON.stringify(i) }) }) };
 * const session = await iamTools.session();                // inside agentAuth: the caller
 * const result = await generateText({ model, tools, messages, toolApproval: iamTools.toolApproval(tools), toolsContext: iamTools.toolsContext(tools, session) });
 * for (const p of await iamTools.pendingApprovals(result.content, tools, { session })) show(p.text);
 * ```
 */
export async function createAiSdkTools(iam: AgentIamParts, options: AgentToolsOptions = {}): Promise<AiSdkTools> {
  const ai = await loadPeer('ai-sdk', 'ai', '^7', () => import('ai'));
  const core: AgentToolsCore = createAgentToolsCore(iam, options, 'ai-sdk');

  function response(pending: AiSdkPendingApproval, approved: boolean, reason?: string): ToolApprovalResponse {
    const out: ToolApprovalResponse = { type: 'tool-approval-response', approvalId: pending.toolApprovalId, approved };
    if (reason !== undefined) out.reason = reason;
    return out;
  }

  function checkPending(pending: AiSdkPendingApproval): void {
    if (typeof pending !== 'object' || pending === null || typeof pending.toolApprovalId !== 'string') {
      throw new AgentIamError('REQUEST_INVALID', 'Give an entry of pendingApprovals()', { field: 'pending' });
    }
  }

  return Object.freeze({
    tool<I, O = AgentToolResponse>(spec: AiSdkToolSpec<I, O>): Tool<I, O | AgentToolRefusal, AiSdkToolContext> {
      if (spec.request === undefined && spec.execute === undefined) {
        throw new AgentIamError('CONFIG_INVALID', 'Invalid option request: a tool needs request, execute or both', { field: 'request' });
      }
      const behaviour: AgentToolBehaviour<I, O> = {};
      if (spec.request !== undefined) behaviour.request = spec.request;
      if (spec.execute !== undefined) behaviour.execute = spec.execute;
      const definition = {
        description: spec.description,
        inputSchema: spec.inputSchema,
        async execute(input: I, execOptions: { context: unknown }): Promise<O | AgentToolRefusal> {
          const context = await core.contextOf(sessionOf(execOptions.context));
          const outcome = await core.run(behaviour, input, context, undefined);
          return outcome.kind === 'ok' ? (outcome.value as O) : core.refusal(outcome);
        },
      } satisfies { description: string; inputSchema: FlexibleSchema<I>; execute: (input: I, o: { context: unknown }) => Promise<O | AgentToolRefusal> };
      // `tool()` is the AI SDK's typing helper (it returns its argument): its overloads cannot be
      // resolved for a generic output, so the result is typed here.
      const t = ai.tool(definition as never) as unknown as Tool<I, O | AgentToolRefusal, AiSdkToolContext>;
      Object.defineProperty(t, SPEC, { value: behaviour });
      return t;
    },

    toolApproval<T extends ToolSet>(tools: T): ToolApprovalConfiguration<T, never> {
      const out: Record<string, (input: unknown, o: { toolContext: unknown }) => Promise<{ type: 'not-applicable' } | { type: 'user-approval' | 'denied'; reason: string }>> = {};
      for (const [name, t] of Object.entries(tools)) {
        const spec = specOf(t);
        if (spec === undefined) continue;
        out[name] = async (input, o) => {
          const context = await core.contextOf(sessionOf(o?.toolContext));
          const gate = await core.gate(spec, input, context, name);
          switch (gate.kind) {
            case 'allow':
              return { type: 'not-applicable' };
            case 'approval':
            case 'consent':
              return { type: 'user-approval', reason: gate.pause.text };
            case 'denied':
              return { type: 'denied', reason: gate.reason };
          }
        };
      }
      return out as unknown as ToolApprovalConfiguration<T, never>;
    },

    toolsContext<T extends ToolSet>(tools: T, session: string | undefined): { [K in keyof T]: AiSdkToolContext } {
      const out: Record<string, AiSdkToolContext> = {};
      for (const [name, t] of Object.entries(tools)) if (specOf(t) !== undefined) out[name] = session !== undefined ? { agentIamSession: session } : {};
      return out as { [K in keyof T]: AiSdkToolContext };
    },

    session: (context?: AgentContext) => core.session(context),
    restore: (session: string) => core.restore(session),

    async pendingApprovals<T extends ToolSet>(content: ReadonlyArray<unknown>, tools: T, o: { session?: string } = {}): Promise<AiSdkPendingApproval[]> {
      const context = await core.contextOf(o.session);
      type Call = { toolCallId?: unknown; toolName?: unknown; input?: unknown };
      type Part = { type?: unknown; approvalId?: unknown; isAutomatic?: unknown; toolCallId?: unknown; toolCall?: Call } & Call;
      // `result.content` parts carry the tool call; messages' parts name it by id.
      const parts: Part[] = [];
      for (const item of content) {
        const m = item as { role?: unknown; content?: unknown };
        if (typeof m?.role === 'string') {
          if (Array.isArray(m.content)) parts.push(...(m.content as Part[]));
        } else parts.push(item as Part);
      }
      const calls = new Map<string, Call>();
      for (const p of parts) if (p?.type === 'tool-call' && typeof p.toolCallId === 'string') calls.set(p.toolCallId, p);
      const out: AiSdkPendingApproval[] = [];
      for (const p of parts) {
        if (p?.type !== 'tool-approval-request' || p.isAutomatic === true || typeof p.approvalId !== 'string') continue;
        const call = p.toolCall ?? (typeof p.toolCallId === 'string' ? calls.get(p.toolCallId) : undefined);
        const toolName = call?.toolName;
        const toolCallId = call?.toolCallId;
        if (typeof toolName !== 'string' || typeof toolCallId !== 'string') continue;
        const spec = specOf((tools as Record<string, unknown>)[toolName]);
        if (spec === undefined) continue;
        // The same request (same input, same caller) finds the same approval: the one the pause created.
        const gate = await core.gate(spec, call?.input, context, toolName);
        if (gate.kind === 'approval' || gate.kind === 'consent') out.push({ ...gate.pause, toolApprovalId: p.approvalId, toolCallId, toolName });
      }
      return out;
    },

    async approve(pending: AiSdkPendingApproval, o: { approver: string; ttlSeconds?: number }): Promise<ToolApprovalResponse> {
      checkPending(pending);
      if (pending.type === 'agent-iam.approval') await core.approve(pending.approvalId, o);
      return response(pending, true);
    },

    async deny(pending: AiSdkPendingApproval, o: { approver: string; reason?: string }): Promise<ToolApprovalResponse> {
      checkPending(pending);
      let record: ApprovalRecord | undefined;
      if (pending.type === 'agent-iam.approval') record = await core.deny(pending.approvalId, o);
      const reason = o.reason ?? (record !== undefined ? `Denied by ${record.approver ?? 'an approver'}` : 'The user did not connect the account');
      return response(pending, false, reason);
    },

    afterConsent(pending: AiSdkPendingApproval): ToolApprovalResponse {
      checkPending(pending);
      return response(pending, true);
    },
  });
}
