/**
 * Keep only the known, typed fields of an audit event, in a stable order.
 *
 * @module
 */
import type { AuditEvent } from './events.js';

type Kind = 'string' | 'number' | 'strings';

/**
 * The fields a sink writes, in the order it writes them. `prevHash` is set by chained sinks only.
 * Typed as a full record so that a field added to {@link AuditEvent} fails type-checking here until
 * it is given a kind (and so is never silently dropped).
 */
const FIELD_KINDS: Record<Exclude<keyof AuditEvent, 'prevHash'>, Kind> = {
  type: 'string',
  time: 'string',
  requestId: 'string',
  agentId: 'string',
  userId: 'string',
  actorChain: 'strings',
  tool: 'string',
  connection: 'string',
  method: 'string',
  path: 'string',
  decision: 'string',
  code: 'string',
  reason: 'string',
  status: 'number',
  durationMs: 'number',
  approvalId: 'string',
  approver: 'string',
};
const FIELDS = Object.entries(FIELD_KINDS) as ReadonlyArray<[keyof AuditEvent, Kind]>;

/**
 * A copy of `event` with only the fields {@link AuditEvent} declares (each of the declared type),
 * in a fixed key order, and without `prevHash`. Anything else a caller may have attached (a
 * header, a token, a query string) is dropped, and a `path` loses any `?query` or `#fragment`.
 *
 * @example
 * ```ts
 * redactEvent({ type: 'tool.request', time, decision: 'allow', path: '/v1/x?key=s3cr3t', token: 'x' } as AuditEvent);
 * // → { type: 'tool.request', time, path: '/v1/x', decision: 'allow' }
 * ```
 */
export function redactEvent(event: AuditEvent): AuditEvent {
  const out: Record<string, unknown> = {};
  const source = event as unknown as Record<string, unknown>;
  for (const [key, kind] of FIELDS) {
    let value = source[key];
    if (value === undefined || value === null) continue;
    if (kind === 'string') {
      if (typeof value !== 'string') continue;
      if (key === 'path') {
        const cut = value.search(/[?#]/);
        if (cut !== -1) value = value.slice(0, cut);
      }
    } else if (kind === 'number') {
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    } else {
      if (!Array.isArray(value)) continue;
      value = value.filter((v): v is string => typeof v === 'string');
    }
    out[key] = value;
  }
  return out as unknown as AuditEvent;
}
