/**
 * `agent-iam/langgraph`: agent-iam for LangGraph.js (`@langchain/langgraph` 1, `@langchain/core` 1).
 *
 * Tools built with {@link LangGraphTools.tool} run in the caller's {@link AgentContext}, restored
 * from the session id the graph state keeps (`agentIamSession`: an id, never a token), with a
 * toolFetch bound to it. LangGraph knows a tool's request only inside the tool, so the tool pauses
 * there: `APPROVAL_REQUIRED` and `CONSENT_REQUIRED` become `interrupt()`s carrying the approval's
 * summary or the connect URL, saved by the graph's checkpointer. Resuming with
 * `Command({ resume })` runs the tool again: the request an approver approved passes once (the
 * approval is bound to it in agent-iam), any other request pauses for its own approval, and a
 * denial comes back to the model as a tool message with the approver's reason. The packages are
 * loaded when {@link createLangGraphTools} runs; without them that call fails with
 * `CONFIG_INVALID` naming the package.
 *
 * @module
 */
import type { Command, Send } from '@langchain/langgraph';
import type { StructuredToolInterface } from '@langchain/core/tools';
import type { z } from 'zod';
import {
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
import { approvalPause } from './agent-tools.js';
import type { AgentContext } from '../context.js';
import { AgentIamError } from '../errors.js';

export type { AgentIamParts, AgentToolsOptions, AgentToolRequest, AgentToolRun, AgentToolResponse, AgentToolRefusal, ApprovalPause, ConsentPause } from './agent-tools.js';

/** The graph-state field (or `configurable` / `context` key) that holds the run's session id. */
export const AGENT_IAM_SESSION = 'agentIamSession';

/**
 * An agent-iam tool for LangGraph: what `tool()` of `@langchain/core/tools` takes (`name`,
 * `description`, a zod object as `schema`) plus the request it sends, its body, or both.
 *
 * @example
 * ```ts
 * const refund = tools.tool({
 *   name: 'refund', description: 'Refund a charge',
 *   schema: z.object({ charge: z.string(), amount: z.number() }),
 *   request: ({ charge, amount }) => ({ url: 'https://api.stripe.com/v1/refunds', method: 'POST', body: JSON.stringify({ charge, amount }) }),
 * });
 * ```
 */
export interface LangGraphToolSpec<P extends z.ZodObject, O> {
  name: string;
  description: string;
  schema: P;
  request?: (input: z.infer<P>) => AgentToolRequest;
  execute?: (input: z.infer<P>, run: AgentToolRun) => O | Promise<O>;
}

/** What an agent-iam `interrupt()` carries (`result.__interrupt__[i].value`). */
export type LangGraphPause = (ApprovalPause | ConsentPause) & { toolCallId?: string };

/** An agent-iam interrupt as {@link LangGraphTools.pendingApprovals} lists it. */
export type LangGraphPendingApproval = LangGraphPause & {
  /** The interrupt's id: the key of its answer in `Command({ resume })`. */
  interruptId: string;
};

/** The answer to one interrupt; merge several with {@link LangGraphTools.resume}. */
export type LangGraphResume = Record<string, { approved: boolean; reason?: string }>;

/** What {@link createLangGraphTools} returns. */
export interface LangGraphTools {
  /** A LangChain tool that runs in the caller's context, through agent-iam, and pauses with `interrupt()`. */
  tool<P extends z.ZodObject, O = AgentToolResponse>(spec: LangGraphToolSpec<P, O>): StructuredToolInterface;
  /**
   * A conditional edge that sends each tool call of the last AI message to `node` as its own task
   * (`Send`), or to `end` when there is none. Each call then pauses, resumes and is saved on its own:
   * a call that finished is not run again when another one resumes.
   */
  routeToolCalls(node: string, end: string): (state: { messages: unknown[] }) => Send[] | string;
  /** Keep the caller's verified context (default `currentContext()`) under an id: put it in the state as `agentIamSession`. */
  session(context?: AgentContext): Promise<string>;
  restore(session: string): Promise<AgentContext>;
  /**
   * The agent-iam interrupts of a paused graph (`result.__interrupt__`, or the interrupts of
   * `graph.getState(config)` tasks). An approval is shown as agent-iam holds it (its bound summary),
   * and only while it is pending.
   */
  pendingApprovals(interrupts: ReadonlyArray<{ id?: string; value?: unknown }>): Promise<LangGraphPendingApproval[]>;
  /** Approve in agent-iam (that exact request, once); the answer for `resume()`. */
  approve(pending: LangGraphPendingApproval, options: { approver: string; ttlSeconds?: number }): Promise<LangGraphResume>;
  /** Deny in agent-iam; the answer for `resume()`. The model reads `reason`. */
  deny(pending: LangGraphPendingApproval, options: { approver: string; reason?: string }): Promise<LangGraphResume>;
  /** After the user connected the account of a consent pause: the answer for `resume()`. */
  afterConsent(pending: LangGraphPendingApproval): LangGraphResume;
  /** `new Command({ resume })` from the answers: `graph.invoke(tools.resume(a, b), config)`. */
  resume(...answers: LangGraphResume[]): Command<unknown, Record<string, never>, never>;
}

interface ToolConfig {
  state?: Record<string, unknown>;
  configurable?: Record<string, unknown>;
  context?: Record<string, unknown>;
  toolCall?: { id?: string };
  toolCallId?: string;
}

function sessionOf(config: ToolConfig | undefined): string | undefined {
  for (const source of [config?.state, config?.configurable, config?.context]) {
    const id = source?.[AGENT_IAM_SESSION];
    if (typeof id === 'string') return id;
  }
  return undefined;
}

/** At most this many pauses of one tool call in one run of it (an answer that did not decide pauses again). */
const MAX_PAUSES = 4;

/**
 * agent-iam tools for LangGraph.js (optional peers: `npm install @langchain/langgraph @langchain/core`).
 *
 * @example
 * ```ts
 * const iamTools = await createLangGraphTools(iam, { store });
 * const State = Annotation.Root({ ...MessagesAnnotation.spec, agentIamSession: Annotation<string>() });
 * const graph = new StateGraph(State).addNode('agent', callModel).addNode('tools', new ToolNode([refund]))
 *   .addEdge(START, 'agent').addConditionalEdges('agent', iamTools.routeToolCalls('tools', END), ['tools', END]).addEdge('tools', 'agent')
 *   .compile({ checkpointer });
 * const paused = await graph.invoke({ messages, agentIamSession: await iamTools.session() }, config);
 * const [p] = await iamTools.pendingApprovals(paused.__interrupt__ ?? []);
 * await graph.invoke(iamTools.resume(await iamTools.approve(p, { approver: 'lead@example.com' })), config);
 * ```
 */
export async function createLangGraphTools(iam: AgentIamParts, options: AgentToolsOptions = {}): Promise<LangGraphTools> {
  const lg = await loadPeer('langgraph', '@langchain/langgraph', '^1.7', () => import('@langchain/langgraph'));
  const lc = await loadPeer('langgraph', '@langchain/core', '^1.4', () => import('@langchain/core/tools'));
  const core: AgentToolsCore = createAgentToolsCore(iam, options, 'langgraph');
  const approvals = iam.approvals;

  function key(pending: LangGraphPendingApproval): string {
    if (typeof pending !== 'object' || pending === null || typeof pending.interruptId !== 'string') {
      throw new AgentIamError('REQUEST_INVALID', 'Give an entry of pendingApprovals()', { field: 'pending' });
    }
    return pending.interruptId;
  }

  return Object.freeze({
    tool<P extends z.ZodObject, O = AgentToolResponse>(spec: LangGraphToolSpec<P, O>): StructuredToolInterface {
      if (spec.request === undefined && spec.execute === undefined) {
        throw new AgentIamError('CONFIG_INVALID', 'Invalid option request: a tool needs request, execute or both', { field: 'request' });
      }
      const behaviour: AgentToolBehaviour<z.infer<P>, O> = {};
      if (spec.request !== undefined) behaviour.request = spec.request;
      if (spec.execute !== undefined) behaviour.execute = spec.execute;
      const name = spec.name;
      const func = async (input: z.infer<P>, config: ToolConfig): Promise<O | AgentToolResponse | AgentToolRefusal> => {
        const context = await core.contextOf(sessionOf(config));
        const toolCallId = config?.toolCall?.id ?? config?.toolCallId;
        for (let pause = 0; ; pause++) {
          // On a resume LangGraph runs the tool again from here: a decided approval or a connected
          // account lets the request through now, and nothing was sent before the pause.
          const outcome = await core.run(behaviour, input, context, name);
          if (outcome.kind === 'ok') return outcome.value;
          if (outcome.kind === 'denied' || pause >= MAX_PAUSES) return core.refusal(outcome);
          const value: LangGraphPause = { ...outcome.pause, ...(typeof toolCallId === 'string' ? { toolCallId } : {}) };
          // The first run pauses here (interrupt throws); a resumed run gets the answer back.
          const answer = lg.interrupt(value) as { approved?: unknown; reason?: unknown } | undefined;
          if (answer?.approved === false) {
            const reason = typeof answer.reason === 'string' ? answer.reason : outcome.kind === 'consent' ? 'The user did not connect the account' : 'The approval was denied';
            return core.refusal({ kind: 'denied', code: 'POLICY_DENIED', reason });
          }
          // approved (or answered without a decision in agent-iam): look again; still pending pauses again
        }
      };
      return lc.tool(func as never, { name, description: spec.description, schema: spec.schema as never }) as unknown as StructuredToolInterface;
    },

    routeToolCalls(node: string, end: string) {
      return function routeToolCalls(state: { messages: unknown[] }): Send[] | string {
        const last = state.messages.at(-1) as { tool_calls?: { id?: string }[] } | undefined;
        const calls = last?.tool_calls ?? [];
        if (calls.length === 0) return end;
        return calls.map((call) => new lg.Send(node, { ...state, lg_tool_call: call }));
      };
    },

    session: (context?: AgentContext) => core.session(context),
    restore: (session: string) => core.restore(session),

    async pendingApprovals(interrupts: ReadonlyArray<{ id?: string; value?: unknown }>): Promise<LangGraphPendingApproval[]> {
      const out: LangGraphPendingApproval[] = [];
      for (const i of interrupts) {
        const value = i?.value as LangGraphPause | undefined;
        if (typeof i?.id !== 'string' || typeof value !== 'object' || value === null) continue;
        if (value.type === 'agent-iam.approval') {
          if (approvals === undefined || typeof value.approvalId !== 'string') continue;
          // What the approver sees is what agent-iam bound, not what the checkpoint says.
          const record = await approvals.get(value.approvalId);
          if (record === undefined || record.status !== 'pending') continue;
          const pause = approvalPause({ approvalId: record.id, approval: record.summary }, value.toolName);
          out.push({ ...pause, ...(value.toolCallId !== undefined ? { toolCallId: value.toolCallId } : {}), interruptId: i.id });
        } else if (value.type === 'agent-iam.consent') {
          out.push({ ...value, interruptId: i.id });
        }
      }
      return out;
    },

    async approve(pending: LangGraphPendingApproval, o: { approver: string; ttlSeconds?: number }): Promise<LangGraphResume> {
      const id = key(pending);
      if (pending.type === 'agent-iam.approval') await core.approve(pending.approvalId, o);
      return { [id]: { approved: true } };
    },

    async deny(pending: LangGraphPendingApproval, o: { approver: string; reason?: string }): Promise<LangGraphResume> {
      const id = key(pending);
      if (pending.type === 'agent-iam.approval') {
        const record = await core.deny(pending.approvalId, o);
        const by = `Denied by ${record.approver ?? 'an approver'}`;
        return { [id]: { approved: false, reason: o.reason !== undefined ? `${by}: ${o.reason}` : by } };
      }
      return { [id]: { approved: false, reason: o.reason ?? 'The user did not connect the account' } };
    },

    afterConsent(pending: LangGraphPendingApproval): LangGraphResume {
      return { [key(pending)]: { approved: true } };
    },

    resume(...answers: LangGraphResume[]): Command<unknown, Record<string, never>, never> {
      return new lg.Command<unknown, Record<string, never>, never>({ resume: Object.assign({}, ...answers) as Record<string, unknown> });
    },
  });
}
