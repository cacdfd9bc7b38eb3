/**
 * `agent-iam/redis`: the `Store` (from `agent-iam`) contract on Redis, exact across every process that shares
 * the server. Works with the official `redis` package (node-redis 4 or 5) and with `ioredis`;
 * both are optional peer dependencies, and `redis` is only imported when the store is given a
 * `url` and first used.
 *
 * @module
 */
import { z } from 'zod';
import { AgentIamError, configError } from '../errors.js';
import { randomToken } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { toJson, type Store, type Versioned } from '../stores/contract.js';
import { loadedShas, scriptShas, SCRIPTS, type ScriptName } from './scripts.js';
import { adopt, closeClient, closedError, isNoScript, noop, parse, reconnectStrategy, text, ttlArg, unavailable, loadRedis, type ClientState, type Closable, type IoRedisClient, type NodeRedisClient, type RedisClient } from './connection.js';

export type { IoRedisClient, NodeRedisClient, RedisClient } from './connection.js';


/** Fields shared by both ways of creating the store. */
interface RedisStoreCommonOptions {
  /**
   * Prepended to every Redis key the store touches (default none: agent-iam's keys already start
   * with `agent-iam:v1:`). Use it to share one Redis database between several apps or
   * environments, e.g. `'staging:'`.
   */
  prefix?: string;
}

/**
 * Options for {@link redisStore}: either a connection `url` (the store creates, connects, owns
 * and closes a node-redis client) or your own `client` (node-redis or ioredis; the store never
 * closes it).
 *
 * @example
 * ```ts
 * const a: RedisStoreOptions = { url: 'rediss://default:secret@cache.internal:6380', prefix: 'prod:' };
 * const b: RedisStoreOptions = { client: existingIoRedisClient };
 * ```
 */
export type RedisStoreOptions =
  | (RedisStoreCommonOptions & {
      /** A `redis://` or `rediss://` URL (credentials and database number included, as node-redis takes them). */
      url: string;
      /**
       * Options of the node-redis client created for `url` (anything `createClient()` takes:
       * `socket.tls`, `socket.connectTimeout`, `username`, `password`, `database`, `name`, …).
       * The store's defaults are `disableOfflineQueue: true` (a command sent while the connection
       * is down fails at once instead of piling up) and a reconnect strategy with exponential
       * backoff from 50 ms to 2 s; `url` always wins over `clientOptions.url`.
       */
      clientOptions?: Record<string, unknown>;
      client?: never;
    })
  | (RedisStoreCommonOptions & {
      /**
       * A node-redis or ioredis client you created. {@link RedisStore.close} leaves it open. A
       * node-redis client that is not open yet is connected on first use (once: a client you
       * close yourself is not reopened). Its offline-queue and retry settings are yours: with
       * node-redis' default offline queue, a call made while the server is down waits (bounded by
       * `createKeyValueStore`'s `timeoutMs`) instead of failing at once.
       */
      client: RedisClient;
      url?: never;
      clientOptions?: never;
    });

/**
 * A `Store` (from `agent-iam`) on Redis, `atomic: true`: every compound operation is one Lua script, so the
 * contract holds across all processes that share the server.
 *
 * @example
 * ```ts
 * const store: RedisStore = redisStore({ url: process.env.REDIS_URL! });
 * process.once('SIGTERM', () => void store.close());
 * ```
 */
export interface RedisStore extends Store {
  readonly atomic: true;
  /** Close the client the store created from `url`; a client you passed in stays open. */
  close(): Promise<void>;
}

/** The suffix of the sorted set behind an index, so `set(k)` and `indexAdd(k)` never collide. */
const INDEX_SUFFIX = '#index';

const isClient = (v: unknown): v is RedisClient =>
  typeof v === 'object' && v !== null && (typeof (v as IoRedisClient).call === 'function' || typeof (v as NodeRedisClient).sendCommand === 'function');

const optionsSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^rediss?:\/\/\S+$/i, 'must be a redis:// or rediss:// URL')
      .optional(),
    client: z.custom<RedisClient>(isClient, 'must be a node-redis client (sendCommand) or an ioredis client (call)').optional(),
    prefix: z.string().max(256, 'must be at most 256 characters').optional(),
    clientOptions: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

/**
 * A `Store` (from `agent-iam`) on Redis, exact across processes: hand it to `createKeyValueStore` (which adds
 * per-call timeouts) and to everything that takes a store, and every replica shares leases,
 * single-use OAuth states, approvals and accounts.
 *
 * How data is kept (Redis 5 or later, or Valkey):
 * - a value is a hash at `prefix + key` with fields `v` (its JSON text) and `n` (its version: a
 *   random token, new on every write); its TTL is the key's own Redis expiry (`PEXPIRE`), so an
 *   expired value is absent for every operation and Redis frees it;
 * - an index is a sorted set at `prefix + key + '#index'`, each member scored by its expiry in ms
 *   (Redis server clock, so replicas with skewed clocks agree) or `+inf`; expired members are
 *   dropped on the next `indexAdd`, and the set itself expires with its last member. Members with
 *   the same expiry are ordered by byte value.
 *
 * `get` is one `HGET`, `getVersioned` one `HMGET`, `delete` one `DEL`; every other operation is
 * one Lua script (sent with `EVALSHA`, and with `EVAL` once after the server forgot it), so each
 * is atomic. Values are plain JSON text: wrap the store with `createSecureStore` to encrypt them
 * (versions, lease owners and index members stay plaintext). A stored value that is not JSON, or a
 * key of another Redis type, reads as `STORE_UNAVAILABLE` with `reason: 'malformed'`.
 *
 * Failures are `STORE_UNAVAILABLE` with `reason: 'error'` and the Redis or socket error code in
 * the message (`ECONNREFUSED`, `READONLY`, `ClientOfflineError`, …); the client's own error is
 * dropped, because Redis and ioredis may echo command arguments (values, tokens) in it. An
 * `'error'` listener is attached to the client (yours too), so a dropped connection fails calls
 * instead of crashing the process.
 *
 * With `url` the store lazily imports `redis` (missing: `CONFIG_INVALID` on first use), creates a
 * client with `disableOfflineQueue: true` and a backoff reconnect strategy, connects it on first
 * use, and {@link RedisStore.close} closes it. With `client` it uses yours and never closes it.
 *
 * @throws `CONFIG_INVALID` (at once) for invalid options: neither or both of `url` and `client`,
 * a URL that is not `redis://` or `rediss://`, something that is not a Redis client, or an unknown
 * option.
 *
 * @example
 * ```ts
 * import { createKeyValueStore, createSecureStore, createEncryptor, createTokenManager } from 'agent-iam';
 * import { redisStore } from 'agent-iam/redis';
 *
 * const redis = redisStore({ url: process.env.REDIS_URL! });
 * const store = createSecureStore(
 *   createKeyValueStore(redis, { timeoutMs: 1000 }),
 *   await createEncryptor(process.env.AGENT_IAM_ENCRYPTION_KEY!),
 * );
 * await store.setIfAbsent('agent-iam:v1:lease:job-1', 'worker-a', 30_000); // true in exactly one replica
 * // on shutdown:
 * await redis.close();
 * ```
 *
 * @example
 * ```ts
 * // Your own client (node-redis or ioredis), under a prefix; the store never closes it.
 * import Redis from 'ioredis';
 * const client = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: 1 });
 * const store = createKeyValueStore(redisStore({ client, prefix: 'staging:' }), { timeoutMs: 1000 });
 * ```
 */
export function redisStore(options: RedisStoreOptions): RedisStore {
  const opts = parseOptions(optionsSchema, options);
  if (opts.url === undefined && opts.client === undefined) throw configError('url', 'give a redis:// url or a client');
  if (opts.url !== undefined && opts.client !== undefined) throw configError('client', 'give either url or client, not both');
  if (opts.client !== undefined && opts.clientOptions !== undefined) throw configError('clientOptions', 'only applies with url');
  const prefix = opts.prefix ?? '';
  const owned = opts.client === undefined;
  const url = opts.url;
  const clientOptions = opts.clientOptions ?? {};

  let client: RedisClient | undefined = opts.client;
  let current: ClientState | undefined = client === undefined ? undefined : adopt(client);
  let loading: Promise<ClientState> | undefined;
  let closed = false;

  function connection(): Promise<ClientState> {
    if (closed && owned) return Promise.reject(closedError());
    if (loading === undefined) {
      const p = (async () => {
        const createClient = await loadRedis();
        if (closed) throw closedError();
        const socket = { reconnectStrategy, ...((clientOptions.socket as Record<string, unknown> | undefined) ?? {}) };
        const c = createClient({ disableOfflineQueue: true, ...clientOptions, socket, url });
        client = c;
        current = adopt(c);
        return current;
      })();
      loading = p;
      // Not cached on failure: the next call tries again.
      p.catch(() => {
        if (loading === p) loading = undefined;
      });
    }
    return loading;
  }

  async function send(args: string[]): Promise<unknown> {
    if (closed && owned) throw closedError();
    const state = current ?? (await connection());
    try {
      return await state.send(args);
    } catch (e) {
      throw unavailable(e);
    }
  }

  async function script(name: ScriptName, key: string, args: string[]): Promise<unknown> {
    if (closed && owned) throw closedError();
    const state = current ?? (await connection());
    try {
      const sha = (loadedShas() ?? (await scriptShas()))[name];
      return await state.send(['EVALSHA', sha, '1', key, ...args]);
    } catch (e) {
      if (!isNoScript(e)) throw unavailable(e);
    }
    // The server does not know the script (restarted, flushed, failed over): EVAL loads it.
    try {
      return await state.send(['EVAL', SCRIPTS[name], '1', key, ...args]);
    } catch (e) {
      throw unavailable(e);
    }
  }

  const k = (key: string): string => prefix + key;
  const ik = (key: string): string => prefix + key + INDEX_SUFFIX;
  const write = async (key: string, value: unknown, ttlMs: number | undefined, mode: 'set' | 'nx' | 'cas', expected = ''): Promise<boolean> => {
    const json = toJson(value);
    return (await script('write', k(key), [json, randomToken(12), ttlArg(ttlMs), mode, expected])) === 1;
  };

  const store: RedisStore = {
    atomic: true,
    async get<T>(key: string): Promise<T | undefined> {
      const v = text(await send(['HGET', k(key), 'v']));
      return v === undefined ? undefined : parse<T>(v);
    },
    async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
      await write(key, value, ttlMs, 'set');
    },
    async delete(key: string): Promise<boolean> {
      return Number(await send(['DEL', k(key)])) > 0;
    },
    async getVersioned<T>(key: string): Promise<Versioned<T> | undefined> {
      const reply = await send(['HMGET', k(key), 'v', 'n']);
      const [v, n] = Array.isArray(reply) ? reply.map(text) : [];
      if (v === undefined) return undefined;
      if (n === undefined) throw new AgentIamError('STORE_UNAVAILABLE', 'A stored value has no version', { reason: 'malformed' });
      return { value: parse<T>(v), version: n };
    },
    setIfAbsent: (key, value, ttlMs) => write(key, value, ttlMs, 'nx'),
    compareAndSet: (key, expectedVersion, value, ttlMs) =>
      expectedVersion === null ? write(key, value, ttlMs, 'nx') : write(key, value, ttlMs, 'cas', String(expectedVersion)),
    async deleteIfOwner(key: string, owner: string): Promise<boolean> {
      return (await script('deleteIfOwner', k(key), [toJson(owner)])) === 1;
    },
    async consume<T>(key: string): Promise<T | undefined> {
      const v = text(await script('consume', k(key), []));
      return v === undefined ? undefined : parse<T>(v);
    },
    async indexAdd(key: string, member: string, ttlMs?: number): Promise<void> {
      await script('indexAdd', ik(key), [String(member), ttlArg(ttlMs)]);
    },
    async indexMembers(key: string, limit?: number): Promise<string[]> {
      const all = limit === undefined || Number.isNaN(limit) || limit === Number.POSITIVE_INFINITY;
      if (!all && !(limit > 0)) return [];
      const reply = await script('indexMembers', ik(key), [all ? '' : String(Math.ceil(limit))]);
      const members = Array.isArray(reply) ? reply.map((m) => text(m) ?? '') : [];
      return all ? members : members.reverse();
    },
    async indexRemove(key: string, member: string): Promise<boolean> {
      return (await script('indexRemove', ik(key), [String(member)])) === 1;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (!owned) return;
      const pending = loading;
      if (pending !== undefined) await pending.catch(noop);
      const c = client;
      client = undefined;
      current = undefined;
      if (c !== undefined) await closeClient(c as Closable);
    },
  };
  return store;
}
