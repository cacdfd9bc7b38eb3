// The public types of approvals: the request an approval is bound to, its record, the service and
// its options (createApprovals is in approvals.ts).
import type Keyv from 'keyv';
import type { ApprovalSummary } from '../errors.js';
import type { AuditSink } from '../audit/events.js';
import type { KeyValueStore } from '../stores/store.js';
import type { SecretSource } from '../lib/secret.js';
import type { ApprovalRule, Approver, ApproverRule } from './approvers.js';
import type { ApprovalNotification } from './notify.js';
import type { CibaOptions } from './ciba.js';

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
