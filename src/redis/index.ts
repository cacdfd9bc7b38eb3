/**
 * `agent-iam/redis`: the `Store` (from `agent-iam`) contract on Redis, exact across every process that shares
 * the server. Works with the official `redis` package (node-redis 4 or 5) and with `ioredis`;
 * both are optional peer dependencies, and `redis` is only imported when the store is given a
 * `url` and first used.
 *
 * @module
 */
import { z } from 'zod';
import { AgentIamError, configError, isAgentIamError } from '../errors.js';
import { randomToken, toHex } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { normalizeTtl, toJson, type Store, type Versioned } from '../stores/store.js';

/**
 * The part of a node-redis client (`createClient()` from `redis` 4 or 5) the store uses. Any such
 * client fits; the type is spelled out so that the declarations of `agent-iam/redis` need neither
 * package. Cluster clients (`createCluster`) are not supported: use a node-redis client of one
 * primary, or an ioredis `Cluster`.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client: NodeRedisClient = createClient({ url: 'redis://127.0.0.1:6379' });
 * const store = redisStore({ client });
 * ```
 */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
  connect?(): Promise<unknown>;
  readonly isOpen?: boolean;
  readonly isReady?: boolean;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
}

/**
 * The part of an ioredis client (`new Redis()` or `new Cluster()` from `ioredis` 5) the store
 * uses. Every script touches a single key, so an ioredis `Cluster` routes them correctly.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * const client: IoRedisClient = new Redis('redis://127.0.0.1:6379');
 * const store = redisStore({ client });
 * ```
 */
export interface IoRedisClient {
  call(command: string, ...args: string[]): Promise<unknown>;
  connect?(): Promise<unknown>;
  readonly status?: string;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
}

/**
 * A Redis client {@link redisStore} can use: node-redis (it has `sendCommand(args)`) or ioredis
 * (it has `call(command, ...args)`). Which one is detected at construction.
 *
 * @example
 * ```ts
 * const client: RedisClient = process.env.USE_IOREDIS ? new Redis(url) : createClient({ url });
 * ```
 */
export type RedisClient = NodeRedisClient | IoRedisClient;

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

// ---------------------------------------------------------------------------------------------
// Lua scripts. Each touches exactly one key (KEYS[1]), so they also run on a cluster.
// A value is a HASH { v: JSON text, n: version }; an index is a ZSET member -> expiry (ms since
// the epoch, server clock) or +inf. Expiry of a value is Redis' own key expiry (PEXPIRE).
// ---------------------------------------------------------------------------------------------

/** The server clock in ms. replicate_commands: Redis < 5 refuses a write after TIME otherwise. */
const NOW = `if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%.0f', now)
`;

/** The index key expires with its last member (or never, when a member never expires). */
const REFRESH_INDEX_EXPIRY = `local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] ~= nil then
  if top[2] == 'inf' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], top[2]) end
end
`;

const SCRIPTS = {
  // ARGV: json, version, ttl ms ('' = none), mode ('set' | 'nx' | 'cas'), expected version
  write: `local k = KEYS[1]
if ARGV[4] == 'nx' then
  if redis.call('EXISTS', k) == 1 then return 0 end
elseif ARGV[4] == 'cas' then
  if redis.call('HGET', k, 'n') ~= ARGV[5] then return 0 end
end
redis.call('HSET', k, 'v', ARGV[1], 'n', ARGV[2])
if ARGV[3] == '' then redis.call('PERSIST', k) else redis.call('PEXPIRE', k, ARGV[3]) end
return 1`,
  // ARGV: owner JSON
  deleteIfOwner: `if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  consume: `local v = redis.call('HGET', KEYS[1], 'v')
if v then redis.call('DEL', KEYS[1]) end
return v`,
  // ARGV: member, ttl ms ('' = none)
  indexAdd: `${NOW}redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nows)
local score = '+inf'
if ARGV[2] ~= '' then score = string.format('%.0f', now + tonumber(ARGV[2])) end
redis.call('ZADD', KEYS[1], score, ARGV[1])
${REFRESH_INDEX_EXPIRY}return 1`,
  // ARGV: limit ('' = all). With a limit: the last ones, latest first (reversed by the caller).
  indexMembers: `${NOW}if ARGV[1] == '' then return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. nows, '+inf') end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. nows, 'LIMIT', '0', ARGV[1])`,
  // ARGV: member. 1 when it was there and live.
  indexRemove: `${NOW}local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
${REFRESH_INDEX_EXPIRY}if s == 'inf' or tonumber(s) > now then return 1 end
return 0`,
} as const;

type ScriptName = keyof typeof SCRIPTS;

let shas: Promise<Record<ScriptName, string>> | undefined;
let shasReady: Record<ScriptName, string> | undefined;

/** SHA-1 of every script (WebCrypto), for EVALSHA; computed once per process. */
function scriptShas(): Promise<Record<ScriptName, string>> {
  shas ??= (async () => {
    const out = {} as Record<ScriptName, string>;
    const enc = new TextEncoder();
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      out[name] = toHex(new Uint8Array(await crypto.subtle.digest('SHA-1', enc.encode(SCRIPTS[name]))));
    }
    shasReady = out;
    return out;
  })();
  return shas;
}

// ---------------------------------------------------------------------------------------------
// Errors. Redis echoes arguments in some error replies ("unknown command 'X', with args beginning
// with: ...") and ioredis attaches the command's arguments to its errors: either may hold a token.
// So a client error is never passed on; only a short code taken from it is.
// ---------------------------------------------------------------------------------------------

function errorCode(e: unknown): string {
  if (typeof e !== 'object' || e === null) return 'unknown';
  const { code, name, message } = e as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,31}$/.test(code)) return code; // ECONNREFUSED, …
  const word = typeof message === 'string' ? /^([A-Z][A-Z0-9_]{1,31})(?:\s|$)/.exec(message)?.[1] : undefined;
  if (word !== undefined) return word; // Redis reply errors: ERR, NOPERM, READONLY, OOM, …
  if (typeof name === 'string' && /^[A-Za-z]{1,64}$/.test(name) && name !== 'Error') return name; // ClientOfflineError, …
  return 'unknown';
}

function unavailable(e: unknown): AgentIamError {
  if (isAgentIamError(e)) return e;
  const code = errorCode(e);
  if (code === 'WRONGTYPE' || (typeof (e as Error)?.message === 'string' && /\bWRONGTYPE\b/.test((e as Error).message))) {
    return new AgentIamError('STORE_UNAVAILABLE', 'A Redis key holds a different type of value than agent-iam writes', { reason: 'malformed' });
  }
  return new AgentIamError('STORE_UNAVAILABLE', `The Redis store is unavailable (${code})`, { reason: 'error' });
}

function closedError(): AgentIamError {
  return new AgentIamError('STORE_UNAVAILABLE', 'The Redis store is closed', { reason: 'error' });
}

function isNoScript(e: unknown): boolean {
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message.startsWith('NOSCRIPT');
}

const decoder = new TextDecoder();

/** A bulk-string reply as a string (node-redis may be configured to return Buffers). */
function text(reply: unknown): string | undefined {
  if (reply === null || reply === undefined) return undefined;
  if (typeof reply === 'string') return reply;
  if (reply instanceof Uint8Array) return decoder.decode(reply);
  return String(reply);
}

function parse<T>(json: string | undefined): T {
  if (json !== undefined) {
    try {
      return JSON.parse(json) as T;
    } catch {
      /* fall through: never echo the stored text, it may be a token */
    }
  }
  throw new AgentIamError('STORE_UNAVAILABLE', 'A stored value is not valid JSON', { reason: 'malformed' });
}

function ttlArg(ttlMs: number | undefined): string {
  const ttl = normalizeTtl(ttlMs);
  return ttl === undefined ? '' : String(ttl);
}

// ---------------------------------------------------------------------------------------------
// Connections: one `send(args)` for both clients.
// ---------------------------------------------------------------------------------------------

type Send = (args: string[]) => Promise<unknown>;

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(noop);
  return { promise, resolve, reject };
}

/** Per client (shared by every store over it): our listeners' view of the connection. */
interface ClientState {
  send: Send;
  /** 'error' events seen (a listener is always attached, so an 'error' never crashes the process). */
  errors: number;
}

const noop = (): void => {};
const states = new WeakMap<object, ClientState>();

/**
 * Wrap a client once: attach 'error' / 'ready' / 'end' listeners and build its `send`. Calls made
 * while the first connection is being made wait for it (or for its first error); once an error has
 * been seen and until the client is ready again, calls go straight to the client, which fails them
 * at once (node-redis with `disableOfflineQueue`) or queues them (the client's own settings).
 */
function adopt(client: RedisClient): ClientState {
  const existing = states.get(client);
  if (existing !== undefined) return existing;
  const io = typeof (client as IoRedisClient).call === 'function';
  let errored = false;
  // A client that is already open (or connecting) was connected by you: never (re)connect it.
  let started = io ? (client as IoRedisClient).status !== 'wait' : (client as NodeRedisClient).isOpen !== false;
  let waiter: Deferred | undefined;
  const settle = (e?: unknown): void => {
    const w = waiter;
    waiter = undefined;
    if (w !== undefined) (e === undefined ? w.resolve() : w.reject(e));
  };
  const state: ClientState = { errors: 0, send: undefined as unknown as Send };
  if (typeof client.on === 'function') {
    client.on('error', (e: unknown) => {
      state.errors += 1;
      errored = true;
      settle(e ?? new Error('error'));
    });
    client.on('ready', () => {
      errored = false;
      settle();
    });
    client.on('end', () => settle(closedError()));
  }
  const whenReady = (): Promise<void> => (waiter ??= deferred()).promise;

  if (io) {
    const c = client as IoRedisClient;
    // 'wait': lazyConnect and never connected; 'connecting' / 'connect': first connection under way.
    const pending = (): boolean => c.status === 'wait' || c.status === 'connecting' || c.status === 'connect';
    state.send = async (args) => {
      if (pending() && !errored) {
        if (c.status === 'wait' && !started && typeof c.connect === 'function') {
          started = true;
          c.connect().catch(noop);
        }
        if (typeof c.on === 'function') await whenReady();
      }
      return c.call(args[0] as string, ...args.slice(1));
    };
  } else {
    const c = client as NodeRedisClient;
    state.send = async (args) => {
      if (c.isReady === false) {
        if (c.isOpen === false && !started && typeof c.connect === 'function') {
          // Connected once; a client closed later (by you, or by close()) is never reopened.
          started = true;
          errored = false;
          c.connect().catch(noop);
        }
        if (c.isOpen !== false && !errored && typeof c.on === 'function') await whenReady();
      }
      return c.sendCommand(args);
    };
  }
  states.set(client, state);
  return state;
}

type CreateClient = (options: Record<string, unknown>) => NodeRedisClient;
type RedisModule = { createClient?: CreateClient; default?: { createClient?: CreateClient } };

const MISSING = 'agent-iam/redis needs the "redis" package (npm install redis) to connect from a url; or pass your own node-redis or ioredis client';

async function loadRedis(): Promise<CreateClient> {
  let createClient: CreateClient | undefined;
  try {
    // Only this module imports `redis`, and only when a store made from a url is first used.
    const mod = (await import('redis')) as unknown as RedisModule;
    createClient = mod.createClient ?? mod.default?.createClient;
  } catch (e) {
    throw new AgentIamError('CONFIG_INVALID', MISSING, { field: 'store', cause: e });
  }
  if (typeof createClient !== 'function') throw new AgentIamError('CONFIG_INVALID', MISSING, { field: 'store' });
  return createClient;
}

/** 50 ms, 100 ms, … up to 2 s between reconnect attempts, with jitter so replicas spread out. */
function reconnectStrategy(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 10), 2000) + Math.floor(Math.random() * 50);
}

type Closable = {
  isOpen?: boolean;
  isReady?: boolean;
  close?(): Promise<unknown>;
  quit?(): Promise<unknown>;
  destroy?(): unknown;
  disconnect?(): unknown;
};

async function closeClient(client: Closable): Promise<void> {
  if (client.isOpen === false) return;
  const force = (): void => {
    try {
      void (client.destroy ?? client.disconnect)?.call(client);
    } catch {
      /* already closed */
    }
  };
  if (client.isReady !== true) return force();
  try {
    const graceful = client.close ?? client.quit; // close(): node-redis 5; quit(): node-redis 4
    if (graceful !== undefined) await graceful.call(client);
    else force();
  } catch {
    force();
  }
}

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
      const sha = (shasReady ?? (await scriptShas()))[name];
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
