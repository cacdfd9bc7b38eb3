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
import { AgentIamError, isAgentIamError, type AgentIamErrorReason, type ApprovalSummary } from '../errors.js';
import { withTimeout } from '../lib/async.js';
import { hasControlChars, randomToken, sha256Hex } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../stores/store.js';
import { canonicalRule, MAX_APPROVERS, meetsRule, party, toApprover, type ApprovalRule, type Approver } from './approvers.js';
import { emitAudit, type AuditEvent, type AuditSink } from '../audit/events.js';
import { isoNow, nowMs } from '../lib/clock.js';
import { secretReader, secretSchema } from '../lib/secret.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { signWebhook, WEBHOOK_SIGNATURE_HEADER, type ApprovalNotification } from './notify.js';
import { createCibaClient, type CibaClient, type CibaOptions } from './ciba.js';

import { ID_RE, HEADER_NAME, HOST, MAX_LIST, ATTEMPTS, MAX_TTL_SECONDS, storedSchema, invalid, storeFailure, copySummary, effectiveStatus, toPublic, validDescription, validName, bindingOf, shownHeaders, type Status, type StoredApproval } from './approval-records.js';
import type { ApprovalRequestInput, ApprovalRecord, ApprovalCheck, ApprovalCheckOptions, Approvals, ApprovalsOptions } from './approval-types.js';

export type { ApprovalRequestInput, ApprovalRecord, ApprovalCheck, ApprovalCheckOptions, Approvals, ApprovalsOptions } from './approval-types.js';

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
