/**
 * The framework-free core of the consent routes: connect an account, finish the OAuth callback for
 * the same user who started it, list and revoke the user's accounts.
 *
 * @module
 */
import type Keyv from 'keyv';
import { z } from 'zod';
import { emitAudit, type AuditSink } from '../audit/events.js';
import { AgentIamError, stateMismatch } from '../errors.js';
import { hasControlChars } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { createKeyValueStore, storeKey, type KeyValueStore } from '../stores/store.js';
import type { TokenManager } from '../tokens/manager-api.js';
import type { ConnectedAccount } from '../tokens/types.js';
import {
  BASE_PATH_RE,
  routeHandler,
  json,
  normalizeBasePath,
  notFound,
  redirect,
  requireUser,
  segmentsAfter,
  type RouteHandler,
  type RouteRequest,
  type RouteResponse,
  wantsJson,
} from './route-core.js';
import { isoNow, nowMs } from '../lib/clock.js';

/**
 * Options of the consent routes.
 *
 * @example
 * ```ts
 * const options: ConsentRoutesOptions = { basePath: '/oauth', successRedirect: 'https://app.example.com/settings' };
 * ```
 */
export interface ConsentRoutesOptions {
  /** Path prefix of the routes, e.g. `/oauth` (the connection's `redirectUri` must be `{origin}{basePath}/callback`). */
  basePath: string;
  /**
   * Where the browser goes after a successful callback (`https://`, loopback `http://`, or a path
   * starting with `/`); the connection id is added as the `connection` query parameter. Without it
   * the callback answers 200 with the connected account as JSON (never any token).
   */
  successRedirect?: string;
  /** Receives a `consent.complete` event with `decision: 'deny'` when a callback is refused here. */
  audit?: AuditSink;
  /**
   * Where the routes remember which user started each flow (keyed by the OAuth `state`). Use the
   * shared store (Redis, Postgres, …) when several processes serve the callback. Default: in-memory.
   */
  store?: Keyv | KeyValueStore;
  /** How long a started flow can be completed, in seconds (default 600, the token manager's default). */
  stateTtlSeconds?: number;
}

/**
 * The token manager methods the consent routes use (a `TokenManager` from `createTokenManager`).
 *
 * @example
 * ```ts
 * const manager: ConsentTokenManager = createTokenManager({ connections });
 * ```
 */
export interface ConsentTokenManager extends Pick<TokenManager, 'startAuthorization' | 'listAccounts' | 'revoke' | 'connections'> {
  /** With `expectedUserId`, the token manager itself refuses a flow started by another user (defence in depth). */
  completeAuthorization(callbackUrl: string | URL, options?: { expectedUserId?: string }): Promise<ConnectedAccount>;
}

/** Who started a flow, stored under the flow's `state` until the callback (single use). */
interface FlowBinding {
  v: 1;
  userId: string;
  connection: string;
  /** The `redirect_uri` of the authorization URL: the callback is completed against it, whatever the Host header says. */
  redirectUri: string;
  expiresAt: number;
}

const isLoopbackHttp = (u: URL): boolean => u.protocol === 'http:' && (u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname));

const successRedirectSchema = z.string().refine((v) => {
  if (v.startsWith('/')) return !v.startsWith('//') && !v.includes('\\') && !hasControlChars(v);
  try {
    const u = new URL(v);
    return (u.protocol === 'https:' || isLoopbackHttp(u)) && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}, 'must be an https URL (http only on loopback) or a path starting with /');

const optionsSchema = z.strictObject({
  basePath: z.string().regex(BASE_PATH_RE, 'must be a path such as /oauth'),
  successRedirect: successRedirectSchema.optional(),
  audit: z.custom<AuditSink>((v) => typeof v === 'function' || typeof (v as { write?: unknown })?.write === 'function', 'must be a function or have write()').optional(),
  store: z.custom<Keyv | KeyValueStore>((v) => typeof v === 'object' && v !== null, 'must be a Keyv instance or a KeyValueStore').optional(),
  stateTtlSeconds: z.number().int().min(1).max(86_400).default(600),
});

const tokensSchema = z.custom<ConsentTokenManager>(
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    ['startAuthorization', 'completeAuthorization', 'listAccounts', 'revoke'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function') &&
    Array.isArray((v as { connections?: unknown }).connections),
  'must be a token manager (createTokenManager)',
);

function bindingKey(state: string): string {
  return storeKey('consent-flow', state);
}

function isBinding(v: unknown): v is FlowBinding {
  if (typeof v !== 'object' || v === null) return false;
  const b = v as Record<string, unknown>;
  return b.v === 1 && typeof b.userId === 'string' && typeof b.connection === 'string' && typeof b.redirectUri === 'string' && typeof b.expiresAt === 'number';
}

/** Only the public fields of an account, whatever else a token manager might put on it. */
export function publicAccount(a: ConnectedAccount): ConnectedAccount {
  const out: ConnectedAccount = { connection: a.connection, status: a.status, kind: a.kind, scopes: [...a.scopes], createdAt: a.createdAt, updatedAt: a.updatedAt };
  if (a.userId !== undefined) out.userId = a.userId;
  if (a.orgId !== undefined) out.orgId = a.orgId;
  if (a.expiresAt !== undefined) out.expiresAt = a.expiresAt;
  return out;
}

/** `target` with `connection=<id>` added to its query (before any fragment). */
function withConnection(target: string, connection: string): string {
  const relative = target.startsWith('/');
  const url = new URL(target, 'https://relative.invalid');
  url.searchParams.set('connection', connection);
  return relative ? `${url.pathname}${url.search}${url.hash}` : url.href;
}

function callbackRefused(why: string, status?: 400 | 403): AgentIamError {
  return stateMismatch(`Authorization callback refused: ${why}`, status);
}

/**
 * Build the framework-free consent routes (the Express and Hono `consentRoutes` wrap this):
 *
 * - `GET {base}/connect/:connection`: 302 to the authorization URL (PKCE, single-use state) for the
 *   authenticated user, or 200 `{ authorizationUrl }` when the client sends `Accept: application/json`
 *   (a single-page app calling with its bearer token, which then navigates there itself); 401
 *   `TOKEN_MISSING` without a user; 404 for an unknown connection.
 * - `GET {base}/callback`: completes the flow only for the same authenticated user who started it
 *   (session binding against consent phishing); then 302 to `successRedirect`, or 200 JSON
 *   `{ account }`. A callback presented by another user is refused (403 `OAUTH_STATE_MISMATCH`) and
 *   the flow is discarded: its URL has been seen by someone else, so nobody may complete it. An
 *   unauthenticated callback is refused (401) and leaves the flow alone. The code is redeemed against
 *   the connection's `redirectUri` as recorded when the flow started, so the connection's redirect URI
 *   may be a page of your front end that forwards its query string to `{base}/callback` with the
 *   user's bearer token, and a proxy's Host header does not matter.
 * - `GET {base}/accounts`: `{ accounts }`, the user's connected accounts (no token material).
 * - `DELETE {base}/accounts/:connection`: revokes the account; `{ account }`, or 404.
 *
 * Options are validated here (`CONFIG_INVALID` naming the field).
 *
 * @example
 * ```ts
 * const routes = createConsentRoutes(tokens, { basePath: '/oauth' });
 * const res = await routes.handle({ method: 'GET', path: '/oauth/accounts', query: new URLSearchParams(), context });
 * ```
 */
export function createConsentRoutes(tokens: ConsentTokenManager, options: ConsentRoutesOptions): RouteHandler {
  const manager = parseOptions(tokensSchema, tokens, 'tokens');
  const o = parseOptions(optionsSchema, options, 'consentRoutes');
  const basePath = normalizeBasePath(o.basePath);
  const store = createKeyValueStore(o.store);
  const ttlMs = o.stateTtlSeconds * 1000;
  const known = (id: string): boolean => manager.connections.includes(id);

  function refused(req: RouteRequest, code: string, connection?: string): void {
    const event: Parameters<typeof emitAudit>[1] = { type: 'consent.complete', time: isoNow(), decision: 'deny', code, method: req.method, path: `${basePath}/callback` };
    if (req.context?.userId !== undefined) event.userId = req.context.userId;
    if (req.context?.requestId !== undefined) event.requestId = req.context.requestId;
    if (connection !== undefined) event.connection = connection;
    emitAudit(o.audit, event);
  }

  async function connect(req: RouteRequest, connection: string): Promise<RouteResponse> {
    const userId = requireUser(req.context);
    if (!known(connection)) throw notFound('Connection');
    const { url, state } = await manager.startAuthorization({ connection, userId });
    const redirectUri = new URL(url).searchParams.get('redirect_uri');
    if (redirectUri === null) throw new AgentIamError('CONFIG_INVALID', `connection ${connection} has no redirectUri`, { field: 'redirectUri' });
    const binding: FlowBinding = { v: 1, userId, connection, redirectUri, expiresAt: nowMs() + ttlMs };
    await store.set(bindingKey(state), binding, ttlMs);
    return wantsJson(req.accept) ? json(200, { authorizationUrl: url }) : redirect(url);
  }

  async function callback(req: RouteRequest): Promise<RouteResponse> {
    const states = req.query.getAll('state');
    const state = states.length === 1 ? (states[0] as string) : '';
    let userId: string;
    try {
      userId = requireUser(req.context);
    } catch (e) {
      refused(req, 'TOKEN_MISSING');
      throw e;
    }
    if (state === '' || state.length > 512 || hasControlChars(state)) {
      refused(req, 'OAUTH_STATE_MISMATCH');
      throw callbackRefused('no valid state');
    }
    const key = bindingKey(state);
    const binding = await store.get<unknown>(key);
    if (!isBinding(binding) || binding.expiresAt <= nowMs()) {
      refused(req, 'OAUTH_STATE_MISMATCH');
      throw callbackRefused('unknown, used or expired state');
    }
    // Single use, whoever presents it: once a callback URL (which carries a live authorization code)
    // has been presented by someone, the flow is over.
    await store.delete(key);
    if (binding.userId !== userId) {
      refused(req, 'OAUTH_STATE_MISMATCH', binding.connection);
      throw callbackRefused('the flow was started by another user; start it again', 403);
    }
    const callbackUrl = new URL(binding.redirectUri);
    callbackUrl.search = req.query.toString();
    const account = await manager.completeAuthorization(callbackUrl, { expectedUserId: userId });
    if (account.connection !== binding.connection || (account.userId !== undefined && account.userId !== userId)) {
      throw callbackRefused('the callback does not match the flow');
    }
    if (o.successRedirect !== undefined) {
      return redirect(withConnection(o.successRedirect, account.connection));
    }
    return json(200, { account: publicAccount(account) });
  }

  async function accounts(req: RouteRequest): Promise<RouteResponse> {
    const userId = requireUser(req.context);
    const list = await manager.listAccounts(userId);
    return json(200, { accounts: list.map(publicAccount) });
  }

  async function revoke(req: RouteRequest, connection: string): Promise<RouteResponse> {
    const userId = requireUser(req.context);
    if (!known(connection)) throw notFound('Connection');
    const account = await manager.revoke({ connection, userId });
    if (account === undefined) throw notFound('Account');
    return json(200, { account: publicAccount(account) });
  }

  function route(req: RouteRequest): Promise<RouteResponse> | undefined {
    const seg = segmentsAfter(req.path, basePath);
    if (seg === undefined) return undefined;
    const m = req.method;
    if (seg.length === 2 && seg[0] === 'connect' && m === 'GET') return connect(req, seg[1] as string);
    if (seg.length === 1 && seg[0] === 'callback' && m === 'GET') return callback(req);
    if (seg.length === 1 && seg[0] === 'accounts' && m === 'GET') return accounts(req);
    if (seg.length === 2 && seg[0] === 'accounts' && m === 'DELETE') return revoke(req, seg[1] as string);
    return undefined;
  }

  return routeHandler(basePath, route);
}
