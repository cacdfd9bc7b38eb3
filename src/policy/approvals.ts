/**
 * Approvals: a human in the loop for requests that a policy marks `approval`.
 *
 * An approval is bound to one exact request: agent, user, tool, host, method, path, query, the
 * SHA-256 of the body, the delegation chain, and the value of every header the tool allows that
 * changes what it does (`allowHeaders`: a method override such as `X-HTTP-Method-Override`, or a
 * target override such as `X-Original-URL`), including its absence. Approved once, it lets that
 * request through once; approved with `ttlSeconds`, it lets it through until the TTL ends. Any
 * other request, e.g. the approved `GET /v2/items/7` sent with `X-HTTP-Method-Override: DELETE`, is
 * a new approval. Other headers are not bound: toolFetch refuses the ones that change the operation
 * unless the tool allows them, and sets credentials and identity itself.
 *
 * @module
 */
import type Keyv from 'keyv';
import { z } from 'zod';
import { AgentIamError, isAgentIamError, requestInvalid, storeUnavailable, type AgentIamErrorReason, type ApprovalSummary } from '../errors.js';
import { withTimeout } from '../lib/async.js';
import { hasControlChars, randomToken, sha256Hex } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../stores/store.js';
import { METHOD_OVERRIDES } from './headers.js';
import { canonicalRule, MAX_APPROVERS, meetsRule, party, toApprover, type ApprovalRule, type Approver, type ApproverRule } from './approvers.js';
import { emitAudit, type AuditEvent, type AuditSink } from '../audit/events.js';
import { isoNow, nowMs } from '../lib/clock.js';
import { secretReader, secretSchema, type SecretSource } from '../lib/secret.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { signWebhook, WEBHOOK_SIGNATURE_HEADER, type ApprovalNotification } from './notify.js';
import { createCibaClient, type CibaClient, type CibaOptions } from './ciba.js';

/** The request an approval is bound to. */
export interface ApprovalRequestInput {
  agentId: string;
  userId?: string;
  tool: string;
  method: string;
  /** The URL path as sent. */
  path: string;
  /** The query string as sent, with or without the leading `?` (`''` when none). */
  query: string;
  /** Lower-case hex SHA-256 of the request body (of the empty string when there is none). */
  bodySha256: string;
  /** Actor subjects of the delegation chain, outermost first. Part of the binding. */
  actorChain?: readonly string[];
  /** Host (and port) of the URL, as `URL.host` gives it. Part of the binding (toolFetch always sends it). */
  host?: string;
  /**
   * A summary for the approver from the agent's author (toolFetch's `approvalDescription`), at most
   * 500 characters without control characters. Shown as given, never verified and not part of the
   * binding: identical requests share one approval and its first description. The approver should
   * trust the bound fields (method, host, path, hashes), not this text.
   */
  description?: string;
  /**
   * Headers sent with the request that change what the tool does and that the tool allows
   * (`allowHeaders`: method and target overrides), lower-case name → value as sent. Part of the
   * binding: the same request with another override value, or without it, is another approval.
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * Who may decide (the `approvedBy` and `approvers` of the policy rule that asked for approval).
   * Part of the binding: the same request under a changed rule is another approval. Without it,
   * anyone who is not a party to the request may decide (see {@link ApprovalsOptions.allowSelfApproval}).
   */
  rule?: ApprovalRule;
}

/**
 * An approval as shown to approvers: never the query, the body or any credential. `summary` says
 * what the approval is bound to: agent, requester (`userId`), tool, method, host, path, the bound
 * override headers, and SHA-256 hashes of the query and body, which a reviewer can compare with
 * the request the requester shows them (a hash hides a long secret, not a short guessable value),
 * plus the author's unverified `description`.
 */
export interface ApprovalRecord {
  /** Random, unguessable id (`apr_…`). */
  id: string;
  /** `expired`: a pending or approved approval whose time is up. */
  status: 'pending' | 'approved' | 'denied' | 'consumed' | 'expired';
  summary: ApprovalSummary;
  /** epoch ms */
  createdAt: number;
  /** epoch ms of approve/deny */
  decidedAt?: number;
  approver?: string;
  /** epoch ms: when a pending approval lapses, or until when an approved one can be used. */
  expiresAt?: number;
  /** Who may decide it, from the policy rule (absent: anyone who is not a party to the request). */
  approvedBy?: ApproverRule;
  /** Distinct approvers it needs (absent: 1). */
  approversRequired?: number;
  /** The approvals given so far, in order (a rule needing two approvers shows the first while pending). */
  approvals?: Array<{ approver: string; decidedAt: number }>;
  /** The reason a denier gave (untrusted text, at most 500 characters). */
  reason?: string;
}

/** What {@link Approvals.check} found for a request. */
export type ApprovalCheck =
  | { status: 'approved'; id: string }
  | { status: 'pending'; id: string; summary: ApprovalSummary }
  | { status: 'denied'; id: string; reason?: string };

/** Options of {@link Approvals.check}. */
export interface ApprovalCheckOptions {
  /**
   * `false`: only look. An approved single-use approval is reported `approved` and stays usable, so
   * that the request it is bound to can still pass once; a pending approval is still created when
   * none exists (so that an approver can decide before the request is sent). Default `true`.
   */
  consume?: boolean;
}

/** The approvals API. Every store failure is `STORE_UNAVAILABLE` (fail closed). */
export interface Approvals {
  /**
   * Approvals known to this store (created by any instance on it), oldest first: at most the
   * 10 000 most recent, each listable until `2 × pendingTtlSeconds` after its creation (see
   * {@link createApprovals} for limits).
   */
  list(filter?: { status?: ApprovalRecord['status']; decidableBy?: string | Approver }): Promise<ApprovalRecord[]>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  /**
   * Approve a pending approval. Without `ttlSeconds` it is single use: the bound request passes
   * once. With `ttlSeconds` the bound request passes until the TTL ends. Unknown, expired or
   * already decided approvals are refused with `REQUEST_INVALID`.
   *
   * The approver must not be a party to the request: the requester (the user the agent acts for,
   * unless `allowSelfApproval` is set), the agent, or an actor of its delegation chain. Otherwise
   * the approval stays pending and `POLICY_DENIED` (403, `reason: 'self_approval'`) is thrown.
   * Names are compared case-insensitively after Unicode NFKC normalisation. Denying is always allowed.
   */
  approve(id: string, options: { approver: string | Approver; ttlSeconds?: number }): Promise<ApprovalRecord>;
  /**
   * Deny a pending (or revoke an approved, not yet used) approval, optionally with a reason (at most
   * 500 characters without control characters). The requester may always deny their own request;
   * anyone else must be an approver the rule admits.
   */
  deny(id: string, options: { approver: string | Approver; reason?: string }): Promise<ApprovalRecord>;
  /**
   * Whether `approver` may decide this approval under its rule (ignoring its status): the check the
   * inbox and routes use to show an approval only to those who may decide it.
   */
  mayDecide(record: ApprovalRecord | string, approver: string | Approver): Promise<boolean>;
  /**
   * Wait until the approval is decided (approved, denied, lapsed, or used by a TTL's end) or
   * `timeoutMs` passes, looking at the store every `pollMs` (default 500). Resolves with the
   * record as it then is (still `pending` at the timeout), or undefined for an unknown id.
   * `toolFetch(url, { waitForApproval })` uses it.
   */
  waitForDecision(id: string, options: { timeoutMs: number; pollMs?: number; signal?: AbortSignal }): Promise<ApprovalRecord | undefined>;
  /**
   * Used by toolFetch: find or create the approval bound to exactly this request; consumes a
   * single-use approval (unless `options.consume` is `false`).
   */
  check(request: ApprovalRequestInput, options?: ApprovalCheckOptions): Promise<ApprovalCheck>;
}

/** Options of {@link createApprovals}. */
export interface ApprovalsOptions {
  /** A Keyv instance (Redis, Postgres, …) or a {@link KeyValueStore}. Default: in-memory. */
  store?: Keyv | KeyValueStore;
  /**
   * How long a pending approval waits for a decision, how long a single-use approval waits to be
   * used, and how long decided records stay listable (default 86400 = 24 h).
   */
  pendingTtlSeconds?: number;
  /** Receives `approval.request`, `approval.approve` and `approval.deny` events. */
  audit?: AuditSink;
  /** Bound on each store call in ms (default 5000); past it the call fails with `STORE_UNAVAILABLE`. */
  timeoutMs?: number;
  /**
   * Let the requester (the user the agent acts for) approve their own request (default false: the
   * human in the loop is someone else). For a single-person setup or a demo. The agent and the
   * actors of its delegation chain can never approve, whatever this says.
   */
  allowSelfApproval?: boolean;
  /**
   * Called once for every new pending approval (not for repeats of a waiting request), with its
   * id and inbox link: send a chat message, an e-mail. Never awaited by the request; a hook that
   * throws is ignored.
   */
  onApprovalRequested?: (notification: ApprovalNotification) => void | Promise<void>;
  /**
   * POST the same notification as JSON to `url` (https; http only on loopback), signed with
   * HMAC-SHA256 in the `Agent-Iam-Signature` header (check it with `verifyWebhookSignature`). One
   * retry on a network error or 5xx; failures never affect the request.
   */
  webhook?: { url: string; secret: SecretSource; timeoutMs?: number };
  /** The approvals inbox (`{publicOrigin}{basePath}/approvals` of the pages): notifications link to `{inboxUrl}/{id}`. */
  inboxUrl?: string;
  /**
   * OpenID CIBA for rules with `approvalMode: 'ciba'`: the identity provider asks the user the agent
   * acts for to confirm on their device (poll mode; `slow_down` and `Retry-After` are honoured).
   * `toolFetch(url, { waitForApproval })` and `waitForDecision` poll until the provider answers; a
   * refusal is `approval_denied`, an expired request `approval_expired`.
   */
  ciba?: CibaOptions;
}

type Status = ApprovalRecord['status'];

/** What is stored under `storeKey('approval', id)`. */
interface StoredApproval {
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

const ID_RE = /^apr_[A-Za-z0-9_-]{22}$/;
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]{1,64}$/;
const HOST = /^[A-Za-z0-9.:[\]-]{1,261}$/;
/** `list()` returns at most this many approvals: the most recent ones. */
const MAX_LIST = 10_000;
/** Attempts of one compare-and-set loop before the store is reported contended. */
const ATTEMPTS = 8;
const MAX_TTL_SECONDS = 366 * 24 * 3600;

const summarySchema = z.object({
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
const storedSchema = z.object({
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
const optionsSchema = z.strictObject({
  store: z.custom<Keyv | KeyValueStore>((v) => typeof v === 'object' && v !== null && typeof (v as KeyValueStore).get === 'function' && typeof (v as KeyValueStore).set === 'function' && typeof (v as KeyValueStore).delete === 'function', 'must be a Keyv instance or a KeyValueStore').optional(),
  pendingTtlSeconds: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
  audit: z.custom<AuditSink>((v) => typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'), 'must be a function or an object with write()').optional(),
  timeoutMs: z.number().int().positive().max(600_000).optional(),
  allowSelfApproval: z.boolean().optional(),
  onApprovalRequested: z.custom<NonNullable<ApprovalsOptions['onApprovalRequested']>>((v) => typeof v === 'function', 'must be a function').optional(),
  webhook: z
    .strictObject({ url: z.string(), secret: secretSchema(z.string().min(16, 'must be at least 16 characters')), timeoutMs: z.number().int().min(1).max(60_000).optional() })
    .optional(),
  inboxUrl: z.string().optional(),
  ciba: z
    .strictObject({
      issuer: z.string(),
      clientId: z.string().min(1).max(1024),
      clientSecret: secretSchema(z.string().min(1).max(4096)),
      scopes: z.array(z.string().min(1)).min(1).optional(),
      bindingMessage: z.custom<(s: ApprovalSummary) => string>((v) => typeof v === 'function', 'must be a function').optional(),
      requestedExpirySeconds: z.number().int().min(1).max(86_400).optional(),
      authorizationDetailsType: z.string().min(1).max(256).optional(),
      pollIntervalSeconds: z.number().min(0.05).max(300).optional(),
      fetch: z.custom<typeof fetch>((v) => typeof v === 'function', 'must be a function').optional(),
      timeoutMs: z.number().int().min(1).max(120_000).optional(),
    })
    .optional(),
});

function invalid(message: string, field?: string): AgentIamError {
  return requestInvalid(message, { field });
}

function storeFailure(reason: AgentIamErrorReason): AgentIamError {
  return storeUnavailable('The approval store is unavailable', reason);
}

function copySummary(summary: ApprovalSummary): ApprovalSummary {
  const out = { ...summary };
  if (summary.headers !== undefined) out.headers = { ...summary.headers };
  return out;
}

function effectiveStatus(rec: StoredApproval, now: number): Status {
  if ((rec.status === 'pending' || rec.status === 'approved') && now >= rec.expiresAt) return 'expired';
  return rec.status;
}

function toPublic(rec: StoredApproval, now: number): ApprovalRecord {
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

function copyRule(rule: ApproverRule): ApproverRule {
  const out: ApproverRule = {};
  if (rule.scopes !== undefined) out.scopes = [...rule.scopes];
  if (rule.groups !== undefined) out.groups = [...rule.groups];
  if (rule.users !== undefined) out.users = [...rule.users];
  if (rule.requester !== undefined) out.requester = rule.requester;
  return out;
}

/** An author's summary an approver may see: bounded, no control characters. */
function validDescription(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 500 && !hasControlChars(value);
}

function validName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 256 && !hasControlChars(value);
}

/**
 * The binding key of a request: SHA-256 over a JSON array (an unambiguous encoding: no two
 * different requests give the same text).
 */
async function bindingOf(r: ApprovalRequestInput): Promise<string> {
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
function headerEntries(headers: Readonly<Record<string, string>> | undefined): [string, string][] {
  if (headers === undefined) return [];
  return Object.keys(headers)
    .map((k): [string, string] => [k.toLowerCase(), headers[k] as string])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** How a bound header is shown: a method override's method, any other value as its SHA-256. */
async function shownHeaders(headers: Readonly<Record<string, string>> | undefined): Promise<Record<string, string> | undefined> {
  const entries = headerEntries(headers);
  if (entries.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    out[name] = METHOD_OVERRIDES.has(name) && METHOD_TOKEN.test(value) ? value.toUpperCase() : `sha256:${await sha256Hex(value)}`;
  }
  return out;
}

/**
 * Create the approvals store and API. Records live in the given store (default: in memory) under
 * `agent-iam:v1:approval:…`, with store TTLs so memory stays bounded: a pending approval lapses after
 * `pendingTtlSeconds`, and every record is dropped `pendingTtlSeconds` after it ends.
 *
 * Every decision goes through the store's atomic operations: one pending approval per bound
 * request (the binding is set-if-absent, or compare-and-set over a used one), approve and deny
 * fenced by the record's version, and single use as a compare-and-set from `approved` to
 * `consumed`, so that of any number of concurrent identical requests exactly one passes. On the
 * Redis and PostgreSQL stores (`agent-iam/redis`, `agent-iam/postgres`) and in memory this is exact
 * across all processes; on a Keyv store it is exact inside one process and best effort across
 * processes (two replicas can both pass a single-use approval).
 *
 * `list` reads one store index of approval ids (each listable until `2 × pendingTtlSeconds` after
 * its creation) and returns at most the 10 000 most recent.
 *
 * @example
 * ```ts
 * import { redisStore } from 'agent-iam/redis';
 * const approvals = createApprovals({ store: redisStore({ url: process.env.REDIS_URL! }) });
 * try { await toolFetch('https://api.stripe.com/v1/refunds', { method: 'POST', body }); }
 * catch (e) { if (isAgentIamError(e) && e.code === 'APPROVAL_REQUIRED') notify(e.approvalId, e.approval); }
 * // later, from an admin UI:
 * await approvals.approve(approvalId, { approver: 'alice@example.com' });          // passes once
 * await approvals.approve(otherId, { approver: 'alice@example.com', ttlSeconds: 600 }); // for 10 min
 * ```
 */
export function createApprovals(options: ApprovalsOptions = {}): Approvals {
  const opts = parseOptions(optionsSchema, options, 'approvals');
  const timeoutMs = opts.timeoutMs ?? 5000;
  const pendingTtlMs = (opts.pendingTtlSeconds ?? 86_400) * 1000;
  const kv = createKeyValueStore(opts.store, { timeoutMs });
  const audit = opts.audit;
  const allowSelfApproval = opts.allowSelfApproval ?? false;
  const inboxUrl = opts.inboxUrl === undefined ? undefined : requireSecureUrl(opts.inboxUrl, 'approvals.inboxUrl', 'CONFIG_INVALID').href.replace(/\/$/, '');
  const webhookUrl = opts.webhook === undefined ? undefined : requireSecureUrl(opts.webhook.url, 'approvals.webhook.url', 'CONFIG_INVALID');
  const webhookSecret = opts.webhook === undefined ? undefined : secretReader(opts.webhook.secret, 'approvals.webhook: secret', (v) => v.length >= 16);
  const webhookTimeout = opts.webhook?.timeoutMs ?? 5000;
  if (opts.ciba !== undefined) requireSecureUrl(opts.ciba.issuer, 'approvals.ciba.issuer', 'CONFIG_INVALID');
  const ciba: CibaClient | undefined = opts.ciba === undefined ? undefined : createCibaClient(opts.ciba as CibaOptions);

  /** Start the CIBA request of a pending approval (mode `ciba`) that has none yet. */
  async function startCiba(rec: StoredApproval): Promise<void> {
    if (ciba === undefined) throw new AgentIamError('CONFIG_INVALID', 'A policy asks for approvalMode ciba: configure createApprovals({ ciba })', { field: 'approvals.ciba' });
    const userId = rec.summary.userId;
    if (userId === undefined) {
      await decide(rec.id, (r, now) => ({ ...r, status: 'denied', decidedAt: now, approver: 'ciba', reason: 'CIBA needs the user the agent acts for' }));
      return;
    }
    const started = await ciba.start(rec.summary, userId);
    await decide(rec.id, (r, now) => (r.status !== 'pending' || r.ciba !== undefined ? r : { ...r, ciba: { ...started, nextPollAt: now + started.intervalMs } }));
  }

  /** Ask the identity provider once (when the interval allows) and record what it said. */
  async function pollCiba(id: string): Promise<void> {
    if (ciba === undefined) return;
    const cur = await read(id);
    if (cur === undefined || cur.rec.status !== 'pending' || cur.rec.rule?.mode !== 'ciba') return;
    const now = nowMs();
    if (effectiveStatus(cur.rec, now) !== 'pending') return;
    if (cur.rec.ciba === undefined) return startCiba(cur.rec);
    if (now < cur.rec.ciba.nextPollAt) return;
    const userId = cur.rec.summary.userId as string;
    const answer = await ciba.poll(cur.rec.ciba.authReqId, userId);
    await decide(id, (r, at) => {
      if (r.status !== 'pending' || r.ciba === undefined) return r;
      switch (answer.status) {
        case 'approved': {
          const out: StoredApproval = { ...r, status: 'approved', decidedAt: at, approver: userId, expiresAt: at + pendingTtlMs };
          delete out.ciba;
          return out;
        }
        case 'denied':
          return { ...r, status: 'denied', decidedAt: at, approver: userId, reason: 'refused on the user’s device' };
        case 'expired':
          return { ...r, expiresAt: at };
        default: {
          const intervalMs = r.ciba.intervalMs + (answer.slowDown === true ? 5000 : 0);
          return { ...r, ciba: { ...r.ciba, intervalMs, nextPollAt: at + Math.max(intervalMs, answer.waitMs ?? 0) } };
        }
      }
    });
    const after = await read(id);
    if (after !== undefined && after.rec.status !== 'pending') {
      event(after.rec.status === 'approved' ? 'approval.approve' : 'approval.deny', after.rec, after.rec.status === 'approved' ? 'allow' : 'deny', { approver: userId });
    }
  }

  /** Tell the hook and the webhook about a new pending approval; never throws, never awaited by the request. */
  function notify(rec: StoredApproval): void {
    if (opts.onApprovalRequested === undefined && webhookUrl === undefined) return;
    const n: ApprovalNotification = { type: 'approval.requested', approvalId: rec.id, agentId: rec.summary.agentId, tool: rec.summary.tool, createdAt: rec.createdAt, expiresAt: rec.expiresAt };
    if (inboxUrl !== undefined) n.inboxUrl = `${inboxUrl}/${rec.id}`;
    if (opts.onApprovalRequested !== undefined) {
      try {
        void Promise.resolve(opts.onApprovalRequested({ ...n })).catch(() => {});
      } catch {
        // a failing hook changes nothing
      }
    }
    if (webhookUrl !== undefined && webhookSecret !== undefined) {
      void (async () => {
        const body = JSON.stringify(n);
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            const signature = await signWebhook(await webhookSecret.get(), body, Math.floor(nowMs() / 1000));
            const res = await fetch(webhookUrl, {
              method: 'POST',
              redirect: 'manual',
              headers: { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: signature, 'agent-iam-event': n.type },
              body,
              signal: AbortSignal.timeout(webhookTimeout),
            });
            await res.body?.cancel().catch(() => {});
            if (res.status < 500) return;
          } catch {
            // network error or timeout: one more try
          }
        }
      })().catch(() => {});
    }
  }

  const guard = <T>(fn: () => Promise<T>): Promise<T> =>
    withTimeout(Promise.resolve().then(fn), timeoutMs, () => storeFailure('timeout')).catch((e: unknown) => {
      if (isAgentIamError(e) && e.code === 'STORE_UNAVAILABLE') throw e;
      throw storeFailure('error');
    });

  const recordKey = (id: string): string => storeKey('approval', id);
  const bindingKey = (binding: string): string => storeKey('approval-binding', binding);
  const listKey = storeKey('approval-list');
  /** How long after its creation an approval stays listable (= the pending record's store TTL). */
  const dropSpan = pendingTtlMs * 2;

  async function read(id: string): Promise<{ rec: StoredApproval; version: string } | undefined> {
    const v = await guard(() => kv.getVersioned(recordKey(id)));
    if (v === undefined || v.value === undefined || v.value === null) return undefined;
    const parsed = storedSchema.safeParse(v.value);
    if (!parsed.success || parsed.data.id !== id) throw storeFailure('malformed');
    const rec = parsed.data as StoredApproval & { nonce?: string };
    delete rec.nonce;
    return { rec, version: v.version };
  }

  /** Store TTL: until the record ends, plus the history retention. */
  const ttlFor = (rec: StoredApproval, now: number): number => {
    const end = rec.status === 'pending' || rec.status === 'approved' ? rec.expiresAt : now;
    return Math.max(1, end - now) + pendingTtlMs;
  };

  /** Replace a record only if it is still the version that was read. */
  const replace = (next: StoredApproval, version: string, now: number): Promise<boolean> =>
    guard(() => kv.compareAndSet(recordKey(next.id), version, next, ttlFor(next, now)));

  /** Keep the binding alive as long as its record, unless it already points elsewhere. */
  async function extendBinding(rec: StoredApproval, now: number): Promise<void> {
    const key = bindingKey(rec.binding);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const b = await guard(() => kv.getVersioned<string>(key));
      if (b !== undefined && b.value !== rec.id) return;
      const ok = b === undefined ? await guard(() => kv.setIfAbsent(key, rec.id, ttlFor(rec, now))) : await guard(() => kv.compareAndSet(key, b.version, rec.id, ttlFor(rec, now)));
      if (ok) return;
    }
  }

  function event(type: AuditEvent['type'], rec: StoredApproval, decision: AuditEvent['decision'], extra: Partial<AuditEvent> = {}): void {
    if (audit === undefined) return;
    const e: AuditEvent = { type, time: isoNow(), agentId: rec.summary.agentId, decision };
    if (rec.summary.userId !== undefined) e.userId = rec.summary.userId;
    if (rec.actorChain !== undefined && rec.actorChain.length > 0) e.actorChain = rec.actorChain;
    e.tool = rec.summary.tool;
    e.method = rec.summary.method;
    e.path = rec.summary.path;
    e.approvalId = rec.id;
    emitAudit(audit, { ...e, ...extra });
  }

  async function newPending(request: ApprovalRequestInput, binding: string, now: number): Promise<StoredApproval> {
    const summary: ApprovalSummary = {
      agentId: request.agentId,
      tool: request.tool,
      method: request.method.toUpperCase(),
      path: request.path,
    };
    if (request.userId !== undefined) summary.userId = request.userId;
    if (request.host !== undefined) summary.host = request.host.toLowerCase();
    const headers = await shownHeaders(request.headers);
    if (headers !== undefined) summary.headers = headers;
    summary.querySha256 = await sha256Hex(request.query.startsWith('?') ? request.query.slice(1) : request.query);
    summary.bodySha256 = request.bodySha256.toLowerCase();
    if (request.description !== undefined) summary.description = request.description;
    const rec: StoredApproval = {
      v: 1,
      id: `apr_${randomToken(16)}`,
      status: 'pending',
      summary,
      binding,
      createdAt: now,
      expiresAt: now + pendingTtlMs,
    };
    if (request.actorChain !== undefined && request.actorChain.length > 0) rec.actorChain = [...request.actorChain];
    const rule = canonicalRule(request.rule);
    if (rule !== undefined) rec.rule = rule;
    return rec;
  }

  function validateRequest(r: ApprovalRequestInput): void {
    if (typeof r !== 'object' || r === null) throw invalid('An approval request is required');
    if (!validName(r.agentId)) throw invalid('agentId must be a non-empty string', 'agentId');
    if (!validName(r.tool)) throw invalid('tool must be a non-empty string', 'tool');
    if (r.userId !== undefined && !validName(r.userId)) throw invalid('userId must be a non-empty string', 'userId');
    if (typeof r.method !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/.test(r.method)) throw invalid('method must be an HTTP method', 'method');
    if (typeof r.path !== 'string' || !r.path.startsWith('/') || hasControlChars(r.path)) throw invalid('path must be a URL path', 'path');
    if (typeof r.query !== 'string' || hasControlChars(r.query)) throw invalid('query must be a string', 'query');
    if (typeof r.bodySha256 !== 'string' || r.bodySha256.length === 0) throw invalid('bodySha256 must be a hex SHA-256', 'bodySha256');
    if (r.description !== undefined && !validDescription(r.description)) {
      throw invalid('description must be a string of at most 500 characters without control characters', 'description');
    }
    if (r.actorChain !== undefined && (!Array.isArray(r.actorChain) || !r.actorChain.every(validName))) {
      throw invalid('actorChain must be a list of actor subjects', 'actorChain');
    }
    if (r.host !== undefined && (typeof r.host !== 'string' || !HOST.test(r.host))) throw invalid('host must be a URL host', 'host');
    if (r.rule !== undefined) validateRule(r.rule);
    if (r.headers !== undefined) {
      const h = r.headers as unknown;
      if (typeof h !== 'object' || h === null || Array.isArray(h)) throw invalid('headers must be an object of header names to values', 'headers');
      const names = Object.keys(h);
      if (names.length > 32) throw invalid('headers: at most 32 bound headers', 'headers');
      const seen = new Set<string>();
      for (const name of names) {
        const value = (h as Record<string, unknown>)[name];
        if (!HEADER_NAME.test(name) || seen.has(name)) throw invalid('headers: names must be distinct lower-case header names', 'headers');
        seen.add(name);
        if (typeof value !== 'string' || value.length > 8192 || hasControlChars(value)) throw invalid('headers: values must be strings without control characters', 'headers');
      }
    }
  }

  function validateRule(rule: unknown): void {
    const r = rule as ApprovalRule;
    if (typeof r !== 'object' || r === null) throw invalid('rule must be an object', 'rule');
    if (r.approvers !== undefined && !(Number.isInteger(r.approvers) && r.approvers >= 1 && r.approvers <= MAX_APPROVERS)) throw invalid(`rule.approvers must be 1 to ${MAX_APPROVERS}`, 'rule');
    const by = r.approvedBy;
    if (by === undefined) return;
    if (typeof by !== 'object' || by === null) throw invalid('rule.approvedBy must be an object', 'rule');
    for (const k of ['scopes', 'groups', 'users'] as const) {
      const list = by[k];
      if (list !== undefined && !(Array.isArray(list) && list.length <= 10_000 && list.every(validName))) throw invalid(`rule.approvedBy.${k} must be a list of names`, 'rule');
    }
    if (by.requester !== undefined && typeof by.requester !== 'boolean') throw invalid('rule.approvedBy.requester must be a boolean', 'rule');
  }

  /**
   * Why `approver` may not decide `rec`, or undefined when they may. `deny`: the requester may
   * always withdraw their own request. Checked on every decision, whatever the caller checked before.
   */
  function refusal(rec: StoredApproval, approver: Approver, action: 'approve' | 'deny'): { reason: AgentIamErrorReason; message: string } | undefined {
    if (approver.kind !== undefined && approver.kind !== 'user') {
      return { reason: 'approver_not_a_user', message: 'Only a signed-in person decides approvals, not a client or a delegated token' };
    }
    const a = party(approver.userId);
    if (party(rec.summary.agentId) === a) return { reason: 'self_approval', message: 'The approver is the agent of this request and cannot decide it' };
    if (rec.actorChain?.some((actor) => party(actor) === a) === true) return { reason: 'self_approval', message: 'The approver is an actor of this request and cannot decide it' };
    const isRequester = rec.summary.userId !== undefined && party(rec.summary.userId) === a;
    if (action === 'deny' && isRequester) return undefined;
    const by = rec.rule?.approvedBy;
    if (by === undefined) {
      if (isRequester && !allowSelfApproval) return { reason: 'self_approval', message: 'The approver is the requester of this request and cannot approve it' };
      return undefined;
    }
    if (isRequester && by.requester !== true) return { reason: 'self_approval', message: 'The approver is the requester of this request and cannot approve it' };
    if (!meetsRule(by, approver, isRequester)) return { reason: 'not_an_approver', message: 'The approver is not one the policy names for this approval' };
    return undefined;
  }

  function deniedTo(rec: StoredApproval, approver: Approver, why: { reason: AgentIamErrorReason; message: string }, type: 'approval.approve' | 'approval.deny'): AgentIamError {
    event(type, rec, 'deny', { approver: approver.userId, code: 'POLICY_DENIED' });
    return new AgentIamError('POLICY_DENIED', why.message, { reason: why.reason });
  }

  /**
   * Decide one approval with compare-and-set on its version: `change` returns the next record (or
   * throws); a concurrent decision makes it read and decide again.
   */
  async function decide(id: string, change: (rec: StoredApproval, now: number) => StoredApproval): Promise<StoredApproval> {
    if (typeof id !== 'string' || !ID_RE.test(id)) throw invalid('Unknown approval', 'id');
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const cur = await read(id);
      if (cur === undefined) throw invalid('Unknown approval', 'id');
      const now = nowMs();
      const next = change(cur.rec, now);
      if (await replace(next, cur.version, now)) {
        await extendBinding(next, now);
        return next;
      }
    }
    throw storeFailure('contended');
  }

  async function getRecord(id: string): Promise<ApprovalRecord | undefined> {
    if (typeof id !== 'string' || !ID_RE.test(id)) return undefined;
    const found = await read(id);
    return found === undefined ? undefined : toPublic(found.rec, nowMs());
  }

  return Object.freeze({
    async check(request: ApprovalRequestInput, options?: ApprovalCheckOptions): Promise<ApprovalCheck> {
      validateRequest(request);
      const consume = options?.consume !== false;
      const binding = await bindingOf(request);
      const bKey = bindingKey(binding);
      let polled = false;
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const b = await guard(() => kv.getVersioned<string>(bKey));
        const found = b !== undefined && typeof b.value === 'string' && ID_RE.test(b.value) ? await read(b.value) : undefined;
        // A record that does not carry this binding is not ours: never let it decide.
        if (found !== undefined && found.rec.binding === binding) {
          const { rec, version } = found;
          const now = nowMs();
          const status = effectiveStatus(rec, now);
          if (status === 'pending' && rec.rule?.mode === 'ciba' && !polled) {
            polled = true;
            await pollCiba(rec.id);
            continue; // look again at what the provider said
          }
          if (status === 'pending') return { status: 'pending', id: rec.id, summary: copySummary(rec.summary) };
          if (status === 'denied') return rec.reason !== undefined ? { status: 'denied', id: rec.id, reason: rec.reason } : { status: 'denied', id: rec.id };
          if (status === 'approved') {
            if (rec.reusable === true || !consume) return { status: 'approved', id: rec.id };
            // Single use: of all concurrent consumers, the one whose compare-and-set lands passes.
            if (await replace({ ...rec, status: 'consumed' }, version, now)) return { status: 'approved', id: rec.id };
            continue; // someone else consumed (or decided) it meanwhile: look again
          }
        }
        // No usable approval for this request: create one, and point the binding at it only over
        // what was read, so that concurrent identical requests share one pending approval.
        const now = nowMs();
        const rec = await newPending(request, binding, now);
        const ttl = ttlFor(rec, now);
        // Record, then index, then the binding that makes it reachable: a failure before the binding
        // leaves an unreachable record that expires by itself, and a bound approval is always listed.
        await guard(() => kv.set(recordKey(rec.id), rec, ttl));
        await guard(() => kv.indexAdd(listKey, rec.id, dropSpan));
        const bound = b === undefined ? await guard(() => kv.setIfAbsent(bKey, rec.id, ttl)) : await guard(() => kv.compareAndSet(bKey, b.version, rec.id, ttl));
        if (!bound) {
          await guard(() => kv.delete(recordKey(rec.id))).catch(() => false);
          await guard(() => kv.indexRemove(listKey, rec.id)).catch(() => false);
          continue; // another process bound one first: use it
        }
        event('approval.request', rec, 'approval', { code: 'APPROVAL_REQUIRED' });
        notify(rec);
        if (rec.rule?.mode === 'ciba') await startCiba(rec);
        return { status: 'pending', id: rec.id, summary: copySummary(rec.summary) };
      }
      throw storeFailure('contended');
    },

    get: getRecord,

    async list(filter: { status?: Status; decidableBy?: string | Approver } = {}): Promise<ApprovalRecord[]> {
      const now = nowMs();
      const viewer = filter.decidableBy === undefined ? undefined : toApprover(filter.decidableBy);
      const ids = (await guard(() => kv.indexMembers(listKey, MAX_LIST))).filter((id) => ID_RE.test(id));
      const records = await Promise.all(ids.map((id) => read(id)));
      const out: ApprovalRecord[] = [];
      for (const found of records) {
        if (found === undefined) continue;
        if (viewer !== undefined && refusal(found.rec, viewer, 'approve') !== undefined) continue;
        const pub = toPublic(found.rec, now);
        if (filter.status === undefined || pub.status === filter.status) out.push(pub);
      }
      return out.sort((a, b) => a.createdAt - b.createdAt);
    },

    async waitForDecision(id: string, o: { timeoutMs: number; pollMs?: number; signal?: AbortSignal }): Promise<ApprovalRecord | undefined> {
      const until = Date.now() + Math.max(0, o?.timeoutMs ?? 0);
      const pollMs = Math.max(20, Math.min(o?.pollMs ?? 500, 60_000));
      for (;;) {
        let r = await getRecord(id);
        if (r !== undefined && r.status === 'pending' && ciba !== undefined) {
          await pollCiba(id);
          r = await getRecord(id);
        }
        if (r === undefined || r.status !== 'pending') return r;
        const left = until - Date.now();
        if (left <= 0 || o?.signal?.aborted === true) return r;
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, Math.min(pollMs, left));
          function done(): void {
            clearTimeout(t);
            o?.signal?.removeEventListener('abort', done);
            resolve();
          }
          o?.signal?.addEventListener('abort', done, { once: true });
        });
      }
    },

    async mayDecide(record: ApprovalRecord | string, approver: string | Approver): Promise<boolean> {
      const who = toApprover(approver);
      const id = typeof record === 'string' ? record : record?.id;
      if (typeof id !== 'string' || !ID_RE.test(id)) return false;
      const found = await read(id);
      return found !== undefined && refusal(found.rec, who, 'approve') === undefined;
    },

    async approve(id: string, o: { approver: string | Approver; ttlSeconds?: number }): Promise<ApprovalRecord> {
      const approver = toApprover(o?.approver);
      const ttlSeconds = o?.ttlSeconds;
      if (ttlSeconds !== undefined && !(typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds > 0 && ttlSeconds <= MAX_TTL_SECONDS)) {
        throw invalid(`ttlSeconds must be a number between 0 and ${MAX_TTL_SECONDS}`, 'ttlSeconds');
      }
      const next = await decide(id, (rec, now) => {
        const status = effectiveStatus(rec, now);
        if (status !== 'pending') throw invalid(`Approval is ${status}; only a pending approval can be approved`, 'id');
        const why = refusal(rec, approver, 'approve');
        if (why !== undefined) throw deniedTo(rec, approver, why, 'approval.approve');
        const given = rec.approvals ?? [];
        if (given.some((a) => party(a.approver) === party(approver.userId))) {
          throw deniedTo(rec, approver, { reason: 'same_approver', message: 'This approver has already approved; another person must approve' }, 'approval.approve');
        }
        const entry: { approver: string; at: number; ttlSeconds?: number } = { approver: approver.userId, at: now };
        if (ttlSeconds !== undefined) entry.ttlSeconds = ttlSeconds;
        const all = [...given, entry];
        const required = rec.rule?.approvers ?? 1;
        if (all.length < required) return { ...rec, approvals: all };
        // Every approver's choice holds: single use when any asked for it, else the shortest TTL.
        const ttls = all.map((a) => a.ttlSeconds);
        const reusable = ttls.every((t) => t !== undefined);
        const ttl = reusable ? Math.min(...(ttls as number[])) : undefined;
        const out: StoredApproval = {
          ...rec,
          status: 'approved',
          decidedAt: now,
          approver: approver.userId,
          expiresAt: now + (ttl !== undefined ? ttl * 1000 : pendingTtlMs),
        };
        if (required > 1) out.approvals = all;
        else delete out.approvals;
        if (reusable) out.reusable = true;
        return out;
      });
      if (next.status === 'pending') event('approval.approve', next, 'approval', { approver: approver.userId });
      else event('approval.approve', next, 'allow', { approver: approver.userId });
      return toPublic(next, nowMs());
    },

    async deny(id: string, o: { approver: string | Approver; reason?: string }): Promise<ApprovalRecord> {
      const approver = toApprover(o?.approver);
      const reason = o?.reason;
      if (reason !== undefined && !validDescription(reason)) throw invalid('reason must be a string of at most 500 characters without control characters', 'reason');
      const next = await decide(id, (rec, now) => {
        const status = effectiveStatus(rec, now);
        if (status !== 'pending' && status !== 'approved') {
          throw invalid(`Approval is ${status}; only a pending or approved approval can be denied`, 'id');
        }
        const why = refusal(rec, approver, 'deny');
        if (why !== undefined) throw deniedTo(rec, approver, why, 'approval.deny');
        const out: StoredApproval = { ...rec, status: 'denied', decidedAt: now, approver: approver.userId };
        if (reason !== undefined && reason !== '') out.reason = reason;
        delete out.reusable;
        if (reason !== undefined) out.reason = reason;
        return out;
      });
      event('approval.deny', next, 'deny', { approver: approver.userId, code: 'POLICY_DENIED' });
      return toPublic(next, next.decidedAt ?? nowMs());
    },
  });
}
