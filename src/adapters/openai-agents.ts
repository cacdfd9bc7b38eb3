/**
 * `agent-iam/openai-agents`: agent-iam for the OpenAI Agents SDK (`@openai/agents` 0.20).
 *
 * Tools built with {@link OpenAIAgentsTools.tool} run in the caller's {@link AgentContext},
 * restored from the session id that the run context carries (and so `RunState.toString()` keeps:
 * an id, never a token), with a toolFetch bound to it. Their `needsApproval` asks agent-iam's
 * policy for the declared request: an approval it requires, or an account the user must connect,
 * becomes an interruption (`result.interruptions`); {@link OpenAIAgentsTools.approve} approves it in
 * agent-iam and in the run state, {@link OpenAIAgentsTools.deny} rejects it with the reason the model
 * reads. The SDK is loaded when {@link createOpenAIAgentsTools} runs; without it that call fails with
 * `CONFIG_INVALID` naming the package.
 *
 * @module
 */
import type { FunctionTool, RunContext, RunState, RunToolApprovalItem } from '@openai/agents';
import type { z } from 'zod';
import {
  createAgentToolsCore,
  type AgentIamParts,
  type AgentToolBehaviour,
  type AgentToolRefusal,
  type AgentToolResponse,
  type AgentToolRun,
  type AgentToolsCore,
  type AgentToolsOptions,
  type AgentToolRequest,
  type ApprovalPause,
  type ConsentPause,
} from './agent-tools.js';
import { loadPeer } from './peer.js';
import type { AgentContext } from '../context.js';
import { AgentIamError } from '../errors.js';

export type { AgentIamParts, AgentToolsOptions, AgentToolRequest, AgentToolRun, AgentToolResponse, AgentToolRefusal, ApprovalPause, ConsentPause } from './agent-tools.js';

/** What agent-iam keeps in the run context (`run(agent, input, { context })`): the session id. */
export interface OpenAIAgentsContext {
  agentIamSession?: string;
}

/**
 * An agent-iam tool for the OpenAI Agents SDK: what `tool()` takes (`name`, `description`, a zod
 * object as `parameters`) plus the request it sends, its body, or both.
 *
 * @example
 * ```ts
 * const refund = tools.tool({
 *   name: 'refund', description: 'Refund a charge',
 *   parameters: z.object({ charge: z.string(), amount: z.number() }),
 *   request: ({ charge, amount }) => ({ url: 'https://api.stripe.com/v1/refunds', method: 'POST', body: JSON.stringify({ charge, amount }) }),
 * });
 * ```
 */
export interface OpenAIAgentsToolSpec<P extends z.ZodObject, O> {
  name: string;
  description: string;
  parameters: P;
  request?: (input: z.infer<P>) => AgentToolRequest;
  execute?: (input: z.infer<P>, run: AgentToolRun) => O | Promise<O>;
}

/** An interruption of an agent-iam tool, as {@link OpenAIAgentsTools.pendingApprovals} lists it. */
export type OpenAIAgentsPendingApproval = (ApprovalPause | ConsentPause) & {
  /** The tool call's id (`rawItem.callId`). */
  toolCallId: string;
  toolName: string;
};

/** What {@link createOpenAIAgentsTools} returns. */
export interface OpenAIAgentsTools {
  /** A function tool that runs in the caller's context, through agent-iam. */
  tool<P extends z.ZodObject, O = AgentToolResponse>(spec: OpenAIAgentsToolSpec<P, O>): FunctionTool<OpenAIAgentsContext, P, O | AgentToolRefusal>;
  /**
   * The run context for `run(agent, input, { context })`: your own fields plus the session of the
   * caller (default `currentContext()`).
   */
  runContext<T extends object = Record<never, never>>(context?: AgentContext, extra?: T): Promise<T & OpenAIAgentsContext>;
  /** Keep the caller's verified context under an id for a later resume. */
  session(context?: AgentContext): Promise<string>;
  restore(session: string): Promise<AgentContext>;
  /** The agent-iam pauses behind the run state's interruptions (other tools' are skipped). */
  pendingApprovals(state: AnyRunState): Promise<OpenAIAgentsPendingApproval[]>;
  /** Approve in agent-iam (that exact request, once) and in the run state; then `run(agent, state)`. */
  approve(state: AnyRunState, pending: OpenAIAgentsPendingApproval, options: { approver: string; ttlSeconds?: number }): Promise<void>;
  /** Deny in agent-iam and reject in the run state: the model reads `reason`. */
  deny(state: AnyRunState, pending: OpenAIAgentsPendingApproval, options: { approver: string; reason?: string }): Promise<void>;
  /** After the user connected the account of a consent pause: let the tool call run again. */
  afterConsent(state: AnyRunState, pending: OpenAIAgentsPendingApproval): void;
}

const SPEC = Symbol.for('agent-iam.openai-agents.spec.v1');

/** A run state of any agent and context. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyRunState = RunState<any, any>;

function sessionOf(runContext: RunContext<unknown> | undefined): string | undefined {
  const id = (runContext?.context as OpenAIAgentsContext | undefined)?.agentIamSession;
  return typeof id === 'string' ? id : undefined;
}

function stateContext(state: AnyRunState): RunContext<unknown> | undefined {
  return (state as unknown as { _context?: RunContext<unknown> })._context;
}

/**
 * agent-iam tools for the OpenAI Agents SDK (an optional peer: `npm install @openai/agents`).
 *
 * @example
 * ```ts
 * import { Agent, run, RunState } from '@openai/agents';
 * import { createOpenAIAgentsTools } from 'agent-iam/openai-agents';
 *
 * const iamTools = await createOpenAIAgentsTools(iam, { store });
 * const agent = new Agent({ name: 'shop', instructions, tools: [iamTools.tool({ name: 'refund', description, parameters, request })] });
 * let result = await run(agent, 'Refund ch_1', { context: await iamTools.runContext() });
 * const saved = result.state.toString();                                 // ids only
 * const state = await RunState.fromString(agent, saved);                 // any process
 * for (const p of await iamTools.pendingApprovals(state)) await iamTools.approve(state, p, { approver: 'lead@example.com' });
 * result = await run(agent, state);
 * ```
 */
export async function createOpenAIAgentsTools(iam: AgentIamParts, options: AgentToolsOptions = {}): Promise<OpenAIAgentsTools> {
  const sdk = await loadPeer('openai-agents', '@openai/agents', '^0.20', () => import('@openai/agents'));
  const core: AgentToolsCore = createAgentToolsCore(iam, options, 'openai-agents');

  function itemOf(state: AnyRunState, pending: OpenAIAgentsPendingApproval): RunToolApprovalItem {
    if (typeof pending !== 'object' || pending === null || typeof pending.toolCallId !== 'string') {
      throw new AgentIamError('REQUEST_INVALID', 'Give an entry of pendingApprovals()', { field: 'pending' });
    }
    const item = state.getInterruptions().find((i) => (i.rawItem as { callId?: string }).callId === pending.toolCallId);
    if (item === undefined) throw new AgentIamError('REQUEST_INVALID', 'This run state has no interruption for that tool call', { field: 'toolCallId' });
    return item;
  }

  return Object.freeze({
    tool<P extends z.ZodObject, O = AgentToolResponse>(spec: OpenAIAgentsToolSpec<P, O>): FunctionTool<OpenAIAgentsContext, P, O | AgentToolRefusal> {
      if (spec.request === undefined && spec.execute === undefined) {
        throw new AgentIamError('CONFIG_INVALID', 'Invalid option request: a tool needs request, execute or both', { field: 'request' });
      }
      const behaviour: AgentToolBehaviour<z.infer<P>, O> = {};
      if (spec.request !== undefined) behaviour.request = spec.request;
      if (spec.execute !== undefined) behaviour.execute = spec.execute;
      const name = spec.name;
      const t = sdk.tool({
        name,
        description: spec.description,
        parameters: spec.parameters as never,
        async needsApproval(runContext: RunContext<unknown>, input: unknown): Promise<boolean> {
          const context = await core.contextOf(sessionOf(runContext));
          const gate = await core.gate(behaviour, input as z.infer<P>, context, name);
          // A policy denial is not a question for a human: the tool runs and returns the denial.
          return gate.kind === 'approval' || gate.kind === 'consent';
        },
        async execute(input: unknown, runContext?: RunContext<unknown>): Promise<O | AgentToolResponse | AgentToolRefusal> {
          const context = await core.contextOf(sessionOf(runContext));
          const outcome = await core.run(behaviour, input as z.infer<P>, context, name);
          return outcome.kind === 'ok' ? outcome.value : core.refusal(outcome);
        },
      } as never) as unknown as FunctionTool<OpenAIAgentsContext, P, O | AgentToolRefusal>;
      Object.defineProperty(t, SPEC, { value: behaviour });
      return t;
    },

    async runContext<T extends object = Record<never, never>>(context?: AgentContext, extra?: T): Promise<T & OpenAIAgentsContext> {
      return { ...((extra ?? {}) as T), agentIamSession: await core.session(context) };
    },

    session: (context?: AgentContext) => core.session(context),
    restore: (session: string) => core.restore(session),

    async pendingApprovals(state: AnyRunState): Promise<OpenAIAgentsPendingApproval[]> {
      const context = await core.contextOf(sessionOf(stateContext(state)));
      const out: OpenAIAgentsPendingApproval[] = [];
      for (const item of state.getInterruptions()) {
        const raw = item.rawItem as { type?: string; callId?: string; name?: string; arguments?: string };
        const toolName = item.name ?? raw.name;
        if (raw.type !== 'function_call' || typeof raw.callId !== 'string' || typeof toolName !== 'string') continue;
        const t = (item.agent.tools as unknown[]).find((x) => (x as { name?: string }).name === toolName);
        const behaviour = (t as Record<symbol, AgentToolBehaviour<unknown, unknown> | undefined> | undefined)?.[SPEC];
        if (behaviour === undefined) continue;
        let input: unknown;
        try {
          input = JSON.parse(raw.arguments ?? '{}');
        } catch {
          continue;
        }
        // The same request (same input, same caller) finds the approval the interruption created.
        const gate = await core.gate(behaviour, input, context, toolName);
        if (gate.kind === 'approval' || gate.kind === 'consent') out.push({ ...gate.pause, toolCallId: raw.callId, toolName });
      }
      return out;
    },

    async approve(state: AnyRunState, pending: OpenAIAgentsPendingApproval, o: { approver: string; ttlSeconds?: number }): Promise<void> {
      const item = itemOf(state, pending);
      if (pending.type === 'agent-iam.approval') await core.approve(pending.approvalId, o);
      state.approve(item);
    },

    async deny(state: AnyRunState, pending: OpenAIAgentsPendingApproval, o: { approver: string; reason?: string }): Promise<void> {
      const item = itemOf(state, pending);
      let approver: string | undefined;
      if (pending.type === 'agent-iam.approval') approver = (await core.deny(pending.approvalId, o)).approver;
      const by = `Denied by ${approver ?? 'an approver'}`;
      const message = pending.type === 'agent-iam.approval' ? (o.reason !== undefined ? `${by}: ${o.reason}` : by) : (o.reason ?? 'The user did not connect the account');
      state.reject(item, { message });
    },

    afterConsent(state: AnyRunState, pending: OpenAIAgentsPendingApproval): void {
      state.approve(itemOf(state, pending));
    },
  });
}
