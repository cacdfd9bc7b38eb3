/**
 * The verified identity of a request ({@link AgentContext}) and its propagation through async code.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** One RFC 8693 actor (`act` claim): an agent acting for the subject. */
export interface Actor {
  /** The actor's `sub`. */
  subject: string;
  /** The actor's `iss`, when the `act` claim names one. */
  issuer?: string;
  /** Any other claims of the `act` object (without the nested `act`). */
  claims: Readonly<Record<string, unknown>>;
}

/**
 * What the agent learns about its caller after verification. Never carries the raw token as an
 * enumerable field: logging or serialising a context leaks nothing.
 */
export interface AgentContext {
  /** The verified user id (the provider's `userIdClaim`); undefined only in open mode without a token. */
  readonly userId: string | undefined;
  /** The token's `sub`. */
  readonly subject: string | undefined;
  /** The token's `iss`. */
  readonly issuer: string | undefined;
  /** Granted scopes, from `scope` (space separated) or `scp` (array or string). */
  readonly scopes: readonly string[];
  /** The verified JWT payload. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The `email` claim, when present. */
  readonly email?: string;
  /** The lower-cased domain of `email`, when present. */
  readonly domain?: string;
  /** RFC 8693 delegation chain from nested `act` claims, outermost (most recent actor) first. */
  readonly actorChain: readonly Actor[];
  /** A per-request id for correlating audit events. */
  readonly requestId: string;
  /** True when this context was verified from a token. */
  readonly authenticated: boolean;
}

/**
 * Process-wide singletons, shared by the ESM and CJS builds (the dual-package hazard: a context set
 * through `require('agent-iam/express')` must be visible to `import { currentContext } from 'agent-iam'`).
 */
interface SharedState {
  storage: AsyncLocalStorage<AgentContext>;
  /** Keyed by the context's `claims`: the verified-token cache shares one claims object per token. */
  rawTokens: WeakMap<object, string>;
}
const SHARED = Symbol.for('agent-iam.context.v1');
const shared: SharedState = ((globalThis as Record<symbol, unknown>)[SHARED] as SharedState | undefined) ??
  ((globalThis as Record<symbol, unknown>)[SHARED] = {
    storage: new AsyncLocalStorage<AgentContext>(),
    rawTokens: new WeakMap<object, string>(),
  } satisfies SharedState) as SharedState;
const rawTokens = shared.rawTokens;

/**
 * @internal Attach the raw bearer token to a context without making it a property. Only the SDK's
 * own token exchange reads it back. Keyed by the context's `claims` (the verified payload of that
 * token, one frozen object per token): every context the verified-token cache builds for one token
 * shares it, so a cache hit costs a lookup instead of a new weak entry per request.
 */
export function attachRawToken(context: AgentContext, token: string): void {
  const key = context.claims;
  if (rawTokens.get(key) !== token) rawTokens.set(key, token);
}

/** @internal The raw token a context was verified from, for RFC 8693 token exchange. */
export function rawTokenOf(context: AgentContext): string | undefined {
  return rawTokens.get(context.claims);
}

/** A fresh request id (random, URL-safe). */
export function newRequestId(): string {
  return crypto.randomUUID();
}

/**
 * The context of a request that carried no token, in `open` mode.
 *
 * @example
 * ```ts
 * const ctx = anonymousContext();
 * ctx.userId; // undefined
 * ```
 */
export function anonymousContext(requestId: string = newRequestId()): AgentContext {
  return Object.freeze({
    userId: undefined,
    subject: undefined,
    issuer: undefined,
    scopes: Object.freeze([]) as readonly string[],
    claims: Object.freeze({}),
    actorChain: Object.freeze([]) as readonly Actor[],
    requestId,
    authenticated: false,
  });
}

const storage = shared.storage;

/**
 * The context of the request being handled, set by the Express/Hono adapters or {@link runWithContext}.
 *
 * @example
 * ```ts
 * app.get('/me', agentAuth(verifier), (req, res) => res.json({ user: currentContext()?.userId }));
 * ```
 */
export function currentContext(): AgentContext | undefined {
  return storage.getStore();
}

/**
 * Run `fn` with `context` as the current context (readable with {@link currentContext} and used by
 * `toolFetch`).
 *
 * @example
 * ```ts
 * await runWithContext(ctx, () => toolFetch('https://api.example.com/v1/items'));
 * ```
 */
export function runWithContext<T>(context: AgentContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** What {@link createTestContext} builds a context from. */
export interface TestContextOptions {
  /** The user id (`userIdClaim`'s value). Default `'user-1'`. */
  userId?: string;
  /** `sub`; defaults to `userId`. */
  subject?: string;
  /** `iss`. Default `'https://idp.test'`. */
  issuer?: string;
  /** Granted scopes. */
  scopes?: readonly string[];
  /** Further verified claims (merged under `sub`, `iss`, `scope`, `email`). */
  claims?: Record<string, unknown>;
  /** The `email` claim; `domain` is derived from it. */
  email?: string;
  /** RFC 8693 actors, outermost first. */
  actorChain?: readonly Actor[];
  /** A raw token for the token manager's token exchange (never an enumerable property). */
  token?: string;
  /** The request id. Default: a fresh one. */
  requestId?: string;
}

/**
 * Build an authenticated context as the verifier would, for tests (exported from
 * `agent-iam/testing`, not from the root entry). A `token` is attached the way the verifier
 * attaches the caller's JWT: reachable by the token manager's exchange, never a property.
 *
 * @example
 * ```ts
 * const ctx = createTestContext({ userId: 'alice@example.com', scopes: ['tickets:read'] });
 * await runWithContext(ctx, () => toolFetch('https://api.example.com/tickets'));
 * ```
 */
export function createTestContext(options: TestContextOptions = {}): AgentContext {
  const userId = options.userId ?? 'user-1';
  const subject = options.subject ?? userId;
  const issuer = options.issuer ?? 'https://idp.test';
  const scopes = Object.freeze([...(options.scopes ?? [])]);
  const email = options.email;
  const claims = Object.freeze({
    ...options.claims,
    sub: subject,
    iss: issuer,
    ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
    ...(email !== undefined ? { email } : {}),
  });
  const at = email?.lastIndexOf('@') ?? -1;
  const context: AgentContext = Object.freeze({
    userId,
    subject,
    issuer,
    scopes,
    claims,
    ...(email !== undefined ? { email } : {}),
    ...(email !== undefined && at > 0 ? { domain: email.slice(at + 1).toLowerCase() } : {}),
    actorChain: Object.freeze([...(options.actorChain ?? [])]),
    requestId: options.requestId ?? newRequestId(),
    authenticated: true,
  });
  if (options.token !== undefined) attachRawToken(context, options.token);
  return context;
}
