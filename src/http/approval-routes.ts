/**
 * The framework-free core of the approval routes: list pending approvals, approve, deny — for
 * callers holding an admin scope only.
 *
 * @module
 */
import { z } from 'zod';
import { checkScopes } from './middleware-core.js';
import { parseOptions } from '../lib/options.js';
import type { AgentContext } from '../context.js';
import type { ApprovalRecord, Approvals } from '../policy/approvals.js';
import { approverFromContext, party, type Approver } from '../policy/approvers.js';
import {
  BASE_PATH_RE,
  badRequest,
  routeHandler,
  json,
  normalizeBasePath,
  notFound,
  requireUser,
  segmentsAfter,
  type RouteHandler,
  type RouteRequest,
  type RouteResponse,
} from './route-core.js';

/**
 * Options of the approval routes.
 *
 * @example
 * ```ts
 * const options: ApprovalRoutesOptions = { adminScope: 'approvals:admin', basePath: '/approvals' };
 * ```
 */
export interface ApprovalRoutesOptions {
  /**
   * The scope a caller's verified context must hold (403 `INSUFFICIENT_SCOPE` otherwise). Without
   * it, only approvals whose policy rule names its approvers (`approvedBy`) can be seen and decided
   * here, by those approvers.
   */
  adminScope?: string;
  /** Path prefix of the routes (default `/approvals`). */
  basePath?: string;
  /** The claim holding the caller's groups, for `approvedBy.groups` (default `groups`). */
  groupsClaim?: string;
}

/**
 * The approvals methods the routes use (an `Approvals` from `createApprovals`).
 *
 * @example
 * ```ts
 * const service: RouteApprovals = createApprovals({ store });
 * ```
 */
export type RouteApprovals = Pick<Approvals, 'list' | 'get' | 'approve' | 'deny' | 'mayDecide'>;

const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be an RFC 6749 scope token');
const optionsSchema = z.strictObject({
  adminScope: scopeToken.optional(),
  groupsClaim: z.string().min(1).max(256).optional(),
  basePath: z.string().regex(BASE_PATH_RE, 'must be a path such as /approvals').default('/approvals'),
});
const approvalsSchema = z.custom<RouteApprovals>(
  (v) => typeof v === 'object' && v !== null && ['list', 'get', 'approve', 'deny', 'mayDecide'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
  'must be an approvals service (createApprovals)',
);
const STATUSES = ['pending', 'approved', 'denied', 'consumed', 'expired'] as const;
const approveBodySchema = z.strictObject({ ttlSeconds: z.number().int().min(1).max(366 * 24 * 3600).optional() });
const denyBodySchema = z.strictObject({ reason: z.string().max(500).optional() });
const ID_RE = /^apr_[A-Za-z0-9_-]{1,64}$/;

async function readBody<T>(req: RouteRequest, schema: z.ZodType<T>): Promise<T> {
  const raw = req.readBody === undefined ? undefined : await req.readBody();
  const result = schema.safeParse(raw ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = (issue?.path ?? []).map(String).join('.') || '(body)';
    throw badRequest(`Invalid request body: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

/**
 * Build the framework-free approval routes (the Express and Hono `approvalRoutes` wrap this):
 *
 * - `GET {base}`: `{ approvals }`, pending ones (`?status=approved|denied|consumed|expired` for others).
 * - `GET {base}/:id`: `{ approval }`, or 404.
 * - `POST {base}/:id/approve` with an optional JSON body `{ ttlSeconds }`: `{ approval }`.
 * - `POST {base}/:id/deny`: takes an optional `{ "reason": "..." }` (at most 500 characters); `{ approval }`.
 *
 * Every route needs a verified context holding `adminScope`: 401 `TOKEN_MISSING` without one, 403
 * `INSUFFICIENT_SCOPE` (with `WWW-Authenticate`) when the scope is missing. The approver recorded
 * is the caller's user id; a caller who is the requester (the user the agent acted for) gets 403
 * `POLICY_DENIED` on approve and the approval stays pending, unless the approvals were created with
 * `allowSelfApproval: true`. Records never carry the request's query, body or any credential: their
 * `summary` shows method, host, path, bound override headers, SHA-256 hashes of query and body, and
 * the author's unverified `description` (render it as untrusted text).
 *
 * @example
 * ```ts
 * const routes = createApprovalRoutes(approvals, { adminScope: 'approvals:admin' });
 * const res = await routes.handle({ method: 'GET', path: '/approvals', query: new URLSearchParams(), context });
 * ```
 */
export function createApprovalRoutes(approvals: RouteApprovals, options: ApprovalRoutesOptions): RouteHandler {
  const service = parseOptions(approvalsSchema, approvals, 'approvals');
  const o = parseOptions(optionsSchema, options, 'approvalRoutes');
  const basePath = normalizeBasePath(o.basePath);
  const required = o.adminScope === undefined ? [] : [o.adminScope];

  function admin(req: RouteRequest): Approver {
    if (required.length > 0) checkScopes(req.context, required);
    requireUser(req.context);
    return approverFromContext(req.context as AgentContext, o.groupsClaim === undefined ? {} : { groupsClaim: o.groupsClaim });
  }

  /** Without an admin scope, only approvals whose rule names its approvers are served here. */
  const served = (r: ApprovalRecord): boolean => required.length > 0 || r.approvedBy !== undefined;

  /**
   * The approval, if this approver may decide it, or is its requester (who sees their own request,
   * may withdraw it, and is refused 403 `self_approval` on approve); 404 for anyone else, so that an
   * id alone reveals nothing.
   */
  async function existing(id: string, approver: Approver): Promise<ApprovalRecord> {
    if (!ID_RE.test(id)) throw notFound('Approval');
    const record = await service.get(id);
    if (record === undefined || !served(record)) throw notFound('Approval');
    const requester = record.summary.userId !== undefined && party(record.summary.userId) === party(approver.userId);
    if (!requester && !(await service.mayDecide(record, approver))) throw notFound('Approval');
    return record;
  }

  async function list(req: RouteRequest): Promise<RouteResponse> {
    const approver = admin(req);
    const status = req.query.get('status') ?? 'pending';
    if (!(STATUSES as readonly string[]).includes(status)) throw badRequest(`Invalid status: use one of ${STATUSES.join(', ')}`);
    const records = await service.list({ status: status as ApprovalRecord['status'], decidableBy: approver });
    return json(200, { approvals: records.filter(served) });
  }

  async function decide(req: RouteRequest, id: string, action: 'approve' | 'deny' | 'get'): Promise<RouteResponse> {
    const approver = admin(req);
    const record = await existing(id, approver);
    if (action === 'get') return json(200, { approval: record });
    if (action === 'approve') {
      const body = await readBody(req, approveBodySchema);
      const opts: { approver: Approver; ttlSeconds?: number } = { approver };
      if (body.ttlSeconds !== undefined) opts.ttlSeconds = body.ttlSeconds;
      return json(200, { approval: await service.approve(record.id, opts) });
    }
    const body = await readBody(req, denyBodySchema);
    return json(200, { approval: await service.deny(record.id, { approver, ...(body.reason !== undefined ? { reason: body.reason } : {}) }) });
  }

  function route(req: RouteRequest): Promise<RouteResponse> | undefined {
    const seg = segmentsAfter(req.path, basePath);
    if (seg === undefined) return undefined;
    const m = req.method;
    if (seg.length === 0 && m === 'GET') return list(req);
    if (seg.length === 1 && m === 'GET') return decide(req, seg[0] as string, 'get');
    if (seg.length === 2 && m === 'POST' && (seg[1] === 'approve' || seg[1] === 'deny')) return decide(req, seg[0] as string, seg[1]);
    return undefined;
  }

  return routeHandler(basePath, route);
}
