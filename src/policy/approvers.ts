/**
 * Approver rules: who may decide an approval. A policy rule with `effect: 'approval'` names them
 * (`approvedBy`, `approvers`); every decision, through `approvals.approve` / `deny`, the JSON
 * approval routes or the approvals inbox, is checked against the rule the approval was created under.
 *
 * @module
 */
import type { AgentContext } from '../context.js';
import { AgentIamError } from '../errors.js';
import { hasControlChars } from '../lib/encoding.js';

/**
 * Who may approve a request that an `approval` policy rule matched. A person qualifies when any
 * listed condition holds: they hold one of `scopes`, are in one of `groups`, are one of `users`,
 * or (`requester: true`) are the user the agent acted for. Whatever the rule says, the agent, an
 * actor of its delegation chain, and a caller without an end user (a client-credentials token, a
 * delegated token carrying `act`) never decide.
 *
 * @example
 * ```ts
 * const rule: PolicyRule = { agent: 'support-agent', tool: 'stripe', effect: 'approval',
 *   capabilities: [{ method: 'POST', path: '/v1/refunds' }],
 *   approvedBy: { groups: ['finance'], scopes: ['approvals:admin'] }, approvers: 2 };
 * ```
 */
export interface ApproverRule {
  /** Holders of any of these scopes (the approver's verified `scope` / `scp`). */
  scopes?: string[];
  /** Members of any of these groups (the approver's `groups` claim). */
  groups?: string[];
  /** These user ids (exact, after Unicode NFKC and case folding). */
  users?: string[];
  /** The user the agent acts for may approve their own request (default false). */
  requester?: boolean;
}

/**
 * The person deciding an approval, as the approvals service checks them. Build it from a verified
 * context with {@link approverFromContext}; a plain string passed as `approver` means
 * `{ userId, kind: 'user' }` with no scopes or groups (an id your own app authenticated).
 *
 * @example
 * ```ts
 * await approvals.approve(id, { approver: approverFromContext(req.agentContext!) });
 * ```
 */
export interface Approver {
  userId: string;
  scopes?: readonly string[];
  groups?: readonly string[];
  /**
   * How they signed in: `user` (an end user), `client` (a token with no end user, such as client
   * credentials), `delegated` (a token another party obtained for them: RFC 8693 `act`). Only
   * `user` may decide. Default `user`.
   */
  kind?: 'user' | 'client' | 'delegated';
}

/** The approver part of an approval: the rule it was created under. */
export interface ApprovalRule {
  approvedBy?: ApproverRule;
  /** Distinct people who must approve (default 1). */
  approvers?: number;
  /** `ciba`: the user the agent acts for confirms on their device, through their identity provider. */
  mode?: 'ciba';
}

/** Most approvers a rule may require. */
export const MAX_APPROVERS = 10;

/** A name as compared for approvals: NFKC (fullwidth and compatibility forms folded), case-insensitive. */
export function party(name: string): string {
  return name.normalize('NFKC').toLowerCase();
}

function strings(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  if (typeof value === 'string' && value !== '') return value.split(' ').filter((s) => s !== '');
  return [];
}

/**
 * True when a verified token was issued to a client for itself, with no end user: RFC 9068 §2.2
 * (`sub` names the client), Auth0 (`gty: client-credentials`), Entra (`idtyp: app`), Okta
 * (`sub` = `cid`), Keycloak (`service-account-` users).
 */
export function isClientToken(claims: Readonly<Record<string, unknown>>): boolean {
  const sub = claims.sub;
  if (typeof sub === 'string') {
    for (const c of ['client_id', 'azp', 'cid', 'appid']) if (claims[c] === sub) return true;
  }
  const gty = claims.gty;
  if (gty === 'client-credentials' || gty === 'client_credentials' || (Array.isArray(gty) && gty.includes('client-credentials'))) return true;
  if (claims.idtyp === 'app') return true;
  const preferred = claims.preferred_username;
  if (typeof preferred === 'string' && preferred.startsWith('service-account-')) return true;
  return false;
}

/**
 * The {@link Approver} a verified context stands for: its user id, scopes and groups, and whether
 * it is an end user (`kind: 'user'`), a client acting for itself (`client`), or a delegated token
 * (`delegated`, a non-empty actor chain). Throws `TOKEN_MISSING` for a context without a user.
 *
 * @example
 * ```ts
 * const approver = approverFromContext(ctx);                       // ctx from verifier.verify()
 * await approvals.approve(id, { approver, ttlSeconds: 300 });
 * ```
 */
export function approverFromContext(context: AgentContext, options: { groupsClaim?: string } = {}): Approver {
  if (context === undefined || context === null || !context.authenticated || typeof context.userId !== 'string' || context.userId === '') {
    throw new AgentIamError('TOKEN_MISSING', 'An authenticated user is required to decide an approval');
  }
  const kind: Approver['kind'] = context.actorChain.length > 0 || context.claims.act !== undefined ? 'delegated' : isClientToken(context.claims) ? 'client' : 'user';
  return { userId: context.userId, scopes: [...context.scopes], groups: strings(context.claims[options.groupsClaim ?? 'groups']), kind };
}

/** The approver given to approve/deny as an {@link Approver}; `REQUEST_INVALID` when unusable. */
export function toApprover(value: unknown): Approver {
  const ok = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256 && !hasControlChars(v);
  if (ok(value)) return { userId: value, kind: 'user' };
  if (typeof value === 'object' && value !== null && ok((value as Approver).userId)) {
    const a = value as Approver;
    const out: Approver = { userId: a.userId, kind: a.kind ?? 'user' };
    if (!['user', 'client', 'delegated'].includes(out.kind as string)) throw new AgentIamError('REQUEST_INVALID', 'approver.kind must be user, client or delegated', { field: 'approver' });
    if (a.scopes !== undefined) out.scopes = strings(a.scopes);
    if (a.groups !== undefined) out.groups = strings(a.groups);
    return out;
  }
  throw new AgentIamError('REQUEST_INVALID', 'approver must be a non-empty string without control characters, or { userId }', { field: 'approver' });
}

/** True when the approver meets `rule` (any condition). The requester condition is checked by the caller. */
export function meetsRule(rule: ApproverRule, approver: Approver, isRequester: boolean): boolean {
  if (rule.requester === true && isRequester) return true;
  if (rule.users?.some((u) => party(u) === party(approver.userId)) === true) return true;
  if (rule.scopes !== undefined && approver.scopes?.some((s) => rule.scopes?.includes(s)) === true) return true;
  if (rule.groups !== undefined && approver.groups?.some((g) => rule.groups?.includes(g)) === true) return true;
  return false;
}

/** A rule in a canonical form (sorted lists, no empty fields), for binding and storing. */
export function canonicalRule(rule: ApprovalRule | undefined): ApprovalRule | undefined {
  if (rule === undefined) return undefined;
  const out: ApprovalRule = {};
  const by = rule.approvedBy;
  if (by !== undefined) {
    const b: ApproverRule = {};
    if (by.scopes !== undefined && by.scopes.length > 0) b.scopes = [...new Set(by.scopes)].sort();
    if (by.groups !== undefined && by.groups.length > 0) b.groups = [...new Set(by.groups)].sort();
    if (by.users !== undefined && by.users.length > 0) b.users = [...new Set(by.users)].sort();
    if (by.requester === true) b.requester = true;
    out.approvedBy = b;
  }
  if (rule.approvers !== undefined && rule.approvers !== 1) out.approvers = rule.approvers;
  if (rule.mode === 'ciba') out.mode = 'ciba';
  return out.approvedBy === undefined && out.approvers === undefined && out.mode === undefined ? undefined : out;
}
