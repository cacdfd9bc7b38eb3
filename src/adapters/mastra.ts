/**
 * `agent-iam/mastra`: agent-iam for Mastra (`@mastra/core` 1).
 *
 * Tools built with {@link MastraTools.tool} run in the caller's {@link AgentContext}, restored from
 * the session id the run's request context carries (Mastra keeps it in the run's snapshot: an id,
 * never a token), with a toolFetch bound to it. A tool that declares its request gets a
 * `requireApproval` that asks agent-iam's policy: an approval it requires, or an account the user
 * must connect, becomes Mastra's own approval pause (`tool-call-approval`); a request known only
 * inside the tool pauses there with `suspend()` (`tool-call-suspended`). {@link MastraTools.approve}
 * approves in agent-iam and resumes the run (`approveToolCall` / `resumeStream`);
 * {@link MastraTools.deny} denies and declines with the reason the model reads. `@mastra/core` is
 * loaded when {@link createMastraTools} runs; without it that call fails with `CONFIG_INVALID`
 * naming the package.
 *
 * @module
 */
import type { Agent } from '@mastra/core/agent';
import type { RequestContext } from '@mastra/core/request-context';
import type { z } from 'zod';
import {
  approvalPause,
  createAgentToolsCore,
  type AgentIamParts,
  type AgentToolBehaviour,
  type AgentToolRefusal,
  type AgentToolRequest,
  type AgentToolResponse,
  type AgentToolRun,
  type AgentToolsCore,
  type AgentToolsOptions,
  type ApprovalPause,
  type ConsentPause,
} from './agent-tools.js';
import { loadPeer } from './peer.js';
import type { AgentContext } from '../context.js';
import { AgentIamError } from '../errors.js';
import { createKeyValueStore, storeKey } from '../stores/store.js';

export type { AgentIamParts, AgentToolsOptions, AgentToolRequest, AgentToolRun, AgentToolResponse, AgentToolRefusal, ApprovalPause, ConsentPause } from './agent-tools.js';

/** The request-context key that holds the run's session id. */
export const AGENT_IAM_SESSION = 'agentIamSession';

/**
 * An agent-iam tool for Mastra: what `createTool()` takes (`id`, `description`, a zod object as
 * `inputSchema`) plus the request it sends, its body, or both. Register it under its `id`.
 *
 * @example
 * ```ts
 * const refund = tools.tool({
 *   id: 'refund', description: 'Refund a charge',
 *   inputSchema: z.object({ charge: z.string(), amount: z.number() }),
 *   request: ({ charge, amount }) => ({ url: 'https://api.stripe.com/v1/refunds', method: 'POST', body: JSON.stringify({ charge, amount }) }),
 * });
 * ```
 */
export interface MastraToolSpec<P extends z.ZodObject, O> {
  id: string;
  description: string;
  inputSchema: P;
  request?: (input: z.infer<P>) => AgentToolRequest;
  execute?: (input: z.infer<P>, run: AgentToolRun) => O | Promise<O>;
}

/**
 * A call Mastra still holds for approval although agent-iam has nothing left to ask (the account
 * was connected, or the approval decided, meanwhile): resume it (`approve` or `afterConsent`).
 * Mastra pauses parallel calls one at a time, so the second of two calls that needed the same
 * account shows up like this once the user has connected it.
 */
export interface ReadyPause {
  type: 'agent-iam.ready';
  text: string;
}

/** A paused tool call of a Mastra run, as {@link MastraTools.pendingApprovals} lists it. */
export type MastraPendingApproval = (ApprovalPause | ConsentPause | ReadyPause) & {
  runId: string;
  toolCallId: string;
  toolName: string;
  /** How Mastra paused: before the tool ran (`approval`) or inside it (`suspend`). */
  pausedBy: 'approval' | 'suspend';
};

/** What a resume hands back: Mastra's stream of the resumed run. */
export type MastraResumed = Awaited<ReturnType<Agent['approveToolCall']>>;

/** What {@link createMastraTools} returns. */
export interface MastraTools {
  /** A Mastra tool that runs in the caller's context, through agent-iam. */
  tool<P extends z.ZodObject, O = AgentToolResponse>(spec: MastraToolSpec<P, O>): ReturnType<typeof import('@mastra/core/tools').createTool>;
  /**
   * Options for `agent.stream(messages, { ...options })`: a `runId` and a `requestContext` carrying
   * the caller's session (default `currentContext()`); the run id is remembered with the session,
   * so that an approver in any process can list the run's pauses by its id.
   */
  runOptions(context?: AgentContext, requestContext?: RequestContext): Promise<{ runId: string; requestContext: RequestContext }>;
  session(context?: AgentContext): Promise<string>;
  restore(session: string): Promise<AgentContext>;
  /** The agent-iam pauses of a suspended run (from Mastra's storage: any process). */
  pendingApprovals(agent: Agent, runId: string): Promise<MastraPendingApproval[]>;
  /** Approve in agent-iam (that exact request, once) and resume the run. */
  approve(agent: Agent, pending: MastraPendingApproval, options: { approver: string; ttlSeconds?: number }): Promise<MastraResumed>;
  /** Deny in agent-iam and decline in the run: the model reads the reason. */
  deny(agent: Agent, pending: MastraPendingApproval, options: { approver: string; reason?: string }): Promise<MastraResumed>;
  /** After the user connected the account of a consent pause: resume, the tool runs again. */
  afterConsent(agent: Agent, pending: MastraPendingApproval): Promise<MastraResumed>;
}

interface ToolCtx {
  requestContext?: { get?(key: string): unknown };
  suspend?: (payload: unknown) => Promise<void>;
  resumeData?: unknown;
  agent?: { suspend?: (payload: unknown) => Promise<void>; resumeData?: unknown; toolCallId?: string };
}

function sessionOf(requestContext: unknown): string | undefined {
  const rc = requestContext as { get?: (k: string) => unknown } | Record<string, unknown> | undefined;
  const id = typeof (rc as { get?: unknown })?.get === 'function' ? (rc as { get(k: string): unknown }).get(AGENT_IAM_SESSION) : (rc as Record<string, unknown> | undefined)?.[AGENT_IAM_SESSION];
  return typeof id === 'string' ? id : undefined;
}

/**
 * agent-iam tools for Mastra (an optional peer: `npm install @mastra/core`).
 *
 * @example
 * ```ts
 * const iamTools = await createMastraTools(iam, { store });
 * const agent = new Agent({ id: 'shop', name: 'Shop', instructions, model, tools: { refund: iamTools.tool({ id: 'refund', ... }) } });
 * const run = await iamTools.runOptions();                       // inside agentAuth: the caller
 * await (await agent.stream('Refund ch_1', run)).consumeStream();
 * for (const p of await iamTools.pendingApprovals(agent, run.runId)) await iamTools.approve(agent, p, { approver: 'lead@example.com' });
 * ```
 */
export async function createMastraTools(iam: AgentIamParts, options: AgentToolsOptions = {}): Promise<MastraTools> {
  const mt = await loadPeer('mastra', '@mastra/core', '^1.71', () => import('@mastra/core/tools'));
  const mrc = await loadPeer('mastra', '@mastra/core', '^1.71', () => import('@mastra/core/request-context'));
  const core: AgentToolsCore = createAgentToolsCore(iam, options, 'mastra');
  const kv = createKeyValueStore(options.store);
  const runTtlMs = (options.sessionTtlSeconds ?? 604_800) * 1000;
  const approvals = iam.approvals;
  const registry = new Map<string, AgentToolBehaviour<unknown, unknown>>();

  function check(pending: MastraPendingApproval): void {
    if (typeof pending !== 'object' || pending === null || typeof pending.runId !== 'string' || typeof pending.toolCallId !== 'string') {
      throw new AgentIamError('REQUEST_INVALID', 'Give an entry of pendingApprovals()', { field: 'pending' });
    }
  }

  function resume(agent: Agent, pending: MastraPendingApproval, approved: boolean, reason?: string): Promise<MastraResumed> {
    const { runId, toolCallId } = pending;
    if (pending.pausedBy === 'suspend') return agent.resumeStream(reason !== undefined ? { approved, reason } : { approved }, { runId, toolCallId }) as Promise<MastraResumed>;
    if (approved) return agent.approveToolCall({ runId, toolCallId });
    return agent.declineToolCall(reason !== undefined ? { runId, toolCallId, reason } : { runId, toolCallId });
  }

  return Object.freeze({
    tool<P extends z.ZodObject, O = AgentToolResponse>(spec: MastraToolSpec<P, O>) {
      if (spec.request === undefined && spec.execute === undefined) {
        throw new AgentIamError('CONFIG_INVALID', 'Invalid option request: a tool needs request, execute or both', { field: 'request' });
      }
      const behaviour: AgentToolBehaviour<z.infer<P>, O> = {};
      if (spec.request !== undefined) behaviour.request = spec.request;
      if (spec.execute !== undefined) behaviour.execute = spec.execute;
      const name = spec.id;
      registry.set(name, behaviour as AgentToolBehaviour<unknown, unknown>);
      const definition: Record<string, unknown> = {
        id: spec.id,
        description: spec.description,
        inputSchema: spec.inputSchema,
        async execute(input: z.infer<P>, ctx: ToolCtx): Promise<O | AgentToolResponse | AgentToolRefusal | undefined> {
          const context = await core.contextOf(sessionOf(ctx?.requestContext));
          const answer = (ctx?.resumeData ?? ctx?.agent?.resumeData) as { approved?: unknown; reason?: unknown } | undefined;
          const outcome = await core.run(behaviour, input, context, name);
          if (outcome.kind === 'ok') return outcome.value;
          if (outcome.kind === 'denied') return core.refusal(outcome);
          if (answer?.approved === false) {
            const reason = typeof answer.reason === 'string' ? answer.reason : outcome.kind === 'consent' ? 'The user did not connect the account' : 'The approval was denied';
            return core.refusal({ kind: 'denied', code: 'POLICY_DENIED', reason });
          }
          // Known only now (or still undecided): pause inside the tool, Mastra saves the payload.
          const suspend = ctx?.suspend ?? ctx?.agent?.suspend;
          if (suspend === undefined) return core.refusal(outcome);
          await suspend(outcome.pause);
          return undefined;
        },
      };
      if (spec.request !== undefined) {
        definition.requireApproval = async (input: z.infer<P>, ctx?: { requestContext?: Record<string, unknown> }): Promise<boolean> => {
          const context = await core.contextOf(sessionOf(ctx?.requestContext));
          const gate = await core.gate(behaviour, input, context, name);
          // A policy denial is not a question for a human: the tool runs and returns the denial.
          return gate.kind === 'approval' || gate.kind === 'consent';
        };
      }
      return mt.createTool(definition as never);
    },

    async runOptions(context?: AgentContext, requestContext?: RequestContext): Promise<{ runId: string; requestContext: RequestContext }> {
      const session = await core.session(context);
      const runId = crypto.randomUUID();
      await kv.set(storeKey('agent-run', 'mastra', runId), session, runTtlMs);
      const rc = requestContext ?? new mrc.RequestContext();
      rc.set(AGENT_IAM_SESSION, session);
      return { runId, requestContext: rc };
    },

    session: (context?: AgentContext) => core.session(context),
    restore: (session: string) => core.restore(session),

    async pendingApprovals(agent: Agent, runId: string): Promise<MastraPendingApproval[]> {
      const { runs } = await agent.listSuspendedRuns({});
      const run = runs.find((r) => r.runId === runId);
      if (run === undefined) return [];
      const session = await kv.get<string>(storeKey('agent-run', 'mastra', runId));
      const context = typeof session === 'string' ? await core.restore(session) : undefined;
      const out: MastraPendingApproval[] = [];
      for (const call of run.toolCalls) {
        const c = call as { toolCallId: string; toolName: string; args?: unknown; requiresApproval?: boolean; suspendPayload?: unknown };
        const where = { runId, toolCallId: c.toolCallId, toolName: c.toolName };
        const payload = c.suspendPayload as (ApprovalPause | ConsentPause) | undefined;
        if (c.requiresApproval === true) {
          const behaviour = registry.get(c.toolName);
          if (behaviour === undefined || context === undefined) continue;
          // The same request (same input, same caller) finds the approval the pause created.
          const gate = await core.gate(behaviour, c.args, context, c.toolName);
          if (gate.kind === 'approval' || gate.kind === 'consent') out.push({ ...gate.pause, ...where, pausedBy: 'approval' });
          else out.push({ type: 'agent-iam.ready', text: 'Nothing is left to decide for this call: resume it', ...where, pausedBy: 'approval' });
        } else if (payload?.type === 'agent-iam.approval') {
          if (approvals === undefined) continue;
          // What the approver sees is what agent-iam bound, not what the snapshot says.
          const record = await approvals.get(payload.approvalId);
          if (record === undefined || record.status !== 'pending') continue;
          out.push({ ...approvalPause({ approvalId: record.id, approval: record.summary }, c.toolName), ...where, pausedBy: 'suspend' });
        } else if (payload?.type === 'agent-iam.consent') {
          out.push({ ...payload, ...where, pausedBy: 'suspend' });
        }
      }
      return out;
    },

    async approve(agent: Agent, pending: MastraPendingApproval, o: { approver: string; ttlSeconds?: number }): Promise<MastraResumed> {
      check(pending);
      if (pending.type === 'agent-iam.approval') await core.approve(pending.approvalId, o);
      return resume(agent, pending, true);
    },

    async deny(agent: Agent, pending: MastraPendingApproval, o: { approver: string; reason?: string }): Promise<MastraResumed> {
      check(pending);
      let reason = o.reason ?? 'The user did not connect the account';
      if (pending.type === 'agent-iam.approval') {
        const record = await core.deny(pending.approvalId, o);
        const by = `Denied by ${record.approver ?? 'an approver'}`;
        reason = o.reason !== undefined ? `${by}: ${o.reason}` : by;
      }
      return resume(agent, pending, false, reason);
    },

    afterConsent(agent: Agent, pending: MastraPendingApproval): Promise<MastraResumed> {
      check(pending);
      return resume(agent, pending, true);
    },
  });
}
