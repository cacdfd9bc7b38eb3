/**
 * Audit events: one for every inbound verification, tool decision, token issue/refresh/revoke,
 * consent and approval. An event never holds a secret, a raw token or a query-string value.
 *
 * @module
 */
import type { Actor } from '../context.js';

/** The kinds of audit events. */
export type AuditEventType =
  | 'inbound.verify'
  | 'tool.request'
  | 'tool.redirect'
  | 'token.issue'
  | 'token.refresh'
  | 'token.revoke'
  | 'token.exchange'
  | 'consent.required'
  | 'consent.complete'
  | 'approval.request'
  | 'approval.approve'
  | 'approval.deny'
  | 'session.sign_in'
  | 'session.sign_out';

/** A decision recorded by an event. */
export type AuditDecision = 'allow' | 'deny' | 'approval' | 'consent' | 'error';

/** One audit event. Fields that do not apply are left out. */
export interface AuditEvent {
  type: AuditEventType;
  /** ISO 8601 time of the event. */
  time: string;
  agentId?: string;
  userId?: string;
  /** The delegation chain (subjects of nested `act`, outermost first). */
  actorChain?: readonly string[];
  tool?: string;
  /** Token connection id, for token events. */
  connection?: string;
  method?: string;
  /** The URL path only: never the query string. */
  path?: string;
  decision: AuditDecision;
  /** The error code when the decision is not `allow`. */
  code?: string;
  /**
   * What happened, where the code alone does not say. `tool.request`: `tool_unreachable` (the tool
   * could not be reached: connection refused, DNS, TLS), `timeout` (`timeoutMs` elapsed), `aborted`
   * (the caller's signal).
   */
  reason?: string;
  durationMs?: number;
  requestId?: string;
  approvalId?: string;
  /** Who approved or denied, for `approval.approve` / `approval.deny` events. */
  approver?: string;
  /** Upstream HTTP status, for tool requests that were sent. */
  status?: number;
  /** With a hash-chained sink: SHA-256 (hex) of the previous event line. */
  prevHash?: string;
}

/** Something that receives audit events: a function, or an object with `write`. */
export type AuditSink =
  | ((event: AuditEvent) => void | Promise<void>)
  | { write(event: AuditEvent): void | Promise<void> };

/** The actor subjects of a chain, for an event. */
export function actorSubjects(chain: readonly Actor[] | undefined): string[] | undefined {
  if (!chain || chain.length === 0) return undefined;
  return chain.map((a) => a.subject);
}

/**
 * @internal Deliver an event to a sink. Never throws and never rejects: an audit sink that fails
 * must not turn a decision into a crash (the failure is swallowed; sinks that must not lose events
 * should buffer themselves).
 */
export function emitAudit(sink: AuditSink | undefined, event: AuditEvent): void {
  if (sink === undefined) return;
  try {
    const result = typeof sink === 'function' ? sink(event) : sink.write(event);
    if (result && typeof (result as Promise<void>).catch === 'function') (result as Promise<void>).catch(() => {});
  } catch {
    // a failing sink never breaks the request
  }
}
