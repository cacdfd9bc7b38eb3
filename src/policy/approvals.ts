/**
 * Approvals: a human in the loop for requests that a policy marks `approval`.
 *
 * An approval is bound to one exact request — agent, user, tool, method, path, query, the SHA-256
 * of the body, and the delegation chain. Approved once, it lets that request through once; approved
 * with `ttlSeconds`, it lets it through until the TTL ends. Any other request is a new approval.
 *
 * @module
 */
import type Keyv from 'keyv';
import { z } from 'zod';
import { AgentIamError, type ApprovalSummary } from '../errors.js';
import { sleep, withTimeout } from '../lib/async.js';
import { hasControlChars, randomToken, sha256Hex } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../stores/store.js';
import { emitAudit, type AuditEvent, type AuditSink } from '../audit/events.js';

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
}

/** An approval as shown to approvers: never the query, the body or any credential. */
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
}

/** What {@link Approvals.check} found for a request. */
export type ApprovalCheck =
  | { status: 'approved'; id: string }
  | { status: 'pending'; id: string; summary: ApprovalSummary }
  | { status: 'denied'; id: string };

/** The approvals API. Every store failure is `STORE_UNAVAILABLE` (fail closed). */
export interface Approvals {
  /**
   * Approvals known to this store (created by any instance on it), oldest first: at most the
   * 10 000 most recent, each listable until `2 × pendingTtlSeconds` after its creation (see
   * {@link createApprovals} for limits).
   */
  list(filter?: { status?: ApprovalRecord['status'] }): Promise<ApprovalRecord[]>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  /**
   * Approve a pending approval. Without `ttlSeconds` it is single use: the bound request passes
   * once. With `ttlSeconds` the bound request passes until the TTL ends. Unknown, expired or
   * already decided approvals are refused with `REQUEST_INVALID`.
   */
  approve(id: string, options: { approver: string; ttlSeconds?: number }): Promise<ApprovalRecord>;
  /** Deny a pending (or revoke an approved, not yet used) approval. */
  deny(id: string, options: { approver: string }): Promise<ApprovalRecord>;
  /**
   * Used by toolFetch: find or create the approval bound to exactly this request; consumes a
   * single-use approval.
   */
  check(request: ApprovalRequestInput): Promise<ApprovalCheck>;
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
  /** single-use consumption marker, to detect a concurrent consumer. */
  nonce?: string;
}

const ID_RE = /^apr_[A-Za-z0-9_-]{22}$/;
/** `list()` returns at most this many approvals: the most recent ones. */
const MAX_LIST = 10_000;
/** Index entries per chunk record: what one creation rewrites at most. */
const CHUNK_SIZE = 64;
/** Chunks a writer keeps listable: enough for {@link MAX_LIST} entries. */
const MAX_CHUNKS = Math.ceil(MAX_LIST / CHUNK_SIZE) + 1;
/** Writers (createApprovals instances) the shared registry keeps, most recently active first. */
const MAX_WRITERS = 1_000;
/** Wait before re-reading the registry after writing it, to catch a concurrent overwrite. */
const REGISTRY_SETTLE_MS = 50;
const WRITER_RE = /^[A-Za-z0-9_-]{22}$/;
const MAX_TTL_SECONDS = 366 * 24 * 3600;

const summarySchema = z.object({
  agentId: z.string(),
  userId: z.string().optional(),
  tool: z.string(),
  method: z.string(),
  path: z.string(),
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
  nonce: z.string().optional(),
});
/** A chunk of one writer's index: `[id, createdAt, dropAt]` per approval, in creation order. */
const chunkSchema = z.object({ v: z.literal(1), e: z.array(z.tuple([z.string(), z.number(), z.number()])).max(CHUNK_SIZE) });
/** One writer's head: the range of its chunk numbers that can still hold listable entries. */
const headSchema = z.object({ v: z.literal(1), first: z.number().int().min(0), last: z.number().int().min(0) });
/** The shared registry of writers: `[writerId, until]` (until: epoch ms after which all its entries are dropped). */
const registrySchema = z.array(z.tuple([z.string(), z.number()])).max(MAX_WRITERS * 2);
/** The single index record earlier builds wrote: `[id, dropAt]`, read (never written) by `list()`. */
const legacyIndexSchema = z.array(z.tuple([z.string(), z.number()]));

type IndexEntry = [id: string, createdAt: number, dropAt: number];
interface Chunk {
  seq: number;
  entries: IndexEntry[];
  maxDrop: number;
  dirty: boolean;
}

const optionsSchema = z.strictObject({
  store: z.custom<Keyv | KeyValueStore>((v) => typeof v === 'object' && v !== null && typeof (v as KeyValueStore).get === 'function' && typeof (v as KeyValueStore).set === 'function' && typeof (v as KeyValueStore).delete === 'function', 'must be a Keyv instance or a KeyValueStore').optional(),
  pendingTtlSeconds: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
  audit: z.custom<AuditSink>((v) => typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'), 'must be a function or an object with write()').optional(),
  timeoutMs: z.number().int().positive().max(600_000).optional(),
});

function invalid(message: string, field?: string): AgentIamError {
  return new AgentIamError('REQUEST_INVALID', message, field === undefined ? {} : { field });
}

function storeFailure(reason: string): AgentIamError {
  return new AgentIamError('STORE_UNAVAILABLE', 'The approval store is unavailable', { reason });
}

/** Runs functions one at a time per key, in call order. */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const result = prev.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

function effectiveStatus(rec: StoredApproval, now: number): Status {
  if ((rec.status === 'pending' || rec.status === 'approved') && now >= rec.expiresAt) return 'expired';
  return rec.status;
}

function toPublic(rec: StoredApproval, now: number): ApprovalRecord {
  const status = effectiveStatus(rec, now);
  const out: ApprovalRecord = { id: rec.id, status, summary: { ...rec.summary }, createdAt: rec.createdAt };
  if (rec.decidedAt !== undefined) out.decidedAt = rec.decidedAt;
  if (rec.approver !== undefined) out.approver = rec.approver;
  if (status === 'pending' || status === 'approved' || status === 'expired') out.expiresAt = rec.expiresAt;
  return out;
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
  return sha256Hex(
    JSON.stringify(['agent-iam:approval:v1', r.agentId, r.userId ?? null, r.tool, r.method.toUpperCase(), r.path, query, r.bodySha256, r.actorChain ?? []]),
  );
}

/**
 * Create the approvals store and API. Records live in the given store (default: in memory) under
 * `agent-iam:v1:approval:…`, with store TTLs so memory stays bounded: a pending approval lapses after
 * `pendingTtlSeconds`, and every record is dropped `pendingTtlSeconds` after it ends.
 *
 * Listing: each instance indexes the approvals it creates in its own small records (chunks of 64
 * ids, each with the store TTL of the approvals in it), and names itself in one shared registry of
 * instances. Creating an approval therefore rewrites one small record whatever the number of
 * approvals (O(1)), and instances sharing a store (several processes on one Redis) never overwrite
 * each other's entries. An instance's first creation, and one creation per `2 × pendingTtlSeconds`
 * after, also updates the registry and reads it back 50 ms later (to repair a concurrent overwrite,
 * re-checked every 64 creations), so create one instance per process and reuse it; the registry keeps
 * the 1 000 most recently active instances. `list` returns at most the 10 000 most recent approvals
 * whose records are still held (until `2 × pendingTtlSeconds` after creation), and its cost grows
 * with that number and the number of instances, not with the history of the store.
 *
 * Single use is enforced with a re-read and a write-then-verify marker; a store without atomic
 * operations cannot fully exclude two processes consuming one approval at the very same moment.
 *
 * @example
 * ```ts
 * const approvals = createApprovals({ store: new Keyv(new KeyvRedis(redisUrl)) });
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
  const locks = new KeyedMutex();

  const guard = <T>(fn: () => Promise<T>): Promise<T> =>
    withTimeout(Promise.resolve().then(fn), timeoutMs, () => storeFailure('timeout')).catch((e: unknown) => {
      if (e instanceof AgentIamError && e.code === 'STORE_UNAVAILABLE') throw e;
      throw storeFailure('error');
    });

  const recordKey = (id: string): string => storeKey('approval', id);
  const bindingKey = (binding: string): string => storeKey('approval-binding', binding);
  const registryKey = storeKey('approval-writers');
  const legacyIndexKey = storeKey('approval-index');

  async function read(id: string): Promise<StoredApproval | undefined> {
    const value = await guard(() => kv.get(recordKey(id)));
    if (value === undefined || value === null) return undefined;
    const parsed = storedSchema.safeParse(value);
    if (!parsed.success || parsed.data.id !== id) throw storeFailure('malformed');
    return parsed.data as StoredApproval;
  }

  /** Store TTL: until the record ends, plus the history retention. */
  const ttlFor = (rec: StoredApproval, now: number): number => {
    const end = rec.status === 'pending' || rec.status === 'approved' ? rec.expiresAt : now;
    return Math.max(1, end - now) + pendingTtlMs;
  };

  async function write(rec: StoredApproval, now: number): Promise<void> {
    const ttl = ttlFor(rec, now);
    await guard(() => kv.set(recordKey(rec.id), rec, ttl));
  }

  // ---- the list index ------------------------------------------------------------------------
  // Every createApprovals instance is a "writer" with a random id. It appends the approvals it
  // creates to its own chunk records (`approval-chunk:<writer>:<seq>`, at most CHUNK_SIZE entries
  // each) and keeps the range of its live chunks in its own head record (`approval-head:<writer>`).
  // Only this instance ever writes those keys, so no read-modify-write race can drop an entry and a
  // creation rewrites at most one small chunk: O(1) in the number of approvals. The chunk contents
  // are kept in memory (this writer is their only author), so a creation does one write, no read.
  // The one shared record is the registry of writers (`approval-writers`): written when a writer
  // starts and about once per retention period after, then re-read after REGISTRY_SETTLE_MS and
  // re-checked at every chunk rollover, so a concurrent overwrite is repaired.
  const writerId = randomToken(16);
  const headKey = storeKey('approval-head', writerId);
  const chunkKey = (writer: string, seq: number): string => storeKey('approval-chunk', writer, String(seq));
  /** How long after its creation an index entry stays listable (= the pending record's store TTL). */
  const dropSpan = pendingTtlMs * 2;
  /** Chunks this writer still lists: `[seq, maxDrop]`, oldest first, at most MAX_CHUNKS. */
  const liveChunks: Array<[number, number]> = [];
  /** Closed chunks whose last entries are not written yet. */
  const unwritten: Chunk[] = [];
  let current: Chunk | undefined;
  let headDirty = false;
  /** epoch ms until which the written head record lives. */
  let headUntil = 0;
  /** epoch ms until which the registry says our entries live (0: not registered). */
  let registeredUntil = 0;
  let registryCheck = false;
  let flushing: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;

  function appendToIndex(id: string, createdAt: number, dropAt: number): void {
    if (current === undefined || current.entries.length >= CHUNK_SIZE) {
      if (current !== undefined && current.dirty) {
        unwritten.push(current);
        // a store that keeps refusing index writes: keep only what list() could show anyway
        if (unwritten.length > MAX_CHUNKS) unwritten.shift();
      }
      const seq = current === undefined ? 0 : current.seq + 1;
      current = { seq, entries: [], maxDrop: 0, dirty: true };
      liveChunks.push([seq, 0]);
      if (liveChunks.length > MAX_CHUNKS) liveChunks.shift();
      headDirty = true;
      registryCheck = seq > 0;
    }
    current.entries.push([id, createdAt, dropAt]);
    if (dropAt > current.maxDrop) {
      current.maxDrop = dropAt;
      liveChunks[liveChunks.length - 1]![1] = dropAt;
    }
    current.dirty = true;
    if (dropAt > headUntil) headDirty = true;
  }

  /** Write what appendToIndex changed. Flushes run one at a time; callers arriving meanwhile share the next one. */
  function flushIndex(): Promise<void> {
    if (queued !== undefined) return queued;
    const run = (): Promise<void> => {
      queued = undefined;
      return writeIndex();
    };
    const p = flushing.then(run, run);
    queued = p;
    flushing = p.catch(() => undefined);
    return p;
  }

  async function writeIndex(): Promise<void> {
    const now = Date.now();
    const chunks = current !== undefined && current.dirty ? [...unwritten, current] : [...unwritten];
    unwritten.length = 0;
    const writes: Promise<void>[] = [];
    for (const c of chunks) {
      c.dirty = false;
      const value = { v: 1, e: c.entries.slice() };
      writes.push(guard(() => kv.set(chunkKey(writerId, c.seq), value, c.maxDrop - now)));
    }
    const writeHead = headDirty;
    if (writeHead) {
      headDirty = false;
      while (liveChunks.length > 1 && liveChunks[0]![1] <= now) liveChunks.shift();
      const until = now + dropSpan * 2;
      const head = { v: 1, first: liveChunks[0]![0], last: liveChunks[liveChunks.length - 1]![0] };
      writes.push(guard(() => kv.set(headKey, head, until - now)).then(() => void (headUntil = Math.max(headUntil, until))));
    }
    const results = await Promise.allSettled(writes);
    if (results.some((r) => r.status === 'rejected')) {
      // Written again by the next flush.
      for (const c of chunks) if (c !== current) unwritten.push(c);
      if (current !== undefined && chunks.includes(current)) current.dirty = true;
      if (writeHead) headDirty = true;
      throw storeFailure('error');
    }
    if (registeredUntil < (current?.maxDrop ?? 0) || registryCheck) {
      registryCheck = false;
      await register();
    }
  }

  function liveWriters(raw: unknown, now: number): Array<[string, number]> {
    const parsed = registrySchema.safeParse(raw ?? []);
    if (!parsed.success) throw storeFailure('malformed');
    return parsed.data.filter(([w, until]) => until > now && WRITER_RE.test(w));
  }

  /**
   * Make sure the registry names this writer at least until its newest entry is dropped. Verified
   * by reading it back REGISTRY_SETTLE_MS after writing: a writer that read the registry before
   * our write lands its own copy within that time, and we add ourselves again.
   */
  async function register(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = Date.now();
      const need = current?.maxDrop ?? 0;
      const writers = liveWriters(await guard(() => kv.get(registryKey)), now);
      const mine = writers.find(([w]) => w === writerId);
      if (mine !== undefined && mine[1] >= need) {
        registeredUntil = mine[1];
        return;
      }
      const next = writers.filter(([w]) => w !== writerId);
      next.push([writerId, now + dropSpan * 2]);
      // keep the writers active most recently
      if (next.length > MAX_WRITERS) next.sort((x, y) => y[1] - x[1]).splice(MAX_WRITERS);
      let until = 0;
      for (const [, u] of next) if (u > until) until = u;
      await guard(() => kv.set(registryKey, next, until - now));
      await sleep(REGISTRY_SETTLE_MS);
    }
    // Still contended: the next chunk rollover checks again.
    registryCheck = true;
  }

  /** Entries of the single index record older versions wrote, so a rolling upgrade lists them too. */
  async function readLegacyIndex(now: number): Promise<IndexEntry[]> {
    const raw = await guard(() => kv.get(legacyIndexKey));
    if (raw === undefined) return [];
    const parsed = legacyIndexSchema.safeParse(raw);
    if (!parsed.success) throw storeFailure('malformed');
    return parsed.data.filter(([id, at]) => at > now && ID_RE.test(id)).map(([id, at]): IndexEntry => [id, at - dropSpan, at]);
  }

  /** Every live index entry of one writer, from its newest MAX_CHUNKS chunks. */
  async function readWriter(writer: string, now: number): Promise<IndexEntry[]> {
    const rawHead = await guard(() => kv.get(storeKey('approval-head', writer)));
    if (rawHead === undefined) return [];
    const head = headSchema.safeParse(rawHead);
    if (!head.success || head.data.last < head.data.first) throw storeFailure('malformed');
    // Chunks past `last` may exist (written before the head's next update): read until one is missing.
    const first = Math.max(head.data.first, head.data.last - MAX_CHUNKS + 1);
    const seqs: number[] = [];
    for (let s = first; s <= head.data.last + 1; s++) seqs.push(s);
    const out: IndexEntry[] = [];
    const readChunk = async (seq: number): Promise<boolean> => {
      const raw = await guard(() => kv.get(chunkKey(writer, seq)));
      if (raw === undefined) return false;
      const chunk = chunkSchema.safeParse(raw);
      if (!chunk.success) throw storeFailure('malformed');
      for (const e of chunk.data.e) if (e[2] > now && ID_RE.test(e[0])) out.push(e);
      return true;
    };
    await Promise.all(seqs.slice(0, -1).map(readChunk));
    for (let s = head.data.last + 1; await readChunk(s); s++) {
      if (s - head.data.last > MAX_CHUNKS) break;
    }
    return out;
  }

  function event(type: AuditEvent['type'], rec: StoredApproval, decision: AuditEvent['decision'], extra: Partial<AuditEvent> = {}): void {
    if (audit === undefined) return;
    const e: AuditEvent = { type, time: new Date().toISOString(), agentId: rec.summary.agentId, decision };
    if (rec.summary.userId !== undefined) e.userId = rec.summary.userId;
    if (rec.actorChain !== undefined && rec.actorChain.length > 0) e.actorChain = rec.actorChain;
    e.tool = rec.summary.tool;
    e.method = rec.summary.method;
    e.path = rec.summary.path;
    e.approvalId = rec.id;
    emitAudit(audit, { ...e, ...extra });
  }

  async function createPending(request: ApprovalRequestInput, binding: string): Promise<ApprovalCheck> {
    const now = Date.now();
    const summary: ApprovalSummary = {
      agentId: request.agentId,
      tool: request.tool,
      method: request.method.toUpperCase(),
      path: request.path,
    };
    if (request.userId !== undefined) summary.userId = request.userId;
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
    // Record first, then the binding that points to it: a failure in between leaves only an
    // unreachable record that expires by itself.
    await write(rec, now);
    await guard(() => kv.set(bindingKey(binding), rec.id, ttlFor(rec, now)));
    appendToIndex(rec.id, now, now + ttlFor(rec, now));
    await flushIndex();
    event('approval.request', rec, 'approval', { code: 'APPROVAL_REQUIRED' });
    return { status: 'pending', id: rec.id, summary: { ...summary } };
  }

  /** Consume a single-use approval; true when this caller won it. */
  async function consume(id: string, binding: string): Promise<boolean> {
    return locks.run(`id:${id}`, async () => {
      const now = Date.now();
      const fresh = await read(id);
      if (fresh === undefined || fresh.binding !== binding || effectiveStatus(fresh, now) !== 'approved') return false;
      if (fresh.reusable === true) return true;
      const nonce = randomToken(16);
      await write({ ...fresh, status: 'consumed', nonce }, now);
      const after = await read(id);
      return after !== undefined && after.status === 'consumed' && after.nonce === nonce;
    });
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
    if (r.actorChain !== undefined && (!Array.isArray(r.actorChain) || !r.actorChain.every(validName))) {
      throw invalid('actorChain must be a list of actor subjects', 'actorChain');
    }
  }

  function validateApprover(approver: unknown): string {
    if (!validName(approver)) throw invalid('approver must be a non-empty string without control characters', 'approver');
    return approver;
  }

  /** Read a record for approve/deny; unknown ids are one generic error. */
  async function readForDecision(id: string): Promise<StoredApproval> {
    if (typeof id !== 'string' || !ID_RE.test(id)) throw invalid('Unknown approval', 'id');
    const rec = await read(id);
    if (rec === undefined) throw invalid('Unknown approval', 'id');
    return rec;
  }

  return Object.freeze({
    async check(request: ApprovalRequestInput): Promise<ApprovalCheck> {
      validateRequest(request);
      const binding = await bindingOf(request);
      return locks.run(`binding:${binding}`, async () => {
        const id = await guard(() => kv.get<string>(bindingKey(binding)));
        let rec: StoredApproval | undefined;
        if (typeof id === 'string' && ID_RE.test(id)) rec = await read(id);
        // A record that does not carry this binding is not ours: never let it decide.
        if (rec !== undefined && rec.binding === binding) {
          const status = effectiveStatus(rec, Date.now());
          if (status === 'pending') return { status: 'pending', id: rec.id, summary: { ...rec.summary } };
          if (status === 'denied') return { status: 'denied', id: rec.id };
          if (status === 'approved' && (await consume(rec.id, binding))) return { status: 'approved', id: rec.id };
        }
        return createPending(request, binding);
      });
    },

    async get(id: string): Promise<ApprovalRecord | undefined> {
      if (typeof id !== 'string' || !ID_RE.test(id)) return undefined;
      const rec = await read(id);
      return rec === undefined ? undefined : toPublic(rec, Date.now());
    },

    async list(filter: { status?: Status } = {}): Promise<ApprovalRecord[]> {
      const now = Date.now();
      const writers = liveWriters(await guard(() => kv.get(registryKey)), now);
      // This instance's own entries, even while its registration is not written yet.
      if (current !== undefined && !writers.some(([w]) => w === writerId)) writers.push([writerId, Number.POSITIVE_INFINITY]);
      const [legacy, ...perWriter] = await Promise.all([readLegacyIndex(now), ...writers.map(([w]) => readWriter(w, now))]);
      perWriter.push(legacy);
      const seen = new Set<string>();
      const entries: IndexEntry[] = [];
      for (const list of perWriter) {
        for (const e of list) {
          if (seen.has(e[0])) continue;
          seen.add(e[0]);
          entries.push(e);
        }
      }
      // Stable: equal times keep registry, then creation order. Keep the most recent MAX_LIST.
      entries.sort((a, b) => a[1] - b[1]);
      if (entries.length > MAX_LIST) entries.splice(0, entries.length - MAX_LIST);
      const records = await Promise.all(entries.map(([id]) => read(id)));
      const out: ApprovalRecord[] = [];
      for (const rec of records) {
        if (rec === undefined) continue;
        const pub = toPublic(rec, now);
        if (filter.status === undefined || pub.status === filter.status) out.push(pub);
      }
      return out.sort((a, b) => a.createdAt - b.createdAt);
    },

    async approve(id: string, o: { approver: string; ttlSeconds?: number }): Promise<ApprovalRecord> {
      const approver = validateApprover(o?.approver);
      const ttlSeconds = o?.ttlSeconds;
      if (ttlSeconds !== undefined && !(typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds > 0 && ttlSeconds <= MAX_TTL_SECONDS)) {
        throw invalid(`ttlSeconds must be a number between 0 and ${MAX_TTL_SECONDS}`, 'ttlSeconds');
      }
      return locks.run(`id:${id}`, async () => {
        const rec = await readForDecision(id);
        const now = Date.now();
        const status = effectiveStatus(rec, now);
        if (status !== 'pending') throw invalid(`Approval is ${status}; only a pending approval can be approved`, 'id');
        const next: StoredApproval = {
          ...rec,
          status: 'approved',
          decidedAt: now,
          approver,
          expiresAt: now + (ttlSeconds !== undefined ? ttlSeconds * 1000 : pendingTtlMs),
        };
        if (ttlSeconds !== undefined) next.reusable = true;
        await write(next, now);
        // keep the binding alive as long as the record
        await guard(() => kv.set(bindingKey(rec.binding), rec.id, ttlFor(next, now)));
        event('approval.approve', next, 'allow', { approver });
        return toPublic(next, now);
      });
    },

    async deny(id: string, o: { approver: string }): Promise<ApprovalRecord> {
      const approver = validateApprover(o?.approver);
      return locks.run(`id:${id}`, async () => {
        const rec = await readForDecision(id);
        const now = Date.now();
        const status = effectiveStatus(rec, now);
        if (status !== 'pending' && status !== 'approved') {
          throw invalid(`Approval is ${status}; only a pending or approved approval can be denied`, 'id');
        }
        const next: StoredApproval = { ...rec, status: 'denied', decidedAt: now, approver };
        delete next.reusable;
        await write(next, now);
        await guard(() => kv.set(bindingKey(rec.binding), rec.id, ttlFor(next, now)));
        event('approval.deny', next, 'deny', { approver, code: 'POLICY_DENIED' });
        return toPublic(next, now);
      });
    },
  });
}
