/**
 * The Redis store's connection: one state per client (node-redis or ioredis), the loading of the
 * optional `redis` package, reconnects, closing, and errors that never carry a command's arguments.
 *
 * @module
 */
import { AgentIamError, isAgentIamError, storeUnavailable } from '../errors.js';
import { normalizeTtl } from '../stores/contract.js';

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

// ---------------------------------------------------------------------------------------------
// Errors. Redis echoes arguments in some error replies ("unknown command 'X', with args beginning
// with: ...") and ioredis attaches the command's arguments to its errors: either may hold a token.
// So a client error is never passed on; only a short code taken from it is.
// ---------------------------------------------------------------------------------------------

export function errorCode(e: unknown): string {
  if (typeof e !== 'object' || e === null) return 'unknown';
  const { code, name, message } = e as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,31}$/.test(code)) return code; // ECONNREFUSED, …
  const word = typeof message === 'string' ? /^([A-Z][A-Z0-9_]{1,31})(?:\s|$)/.exec(message)?.[1] : undefined;
  if (word !== undefined) return word; // Redis reply errors: ERR, NOPERM, READONLY, OOM, …
  if (typeof name === 'string' && /^[A-Za-z]{1,64}$/.test(name) && name !== 'Error') return name; // ClientOfflineError, …
  return 'unknown';
}

export function unavailable(e: unknown): AgentIamError {
  if (isAgentIamError(e)) return e;
  const code = errorCode(e);
  if (code === 'WRONGTYPE' || (typeof (e as Error)?.message === 'string' && /\bWRONGTYPE\b/.test((e as Error).message))) {
    return storeUnavailable('A Redis key holds a different type of value than agent-iam writes', 'malformed');
  }
  return storeUnavailable(`The Redis store is unavailable (${code})`, 'error');
}

export function closedError(): AgentIamError {
  return new AgentIamError('STORE_UNAVAILABLE', 'The Redis store is closed', { reason: 'error' });
}

export function isNoScript(e: unknown): boolean {
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message.startsWith('NOSCRIPT');
}

export const decoder = new TextDecoder();

/** A bulk-string reply as a string (node-redis may be configured to return Buffers). */
export function text(reply: unknown): string | undefined {
  if (reply === null || reply === undefined) return undefined;
  if (typeof reply === 'string') return reply;
  if (reply instanceof Uint8Array) return decoder.decode(reply);
  return String(reply);
}

export function parse<T>(json: string | undefined): T {
  if (json !== undefined) {
    try {
      return JSON.parse(json) as T;
    } catch {
      /* fall through: never echo the stored text, it may be a token */
    }
  }
  throw new AgentIamError('STORE_UNAVAILABLE', 'A stored value is not valid JSON', { reason: 'malformed' });
}

export function ttlArg(ttlMs: number | undefined): string {
  const ttl = normalizeTtl(ttlMs);
  return ttl === undefined ? '' : String(ttl);
}

// ---------------------------------------------------------------------------------------------
// Connections: one `send(args)` for both clients.
// ---------------------------------------------------------------------------------------------

export type Send = (args: string[]) => Promise<unknown>;

export interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

export function deferred(): Deferred {
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
export interface ClientState {
  send: Send;
  /** 'error' events seen (a listener is always attached, so an 'error' never crashes the process). */
  errors: number;
}

export const noop = (): void => {};
export const states = new WeakMap<object, ClientState>();

/**
 * Wrap a client once: attach 'error' / 'ready' / 'end' listeners and build its `send`. Calls made
 * while the first connection is being made wait for it (or for its first error); once an error has
 * been seen and until the client is ready again, calls go straight to the client, which fails them
 * at once (node-redis with `disableOfflineQueue`) or queues them (the client's own settings).
 */
export function adopt(client: RedisClient): ClientState {
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

export type CreateClient = (options: Record<string, unknown>) => NodeRedisClient;
export type RedisModule = { createClient?: CreateClient; default?: { createClient?: CreateClient } };

export const MISSING = 'agent-iam/redis needs the "redis" package (npm install redis) to connect from a url; or pass your own node-redis or ioredis client';

export async function loadRedis(): Promise<CreateClient> {
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
export function reconnectStrategy(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 10), 2000) + Math.floor(Math.random() * 50);
}

export type Closable = {
  isOpen?: boolean;
  isReady?: boolean;
  close?(): Promise<unknown>;
  quit?(): Promise<unknown>;
  destroy?(): unknown;
  disconnect?(): unknown;
};

export async function closeClient(client: Closable): Promise<void> {
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
