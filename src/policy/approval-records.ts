// How an approval is stored and bound: the stored record and its schema, the binding of a request,
// the validation of its parts and the public view of a record. Pure functions over records; the
// service that reads and writes them is createApprovals in approvals.ts.
import { z } from 'zod';
import { AgentIamError, requestInvalid, storeUnavailable, type AgentIamErrorReason, type ApprovalSummary } from '../errors.js';
import { hasControlChars, sha256Hex } from '../lib/encoding.js';
import { METHOD_OVERRIDES } from './headers.js';
import { canonicalRule, MAX_APPROVERS, type ApprovalRule, type ApproverRule } from './approvers.js';
import type { ApprovalRecord, ApprovalRequestInput } from './approval-types.js';

export type Status = ApprovalRecord['status'];

/** What is stored under `storeKey('approval', id)`. */
export interface StoredApproval {
  v: 1;
  id: string;
  status: 'pending' | 'approved' | 'denied' | 'consumed';
  summary: ApprovalSummary;
  actorChain?: string[];
  binding: string;
  createdAt: number;
  decidedAt?: number;
  approver?: string;
  /** pending: lapses at; approved: usable until. */
  expiresAt: number;
  /** approved with ttlSeconds: may be used more than once. */
  reusable?: boolean;
  rule?: ApprovalRule;
  /** Approvals given (a rule needing several approvers collects them while pending). */
  approvals?: Array<{ approver: string; at: number; ttlSeconds?: number }>;
  /** Deny reason. */
  reason?: string;
  /** A CIBA request at the user's identity provider (mode `ciba`). */
  ciba?: { authReqId: string; expiresAt: number; intervalMs: number; nextPollAt: number };
}

export const ID_RE = /^apr_[A-Za-z0-9_-]{22}$/;
export const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]{1,64}$/;
export const HOST = /^[A-Za-z0-9.:[\]-]{1,261}$/;
/** `list()` returns at most this many approvals: the most recent ones. */
export const MAX_LIST = 10_000;
/** Attempts of one compare-and-set loop before the store is reported contended. */
export const ATTEMPTS = 8;
export const MAX_TTL_SECONDS = 366 * 24 * 3600;

export const summarySchema = z.object({
  agentId: z.string(),
  userId: z.string().optional(),
  tool: z.string(),
  method: z.string(),
  path: z.string(),
  host: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  querySha256: z.string().optional(),
  bodySha256: z.string().optional(),
  description: z.string().optional(),
});
export const storedSchema = z.object({
  v: z.literal(1),
  id: z.string().regex(ID_RE),
  status: z.enum(['pending', 'approved', 'denied', 'consumed']),
  summary: summarySchema,
  actorChain: z.array(z.string()).optional(),
  binding: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.number(),
  decidedAt: z.number().optional(),
  approver: z.string().optional(),
  expiresAt: z.number(),
  reusable: z.boolean().optional(),
  rule: z
    .object({
      approvedBy: z.object({ scopes: z.array(z.string()).optional(), groups: z.array(z.string()).optional(), users: z.array(z.string()).optional(), requester: z.boolean().optional() }).optional(),
      approvers: z.number().int().min(1).max(MAX_APPROVERS).optional(),
      mode: z.literal('ciba').optional(),
    })
    .optional(),
  approvals: z.array(z.object({ approver: z.string(), at: z.number(), ttlSeconds: z.number().optional() })).max(MAX_APPROVERS).optional(),
  reason: z.string().max(500).optional(),
  ciba: z.object({ authReqId: z.string().max(1024), expiresAt: z.number(), intervalMs: z.number(), nextPollAt: z.number() }).optional(),
  // the single-use marker of earlier builds; read and dropped
  nonce: z.string().optional(),
});
export function invalid(message: string, field?: string): AgentIamError {
  return requestInvalid(message, { field });
}

export function storeFailure(reason: AgentIamErrorReason): AgentIamError {
  return storeUnavailable('The approval store is unavailable', reason);
}

export function copySummary(summary: ApprovalSummary): ApprovalSummary {
  const out = { ...summary };
  if (summary.headers !== undefined) out.headers = { ...summary.headers };
  return out;
}

export function effectiveStatus(rec: StoredApproval, now: number): Status {
  if ((rec.status === 'pending' || rec.status === 'approved') && now >= rec.expiresAt) return 'expired';
  return rec.status;
}

export function toPublic(rec: StoredApproval, now: number): ApprovalRecord {
  const status = effectiveStatus(rec, now);
  const out: ApprovalRecord = { id: rec.id, status, summary: copySummary(rec.summary), createdAt: rec.createdAt };
  if (rec.decidedAt !== undefined) out.decidedAt = rec.decidedAt;
  if (rec.approver !== undefined) out.approver = rec.approver;
  if (status === 'pending' || status === 'approved' || status === 'expired') out.expiresAt = rec.expiresAt;
  if (rec.rule?.approvedBy !== undefined) out.approvedBy = copyRule(rec.rule.approvedBy);
  if (rec.rule?.approvers !== undefined && rec.rule.approvers > 1) out.approversRequired = rec.rule.approvers;
  if (rec.approvals !== undefined && rec.approvals.length > 0) out.approvals = rec.approvals.map((a) => ({ approver: a.approver, decidedAt: a.at }));
  if (rec.reason !== undefined) out.reason = rec.reason;
  return out;
}

export function copyRule(rule: ApproverRule): ApproverRule {
  const out: ApproverRule = {};
  if (rule.scopes !== undefined) out.scopes = [...rule.scopes];
  if (rule.groups !== undefined) out.groups = [...rule.groups];
  if (rule.users !== undefined) out.users = [...rule.users];
  if (rule.requester !== undefined) out.requester = rule.requester;
  return out;
}

/** An author's summary an approver may see: bounded, no control characters. */
export function validDescription(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 500 && !hasControlChars(value);
}

export function validName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 256 && !hasControlChars(value);
}

/**
 * The binding key of a request: SHA-256 over a JSON array (an unambiguous encoding: no two
 * different requests give the same text).
 */
export async function bindingOf(r: ApprovalRequestInput): Promise<string> {
  const query = r.query.startsWith('?') ? r.query.slice(1) : r.query;
  const fields: unknown[] = ['agent-iam:approval:v1', r.agentId, r.userId ?? null, r.tool, r.method.toUpperCase(), r.path, query, r.bodySha256, r.actorChain ?? []];
  const headers = headerEntries(r.headers);
  // Appended only when present, so that a request without them keeps the binding it had before.
  const rule = canonicalRule(r.rule);
  if (r.host !== undefined || headers.length > 0 || rule !== undefined) fields.push(r.host?.toLowerCase() ?? null, headers);
  if (rule !== undefined) fields.push(rule);
  return sha256Hex(JSON.stringify(fields));
}

/** Bound headers in a canonical order: lower-case names, sorted. */
export function headerEntries(headers: Readonly<Record<string, string>> | undefined): [string, string][] {
  if (headers === undefined) return [];
  return Object.keys(headers)
    .map((k): [string, string] => [k.toLowerCase(), headers[k] as string])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** How a bound header is shown: a method override's method, any other value as its SHA-256. */
export async function shownHeaders(headers: Readonly<Record<string, string>> | undefined): Promise<Record<string, string> | undefined> {
  const entries = headerEntries(headers);
  if (entries.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    out[name] = METHOD_OVERRIDES.has(name) && METHOD_TOKEN.test(value) ? value.toUpperCase() : `sha256:${await sha256Hex(value)}`;
  }
  return out;
}
