/**
 * `agent-iam/postgres`: the `Store` (from `agent-iam`) contract on PostgreSQL, exact across every process that
 * shares the database. `pg` is an optional peer dependency, loaded on first use.
 *
 * @module
 */
import { z } from 'zod';
import { AgentIamError, configError, isAgentIamError, storeUnavailable } from '../errors.js';
import { randomToken } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { normalizeTtl, toJson, type Store, type Versioned } from '../stores/contract.js';

/** What a query resolves to (the part of `pg`'s `QueryResult` this store reads). */
interface PostgresQueryResult {
  rows: Array<Record<string, unknown>>;
  rowCount: number | null;
}

/**
 * The part of a `pg.Pool` the store uses. Any `pg.Pool` (from `pg` 8) fits; the type is spelled
 * out here so that the declarations of `agent-iam/postgres` do not need `@types/pg`.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * const pool: PostgresPool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const store = postgresStore({ pool });
 * ```
 */
export interface PostgresPool {
  query(config: { text: string; values?: unknown[] }): Promise<PostgresQueryResult>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  end(): Promise<void>;
}

/**
 * Options of the `pg.Pool` that {@link postgresStore} creates from a `url`: any `pg` `PoolConfig`
 * field (`ssl`, `max`, `idleTimeoutMillis`, `statement_timeout`, `application_name`, …). The
 * store's defaults are `max: 10`, `connectionTimeoutMillis: 5000`, `idleTimeoutMillis: 30000` and
 * `allowExitOnIdle: true`; `connectionString` is always the `url`.
 *
 * @example
 * ```ts
 * const poolOptions: PostgresPoolOptions = { max: 4, ssl: { rejectUnauthorized: true }, application_name: 'agent' };
 * postgresStore({ url: process.env.DATABASE_URL!, poolOptions });
 * ```
 */
export interface PostgresPoolOptions {
  /** Most connections the pool opens (default 10). */
  max?: number;
  /** How long to wait for a connection, in ms (default 5000). */
  connectionTimeoutMillis?: number;
  /** How long an idle connection is kept, in ms (default 30000). */
  idleTimeoutMillis?: number;
  /** Let the process exit while connections are idle (default true). */
  allowExitOnIdle?: boolean;
  /** TLS options, as `pg` takes them. */
  ssl?: unknown;
  /** Any other `pg` `PoolConfig` field. */
  [option: string]: unknown;
}

/** Fields shared by both ways of creating the store. */
interface PostgresStoreCommonOptions {
  /**
   * Base name of the tables (default `agent_iam_store`): the records go to `<table>` and the
   * indexes to `<table>_index`, in the connection's `search_path`. Lower-case letters, digits and
   * `_`, 1 to 41 characters, not starting with a digit; anything else is `CONFIG_INVALID`.
   */
  table?: string;
}

/**
 * Options for {@link postgresStore}: either a connection `url` (the store creates, owns and closes
 * its pool) or your own `pool` (the store never ends it).
 *
 * @example
 * ```ts
 * const a: PostgresStoreOptions = { url: 'postgresql://agent@db.internal/agent', table: 'agent_iam' };
 * const b: PostgresStoreOptions = { pool: existingPgPool };
 * ```
 */
export type PostgresStoreOptions =
  | (PostgresStoreCommonOptions & {
      /** A PostgreSQL connection string, e.g. `postgresql://user:password@host:5432/db?sslmode=verify-full`. */
      url: string;
      /** Options of the pool created for `url`. */
      poolOptions?: PostgresPoolOptions;
      pool?: never;
    })
  | (PostgresStoreCommonOptions & {
      /** A `pg.Pool` you created; {@link PostgresStore.close} leaves it open. */
      pool: PostgresPool;
      url?: never;
      poolOptions?: never;
    });

/**
 * A `Store` (from `agent-iam`) on PostgreSQL, `atomic: true`: every operation is one SQL statement, so the
 * contract holds across all processes that share the database.
 *
 * @example
 * ```ts
 * const store: PostgresStore = postgresStore({ url: process.env.DATABASE_URL! });
 * process.once('SIGTERM', () => void store.close());
 * ```
 */
export interface PostgresStore extends Store {
  readonly atomic: true;
  /** End the pool the store created from `url`; a pool you passed in stays open. */
  close(): Promise<void>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/;

const optionsSchema = z
  .strictObject({
    url: z.string().min(1, 'must be a non-empty connection string').optional(),
    pool: z
      .custom<PostgresPool>(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          typeof (v as PostgresPool).query === 'function' &&
          typeof (v as PostgresPool).on === 'function' &&
          typeof (v as PostgresPool).end === 'function',
        'must be a pg.Pool',
      )
      .optional(),
    table: z.string().regex(IDENTIFIER, 'must be 1-41 characters of a-z, 0-9 and _, not starting with a digit').optional(),
    poolOptions: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

/**
 * The database clock, in ms since the epoch. Expiry is always computed and compared on the
 * server, so replicas with skewed clocks agree on what is live.
 */
const NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** Any key in `pg_advisory_xact_lock` works; this one is "agentIAM" in ASCII. */
const SCHEMA_LOCK = '7018690069351973197';

/** A cleanup of expired rows runs on the first write, then once every this many writes. */
const CLEANUP_EVERY = 256;
/** Most expired rows one cleanup deletes from each table. */
const CLEANUP_BATCH = 1000;

/** TTLs are clamped here so that `now + ttl` stays an exact integer (and a bigint). */
const MAX_TTL = Number.MAX_SAFE_INTEGER - 4_102_444_800_000;

const noop = (): void => {};

/** Pools that already have our 'error' listener (one per pool, however many stores share it). */
const guarded = new WeakSet<object>();

function guard(pool: PostgresPool): void {
  if (guarded.has(pool)) return;
  guarded.add(pool);
  // An idle pooled connection that dies (server restart, network cut) is reported as an 'error'
  // event on the pool; without a listener Node turns it into an uncaught exception. The failure
  // itself reaches callers as a rejected query.
  pool.on('error', noop);
}

function unavailable(cause: unknown): AgentIamError {
  if (isAgentIamError(cause)) return cause;
  return storeUnavailable('The PostgreSQL store is unavailable', 'error', cause);
}

function parse<T>(text: unknown): T {
  if (typeof text === 'string') {
    try {
      return JSON.parse(text) as T;
    } catch {
      /* fall through: never echo the stored text, it may be a token */
    }
  }
  throw new AgentIamError('STORE_UNAVAILABLE', 'A stored value is not valid JSON', { reason: 'malformed' });
}

function ttlParam(ttlMs: number | undefined): number | null {
  const ttl = normalizeTtl(ttlMs);
  return ttl === undefined ? null : Math.min(ttl, MAX_TTL);
}

type PgModule = { Pool?: new (config: Record<string, unknown>) => PostgresPool; default?: { Pool?: new (config: Record<string, unknown>) => PostgresPool } };

async function loadPg(): Promise<new (config: Record<string, unknown>) => PostgresPool> {
  let mod: PgModule;
  try {
    // Only this module imports `pg`, and only when a store is first used with a url.
    mod = (await import('pg')) as unknown as PgModule;
  } catch (e) {
    throw new AgentIamError('CONFIG_INVALID', 'agent-iam/postgres needs the "pg" package (npm install pg)', { field: 'store', cause: e });
  }
  const Pool = mod.Pool ?? mod.default?.Pool;
  if (typeof Pool !== 'function') throw new AgentIamError('CONFIG_INVALID', 'agent-iam/postgres needs the "pg" package (npm install pg)', { field: 'store' });
  return Pool;
}

/**
 * A `Store` (from `agent-iam`) on PostgreSQL, exact across processes: hand it to `createKeyValueStore` (which
 * adds per-call timeouts) and to everything that takes a store, and every replica shares leases,
 * single-use OAuth states, approvals and accounts.
 *
 * Two tables are created on first use, under a transaction-level advisory lock so that replicas
 * starting together do not race (when both already exist nothing is run, so a role without
 * `CREATE` works against tables created beforehand):
 *
 * ```sql
 * CREATE TABLE agent_iam_store (key text PRIMARY KEY, value text NOT NULL, version text NOT NULL, expires_at bigint);
 * CREATE TABLE agent_iam_store_index (key text, member text, expires_at bigint, PRIMARY KEY (key, member));
 * -- plus an index on expires_at of each
 * ```
 *
 * Values are stored as JSON text; wrap the store with `createSecureStore` to encrypt them (versions,
 * lease owners and index members stay plaintext). Expiry uses the database clock; an expired row
 * is absent for every operation, and expired rows are deleted in bounded batches as writes come
 * in (on the first write, then every 256th), so abandoned OAuth states do not pile up. Every
 * statement is parameterized; the table name is validated, then quoted.
 *
 * With `url` the store lazily imports `pg` (missing: `CONFIG_INVALID`), creates a pool, and
 * {@link PostgresStore.close} ends it. With `pool` it uses yours and never ends it. Either way an
 * `'error'` listener is attached to the pool, so a connection dropped by the server fails the
 * calls (`STORE_UNAVAILABLE`) instead of crashing the process.
 *
 * @throws `CONFIG_INVALID` (at once) for invalid options: neither or both of `url` and `pool`, a
 * `table` that is not a plain lower-case identifier, or an unknown option.
 *
 * @example
 * ```ts
 * import { createKeyValueStore, createSecureStore, createEncryptor } from 'agent-iam';
 * import { postgresStore } from 'agent-iam/postgres';
 *
 * const pg = postgresStore({ url: process.env.DATABASE_URL! });
 * const store = createSecureStore(
 *   createKeyValueStore(pg, { timeoutMs: 2000 }),
 *   await createEncryptor(process.env.AGENT_IAM_ENCRYPTION_KEY!),
 * );
 * await store.setIfAbsent('agent-iam:v1:lease:job-1', 'worker-a', 30_000); // true in exactly one replica
 * // on shutdown:
 * await pg.close();
 * ```
 */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  const opts = parseOptions(optionsSchema, options);
  if (opts.url === undefined && opts.pool === undefined) throw configError('url', 'give a connection url or a pool');
  if (opts.url !== undefined && opts.pool !== undefined) throw configError('pool', 'give either url or pool, not both');
  if (opts.pool !== undefined && opts.poolOptions !== undefined) throw configError('poolOptions', 'only applies with url');
  const url = opts.url;
  const poolOptions = opts.poolOptions ?? {};
  const owned = opts.pool === undefined;
  if (opts.pool !== undefined) guard(opts.pool);

  const base = opts.table ?? 'agent_iam_store';
  const T = `"${base}"`;
  const I = `"${base}_index"`;
  const LIVE = `(expires_at IS NULL OR expires_at > ${NOW})`;

  const sql = {
    exists: `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS ok`,
    // One simple-protocol string: an implicit transaction, rolled back whole on error (an explicit
    // BEGIN would leave the pooled connection inside an aborted transaction). The xact lock is held
    // to its end, so concurrent creators run one after the other: IF NOT EXISTS alone can still
    // fail with a unique violation on pg_type.
    create:
      `SELECT pg_advisory_xact_lock(${SCHEMA_LOCK});` +
      `CREATE TABLE IF NOT EXISTS ${T} (key text PRIMARY KEY, value text NOT NULL, version text NOT NULL, expires_at bigint);` +
      `CREATE INDEX IF NOT EXISTS "${base}_expires_idx" ON ${T} (expires_at) WHERE expires_at IS NOT NULL;` +
      `CREATE TABLE IF NOT EXISTS ${I} (key text NOT NULL, member text NOT NULL, expires_at bigint, PRIMARY KEY (key, member));` +
      `CREATE INDEX IF NOT EXISTS "${base}_index_expires_idx" ON ${I} (expires_at) WHERE expires_at IS NOT NULL;`,
    get: `SELECT value FROM ${T} WHERE key = $1 AND ${LIVE}`,
    getVersioned: `SELECT value, version FROM ${T} WHERE key = $1 AND ${LIVE}`,
    set:
      `INSERT INTO ${T} AS t (key, value, version, expires_at) VALUES ($1, $2, $3, ${NOW} + $4::bigint) ` +
      `ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`,
    setIfAbsent:
      `INSERT INTO ${T} AS t (key, value, version, expires_at) VALUES ($1, $2, $3, ${NOW} + $4::bigint) ` +
      `ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at ` +
      `WHERE t.expires_at IS NOT NULL AND t.expires_at <= ${NOW} RETURNING 1`,
    compareAndSet: `UPDATE ${T} SET value = $3, version = $4, expires_at = ${NOW} + $5::bigint WHERE key = $1 AND version = $2 AND ${LIVE}`,
    deleteIfOwner: `DELETE FROM ${T} WHERE key = $1 AND value = $2 AND ${LIVE}`,
    consume: `DELETE FROM ${T} WHERE key = $1 AND ${LIVE} RETURNING value`,
    // Also removes an expired row of the key; true only when a live one was there.
    delete: `DELETE FROM ${T} WHERE key = $1 RETURNING ${LIVE} AS live`,
    indexAdd:
      `INSERT INTO ${I} (key, member, expires_at) VALUES ($1, $2, ${NOW} + $3::bigint) ` +
      `ON CONFLICT (key, member) DO UPDATE SET expires_at = excluded.expires_at`,
    // Soonest expiry first, no expiry last; ties by member in byte order (as a Redis sorted set).
    indexMembers: `SELECT member FROM ${I} WHERE key = $1 AND ${LIVE} ORDER BY expires_at ASC NULLS LAST, member COLLATE "C" ASC`,
    indexMembersLast:
      `SELECT member FROM (SELECT member, expires_at FROM ${I} WHERE key = $1 AND ${LIVE} ` +
      `ORDER BY expires_at DESC NULLS FIRST, member COLLATE "C" DESC LIMIT $2) s ORDER BY expires_at ASC NULLS LAST, member COLLATE "C" ASC`,
    indexRemove: `DELETE FROM ${I} WHERE key = $1 AND member = $2 RETURNING ${LIVE} AS live`,
    // ctid = ANY(ARRAY(...)) plans as a TID scan (IN (SELECT ...) may not); a row rewritten since
    // the batch was chosen has a new ctid and is left alone, and the outer test re-checks expiry.
    cleanup: `DELETE FROM ${T} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${T} WHERE expires_at <= ${NOW} LIMIT ${CLEANUP_BATCH})) AND expires_at <= ${NOW}`,
    cleanupIndex: `DELETE FROM ${I} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${I} WHERE expires_at <= ${NOW} LIMIT ${CLEANUP_BATCH})) AND expires_at <= ${NOW}`,
  };

  let created: PostgresPool | undefined = opts.pool;
  let ready: Promise<PostgresPool> | undefined;
  let closed = false;
  let writes = 0;
  let cleaning = false;

  async function prepare(): Promise<PostgresPool> {
    let pool = created;
    if (pool === undefined) {
      const Pool = await loadPg();
      if (closed) throw closedError();
      pool = new Pool({ max: 10, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000, allowExitOnIdle: true, ...poolOptions, connectionString: url });
      guard(pool);
      created = pool;
    }
    try {
      const { rows } = await pool.query({ text: sql.exists, values: [T, I] });
      if (rows[0]?.ok !== true) await pool.query({ text: sql.create });
    } catch (e) {
      throw unavailable(e);
    }
    return pool;
  }

  function closedError(): AgentIamError {
    return new AgentIamError('STORE_UNAVAILABLE', 'The PostgreSQL store is closed', { reason: 'error' });
  }

  function connect(): Promise<PostgresPool> {
    if (closed && owned) return Promise.reject(closedError());
    if (ready === undefined) {
      const p = prepare();
      ready = p;
      // Not cached on failure: the next call tries again (the server may be back).
      p.catch(() => {
        if (ready === p) ready = undefined;
      });
    }
    return ready;
  }

  async function query(text: string, values: unknown[]): Promise<PostgresQueryResult> {
    const pool = await connect();
    try {
      return await pool.query({ text, values });
    } catch (e) {
      throw unavailable(e);
    }
  }

  function wrote(): void {
    if (writes++ % CLEANUP_EVERY !== 0 || cleaning) return;
    cleaning = true;
    // In the background; a failure here never fails the write that triggered it.
    void (async () => {
      try {
        const pool = await connect();
        await pool.query({ text: sql.cleanup, values: [] });
        await pool.query({ text: sql.cleanupIndex, values: [] });
      } catch {
        /* next time */
      } finally {
        cleaning = false;
      }
    })();
  }

  async function write(text: string, values: unknown[]): Promise<PostgresQueryResult> {
    const result = await query(text, values);
    wrote();
    return result;
  }

  const store: PostgresStore = {
    atomic: true,
    async get<T>(key: string): Promise<T | undefined> {
      const { rows } = await query(sql.get, [key]);
      return rows.length === 0 ? undefined : parse<T>(rows[0]?.value);
    },
    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      const json = toJson(value);
      await write(sql.set, [key, json, randomToken(12), ttlParam(ttlMs)]);
    },
    async delete(key: string): Promise<boolean> {
      const { rows } = await query(sql.delete, [key]);
      return rows.some((r) => r.live === true);
    },
    async getVersioned<T>(key: string): Promise<Versioned<T> | undefined> {
      const { rows } = await query(sql.getVersioned, [key]);
      const row = rows[0];
      if (row === undefined) return undefined;
      return { value: parse<T>(row.value), version: String(row.version) };
    },
    async setIfAbsent(key: string, value: unknown, ttlMs?: number): Promise<boolean> {
      const json = toJson(value);
      const { rows } = await write(sql.setIfAbsent, [key, json, randomToken(12), ttlParam(ttlMs)]);
      return rows.length === 1;
    },
    async compareAndSet(key: string, expectedVersion: string | null, value: unknown, ttlMs?: number): Promise<boolean> {
      if (expectedVersion === null) return store.setIfAbsent(key, value, ttlMs);
      const json = toJson(value);
      const { rowCount } = await write(sql.compareAndSet, [key, expectedVersion, json, randomToken(12), ttlParam(ttlMs)]);
      return rowCount === 1;
    },
    async deleteIfOwner(key: string, owner: string): Promise<boolean> {
      const { rowCount } = await query(sql.deleteIfOwner, [key, toJson(owner)]);
      return rowCount === 1;
    },
    async consume<T>(key: string): Promise<T | undefined> {
      const { rows } = await query(sql.consume, [key]);
      return rows.length === 0 ? undefined : parse<T>(rows[0]?.value);
    },
    async indexAdd(key: string, member: string, ttlMs?: number): Promise<void> {
      await write(sql.indexAdd, [key, String(member), ttlParam(ttlMs)]);
    },
    async indexMembers(key: string, limit?: number): Promise<string[]> {
      const all = limit === undefined || Number.isNaN(limit) || limit === Number.POSITIVE_INFINITY;
      if (!all && !(limit > 0)) return [];
      const { rows } = all ? await query(sql.indexMembers, [key]) : await query(sql.indexMembersLast, [key, Math.ceil(limit)]);
      return rows.map((r) => String(r.member));
    },
    async indexRemove(key: string, member: string): Promise<boolean> {
      const { rows } = await query(sql.indexRemove, [key, String(member)]);
      return rows.some((r) => r.live === true);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (!owned) return;
      const pending = ready;
      ready = undefined;
      if (pending !== undefined) await pending.catch(noop);
      const pool = created;
      created = undefined;
      if (pool !== undefined) await pool.end().catch(noop);
    },
  };
  return store;
}
