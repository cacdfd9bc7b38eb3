/**
 * Policies: which agent may use which tool, for which users, and with what effect.
 *
 * @module
 */
import { z } from 'zod';
import { parseOptions } from '../lib/options.js';
import { hasControlChars } from '../lib/encoding.js';
import { compileCapabilities, type Capability, type CapabilityMatcher } from './capabilities.js';
import { MAX_APPROVERS, type ApproverRule } from './approvers.js';

/** What a matching rule does. `deny` beats `approval` beats `allow`. */
export type PolicyEffect = 'allow' | 'approval' | 'deny';

/**
 * One policy rule. A rule matches a request when `agent` and `tool` match (exactly, or `*`), every
 * condition that is present matches, and its `capabilities` (when present) match the method and path.
 *
 * Conditions (each optional; a present list must not be empty):
 * - `users`: the user id is one of them (exact);
 * - `groups`: the user is in at least one of them (from the `groups` claim);
 * - `domains`: the user's email domain is one of them (exact, case-insensitive; no subdomains);
 * - `actors`: the RFC 8693 delegation chain. For an `allow` rule the chain must be non-empty and
 *   **every** actor in it must be listed; for `approval` and `deny` rules it is enough that **any**
 *   actor in it is listed. This way an extra, unlisted actor can only ever narrow access.
 *
 * @example
 * ```ts
 * const rules: PolicyRule[] = [
 *   { agent: 'support-agent', tool: 'stripe' },                                  // allow
 *   { agent: 'support-agent', tool: 'stripe', effect: 'approval',
 *     capabilities: [{ method: 'POST', path: '/v1/refunds' }] },
 *   { agent: '*', tool: 'github', groups: ['contractors'], effect: 'deny' },
 * ];
 * ```
 */
export interface PolicyRule {
  /** Agent id, or `*` for any agent. */
  agent: string;
  /** Tool name, or `*` for any tool. */
  tool: string;
  users?: string[];
  groups?: string[];
  domains?: string[];
  actors?: string[];
  capabilities?: Capability[];
  /** Default `allow`. */
  effect?: PolicyEffect;
  /**
   * `approval` rules only: who may decide (holders of a scope, members of a group, named users, and
   * with `requester: true` the user the agent acts for). Without it, anyone who is not a party to
   * the request (the routes and inbox add their `adminScope`). The agent, its actors and callers
   * without an end user never decide.
   */
  approvedBy?: ApproverRule;
  /** `approval` rules only: how many distinct people must approve (default 1, at most 10). */
  approvers?: number;
  /**
   * `approval` rules only: `ciba` asks the identity provider of the user the agent acts for to have
   * them confirm on their own device (OpenID CIBA, poll mode; `createApprovals({ ciba })`). Default
   * `inbox`: people decide in the pages, the routes or through `approvals.approve`.
   */
  approvalMode?: 'inbox' | 'ciba';
}

/** What the policy engine looks at for one request. */
export interface PolicyInput {
  agentId: string;
  tool: string;
  userId?: string;
  groups: readonly string[];
  domain?: string;
  /** Actor subjects, outermost first. */
  actorChain: readonly string[];
  method: string;
  /** The URL path as sent (no query). */
  path: string;
}

/** The outcome of {@link PolicyEngine.evaluate}. */
export interface PolicyDecision {
  effect: PolicyEffect;
  /** The deciding rule (the first declared rule with the winning effect). */
  rule?: PolicyRule;
  /** `no_rule`: nothing matched, which is a denial. */
  reason: 'matched' | 'no_rule';
}

/** A compiled rule set. */
export interface PolicyEngine {
  /** Decide one request. Synchronous and allocation-free apart from the caller's input. */
  evaluate(input: PolicyInput): PolicyDecision;
}

const name = z
  .string()
  .min(1)
  .max(256)
  .refine((v) => !hasControlChars(v), 'must not contain control characters');
const nameList = z.array(name).min(1, 'must not be empty (omit it to match anyone)').max(10_000);
const domain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$/, 'must be a domain name');

const ruleSchema = z.strictObject({
  agent: name,
  tool: name,
  users: nameList.optional(),
  groups: nameList.optional(),
  domains: z.array(domain).min(1, 'must not be empty (omit it to match anyone)').max(10_000).optional(),
  actors: nameList.optional(),
  // Patterns are checked by compileCapabilities, which names the field precisely.
  capabilities: z.array(z.object({ method: z.string(), path: z.string() })).min(1, 'must not be empty (omit it to allow every operation)').optional(),
  effect: z.enum(['allow', 'approval', 'deny']).optional(),
  approvedBy: z
    .strictObject({ scopes: nameList.optional(), groups: nameList.optional(), users: nameList.optional(), requester: z.boolean().optional() })
    .refine((v) => v.scopes !== undefined || v.groups !== undefined || v.users !== undefined || v.requester === true, 'must name scopes, groups, users or requester: true')
    .optional(),
  approvers: z.number().int().min(1).max(MAX_APPROVERS).optional(),
  approvalMode: z.enum(['inbox', 'ciba']).optional(),
}).superRefine((rule, ctx) => {
  if (rule.effect !== 'approval') {
    for (const k of ['approvedBy', 'approvers', 'approvalMode'] as const) {
      if (rule[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: "is only for rules with effect: 'approval'" });
    }
  }
});
const rulesSchema = z.array(ruleSchema).max(100_000);

const RANK: Record<PolicyEffect, number> = { allow: 1, approval: 2, deny: 3 };

interface CompiledRule {
  index: number;
  rank: number;
  restrictive: boolean;
  users: ReadonlySet<string> | undefined;
  groups: ReadonlySet<string> | undefined;
  domains: ReadonlySet<string> | undefined;
  actors: ReadonlySet<string> | undefined;
  capabilities: CapabilityMatcher | undefined;
  decision: PolicyDecision;
}

const NO_RULE: PolicyDecision = Object.freeze({ effect: 'deny', reason: 'no_rule' });
const EMPTY: readonly CompiledRule[] = Object.freeze([]);

function deepFreeze(rule: PolicyRule): PolicyRule {
  const out: PolicyRule = { agent: rule.agent, tool: rule.tool, effect: rule.effect ?? 'allow' };
  if (rule.users) out.users = Object.freeze([...rule.users]) as string[];
  if (rule.groups) out.groups = Object.freeze([...rule.groups]) as string[];
  if (rule.domains) out.domains = Object.freeze(rule.domains.map((d) => d.toLowerCase())) as string[];
  if (rule.actors) out.actors = Object.freeze([...rule.actors]) as string[];
  if (rule.capabilities) out.capabilities = Object.freeze(rule.capabilities.map((c) => Object.freeze({ method: c.method, path: c.path }))) as Capability[];
  if (rule.approvedBy) {
    const by: ApproverRule = {};
    if (rule.approvedBy.scopes) by.scopes = Object.freeze([...rule.approvedBy.scopes]) as string[];
    if (rule.approvedBy.groups) by.groups = Object.freeze([...rule.approvedBy.groups]) as string[];
    if (rule.approvedBy.users) by.users = Object.freeze([...rule.approvedBy.users]) as string[];
    if (rule.approvedBy.requester !== undefined) by.requester = rule.approvedBy.requester;
    out.approvedBy = Object.freeze(by);
  }
  if (rule.approvers !== undefined) out.approvers = rule.approvers;
  if (rule.approvalMode !== undefined) out.approvalMode = rule.approvalMode;
  return Object.freeze(out);
}

function matches(rule: CompiledRule, input: PolicyInput): boolean {
  if (rule.users !== undefined && (input.userId === undefined || !rule.users.has(input.userId))) return false;
  if (rule.groups !== undefined) {
    let any = false;
    for (const g of input.groups) {
      if (rule.groups.has(g)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  if (rule.domains !== undefined && (input.domain === undefined || !rule.domains.has(input.domain.toLowerCase()))) return false;
  if (rule.actors !== undefined) {
    const chain = input.actorChain;
    if (rule.restrictive) {
      // approval/deny: any listed actor in the chain triggers the rule
      let any = false;
      for (const a of chain) {
        if (rule.actors.has(a)) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    } else {
      // allow: a non-empty chain made only of listed actors
      if (chain.length === 0) return false;
      for (const a of chain) if (!rule.actors.has(a)) return false;
    }
  }
  if (rule.capabilities !== undefined && rule.capabilities.match(input.method, input.path) === undefined) return false;
  return true;
}

/** The strongest matching rule of `list`, or `best` when none beats it (ties: the first declared). */
function pick(list: readonly CompiledRule[], input: PolicyInput, best: CompiledRule | undefined): CompiledRule | undefined {
  for (const rule of list) {
    if (best !== undefined && (rule.rank < best.rank || (rule.rank === best.rank && rule.index > best.index))) continue;
    if (matches(rule, input)) best = rule;
  }
  return best;
}

/**
 * Compile policy rules once. Rules are validated with zod (`CONFIG_INVALID` naming the field, e.g.
 * `policies.2.capabilities.0.path`) and indexed by agent and tool, so {@link PolicyEngine.evaluate}
 * only looks at the rules that can apply.
 *
 * Precedence: `deny` beats `approval` beats `allow`; when nothing matches the decision is
 * `{ effect: 'deny', reason: 'no_rule' }`. A claim that no rule names (an extra group, domain or
 * actor) never turns a denial into access.
 *
 * @example
 * ```ts
 * const engine = createPolicyEngine([{ agent: 'support-agent', tool: 'stripe' }]);
 * engine.evaluate({ agentId: 'support-agent', tool: 'stripe', userId: 'u1', groups: [],
 *   actorChain: [], method: 'GET', path: '/v1/charges' });
 * // → { effect: 'allow', rule: {...}, reason: 'matched' }
 * ```
 */
export function createPolicyEngine(rules: readonly PolicyRule[]): PolicyEngine {
  const parsed = parseOptions(rulesSchema, rules, 'policies');
  // agent → tool → rules, so a decision needs no string building
  const index = new Map<string, Map<string, CompiledRule[]>>();
  parsed.forEach((raw, i) => {
    const rule = deepFreeze(raw as PolicyRule);
    const effect = rule.effect ?? 'allow';
    const compiled: CompiledRule = {
      index: i,
      rank: RANK[effect],
      restrictive: effect !== 'allow',
      users: rule.users ? new Set(rule.users) : undefined,
      groups: rule.groups ? new Set(rule.groups) : undefined,
      domains: rule.domains ? new Set(rule.domains) : undefined,
      actors: rule.actors ? new Set(rule.actors) : undefined,
      capabilities: rule.capabilities ? compileCapabilities(rule.capabilities, `policies.${i}.capabilities`) : undefined,
      decision: Object.freeze({ effect, rule, reason: 'matched' as const }),
    };
    let byTool = index.get(rule.agent);
    if (byTool === undefined) index.set(rule.agent, (byTool = new Map()));
    const list = byTool.get(rule.tool);
    if (list) list.push(compiled);
    else byTool.set(rule.tool, [compiled]);
  });

  const bucket = (agent: string, tool: string): readonly CompiledRule[] => index.get(agent)?.get(tool) ?? EMPTY;

  return Object.freeze({
    evaluate(input: PolicyInput): PolicyDecision {
      let best = pick(bucket(input.agentId, input.tool), input, undefined);
      if (input.tool !== '*') best = pick(bucket(input.agentId, '*'), input, best);
      if (input.agentId !== '*') best = pick(bucket('*', input.tool), input, best);
      if (input.agentId !== '*' && input.tool !== '*') best = pick(bucket('*', '*'), input, best);
      return best === undefined ? NO_RULE : best.decision;
    },
  });
}
