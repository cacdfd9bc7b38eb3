/**
 * Human-facing pages: the approvals inbox and connected accounts, server-rendered HTML with plain
 * forms (no script), served by a framework-free {@link RouteHandler} that Express, Hono and any
 * `fetch` runtime mount like the JSON routes.
 *
 * @module
 */
import { isoNow } from '../lib/clock.js';
import type Keyv from 'keyv';
import { z } from 'zod';
import { emitAudit, type AuditSink } from '../audit/events.js';
import type { AgentContext } from '../context.js';
import { AgentIamError, isAgentIamError, requestInvalid } from '../errors.js';
import { hasControlChars } from '../lib/encoding.js';
import { parseOptions } from '../lib/options.js';
import { secretReader, secretSchema, type SecretSource } from '../lib/secret.js';
import { isLoopbackHost, requireSecureUrl } from '../lib/secure-url.js';
import type { ApprovalRecord, Approvals } from '../policy/approvals.js';
import type { Approver } from '../policy/approvers.js';
import { createKeyValueStore, type KeyValueStore } from '../stores/store.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../tokens/http.js';
import type { ConnectedAccount } from '../tokens/types.js';
import { createConsentRoutes, type ConsentTokenManager } from '../http/consent-routes.js';
import { BASE_PATH_RE, normalizeBasePath, routeHandler, segmentsAfter, type RouteHandler, type RouteRequest, type RouteResponse } from '../http/route-core.js';
import { attr, page, securityHeaders, STYLESHEET, text, time, csrfField, type Layout } from './html.js';
import { createSessions, readCookie, type PageUser } from './session.js';
import { createSignIn } from './sign-in.js';

export type { PageUser } from './session.js';

/** What the author's own session hook sees of a request. */
export interface PageRequest {
  method: string;
  path: string;
  /** A request header by lower-case name (e.g. `cookie`). */
  header(name: string): string | undefined;
}

/** The approvals methods the pages use (an `Approvals` from `createApprovals`). */
export type PagesApprovals = Pick<Approvals, 'list' | 'get' | 'approve' | 'deny' | 'mayDecide'>;

/** The token manager methods the pages use (a `TokenManager` from `createTokenManager`). */
export interface PagesTokenManager extends ConsentTokenManager {
  disconnect(options: { connection: string; userId: string }): Promise<ConnectedAccount | undefined>;
}

/**
 * Options of `createPages`. Give `signIn` (the pages sign people in with your identity
 * provider) or `authenticate` (your app's own session decides who is signed in).
 *
 * @example
 * ```ts
 * const options: PagesOptions = {
 *   publicOrigin: 'https://agent.example.com', approvals, tokens, secret: { env: 'PAGES_SECRET' },
 *   signIn: { issuer: 'https://idp.example.com', clientId: 'agent-pages', clientSecret: { env: 'PAGES_CLIENT_SECRET' } },
 * };
 * ```
 */
export interface PagesOptions {
  /**
   * The origin people reach the pages at (`https://agent.example.com`; plain `http://` only for
   * 127.0.0.1 / localhost development, where cookies then go without `Secure`). Forms are accepted
   * only with this `Origin`, and redirect URIs are built from it.
   */
  publicOrigin: string;
  /** Path prefix of the pages (default `/agent-iam`). */
  basePath?: string;
  /** The approvals inbox, when given. */
  approvals?: PagesApprovals;
  /**
   * The connected accounts page, when given. Each connection's `redirectUri` must be
   * `{publicOrigin}{basePath}/accounts/callback`.
   */
  tokens?: PagesTokenManager;
  /**
   * At least 32 characters of random secret (a value, `{ env }` or a loader): encrypts the session
   * cookie and signs anti-CSRF tokens. Changing it signs everyone out.
   */
  secret: SecretSource;
  /**
   * Sign-in with the identity provider (OpenID Connect, authorization code + PKCE). Register the
   * client with the redirect URI `{publicOrigin}{basePath}/sign-in/callback`.
   */
  signIn?: {
    issuer: string;
    clientId: string;
    /** Absent: a public client (PKCE only). */
    clientSecret?: SecretSource;
    /** Default `['openid', 'email', 'profile']`; add what your provider needs for groups. */
    scopes?: string[];
    /** The claim that is the user id; use the one your verifier uses (default `sub`). */
    userIdClaim?: string;
    /** The claim holding groups, for approver rules (default `groups`). */
    groupsClaim?: string;
  };
  /**
   * Your app's own session instead of `signIn`: return the signed-in person, or undefined. The
   * pages then keep no session of their own (sign-out is yours) and bind anti-CSRF tokens to a
   * cookie of their own.
   */
  authenticate?: (request: PageRequest) => PageUser | undefined | Promise<PageUser | undefined>;
  /**
   * A scope the signed-in person must hold to see the inbox. Without it, the inbox shows only
   * approvals whose policy rule names its approvers (`approvedBy`), to those approvers.
   */
  adminScope?: string;
  /** Where sessions and sign-in state live (default: in memory; share it between replicas). */
  store?: Keyv | KeyValueStore;
  /** Session lifetime in seconds (default 28800 = 8 h); a new sign-in is needed after it. */
  sessionTtlSeconds?: number;
  /** Idle time in seconds after which a session ends (default 3600). */
  sessionIdleSeconds?: number;
  /** Receives `session.sign_in` / `session.sign_out` events. */
  audit?: AuditSink;
  /** `fetch` for the identity provider (default: global fetch). */
  fetch?: typeof fetch;
  /** Timeout of each request to the identity provider in ms (default 10000). */
  timeoutMs?: number;
}

const secretValue = z.string().min(32, 'must be at least 32 characters');
const optionsSchema = z
  .strictObject({
    publicOrigin: z.string(),
    basePath: z.string().regex(BASE_PATH_RE, 'must be a path such as /agent-iam').default('/agent-iam'),
    approvals: z.custom<PagesApprovals>((v) => typeof v === 'object' && v !== null && ['list', 'get', 'approve', 'deny', 'mayDecide'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'), 'must be an approvals service (createApprovals)').optional(),
    tokens: z.custom<PagesTokenManager>((v) => typeof v === 'object' && v !== null && ['startAuthorization', 'completeAuthorization', 'listAccounts', 'revoke', 'disconnect'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'), 'must be a token manager (createTokenManager)').optional(),
    secret: secretSchema(secretValue),
    signIn: z
      .strictObject({
        issuer: z.string(),
        clientId: z.string().min(1).max(1024),
        clientSecret: secretSchema(z.string().min(1).max(4096)).optional(),
        scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).min(1).optional(),
        userIdClaim: z.string().min(1).max(256).default('sub'),
        groupsClaim: z.string().min(1).max(256).default('groups'),
      })
      .optional(),
    authenticate: z.custom<NonNullable<PagesOptions['authenticate']>>((v) => typeof v === 'function', 'must be a function').optional(),
    adminScope: z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be an RFC 6749 scope token').optional(),
    store: z.custom<Keyv | KeyValueStore>((v) => typeof v === 'object' && v !== null, 'must be a Keyv instance or a KeyValueStore').optional(),
    sessionTtlSeconds: z.number().int().min(60).max(7 * 86_400).default(28_800),
    sessionIdleSeconds: z.number().int().min(60).max(7 * 86_400).default(3600),
    audit: z.custom<AuditSink>((v) => typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'), 'must be a function or an object with write()').optional(),
    fetch: z.custom<typeof fetch>((v) => typeof v === 'function', 'must be a function').optional(),
    timeoutMs: z.number().int().min(1).max(120_000).default(10_000),
  })
  .superRefine((o, ctx) => {
    if ((o.signIn === undefined) === (o.authenticate === undefined)) ctx.addIssue({ code: 'custom', path: ['signIn'], message: 'give either signIn or authenticate' });
    if (o.approvals === undefined && o.tokens === undefined) ctx.addIssue({ code: 'custom', path: ['approvals'], message: 'give approvals, tokens or both' });
  });

const TTL_CHOICES: Array<[string, string]> = [
  ['', 'once (single use)'],
  ['300', 'for 5 minutes'],
  ['3600', 'for 1 hour'],
  ['28800', 'for 8 hours'],
];
const NOTICES: Record<string, string> = {
  approved: 'Approved. The waiting request can go through.',
  partial: 'Your approval is recorded. The rule needs more approvers.',
  denied: 'Denied.',
  connected: 'Account connected.',
  disconnected: 'Account disconnected and its tokens revoked at the provider.',
};
const ID_RE = /^apr_[A-Za-z0-9_-]{1,64}$/;

interface Viewer {
  user: PageUser;
  /** What anti-CSRF tokens are bound to: the session id, or the pages' own CSRF cookie. */
  binding: string;
  /** Signed in by the pages (they offer sign-out). */
  session?: string;
  /** A cookie to set with the answer (the CSRF cookie, first time). */
  setCookie?: string;
}

/**
 * The approvals inbox and connected accounts pages, as a framework-free {@link RouteHandler}
 * (mount it with `pages()` from `agent-iam/express` or `agent-iam/hono`, or `handleWebRequest`):
 *
 * - `GET {base}/approvals`: pending approvals the signed-in person may decide (agent, user acted
 *   for, tool, method, host, path, the author's summary), then recently decided ones, read-only.
 * - `GET {base}/approvals/:id`, `POST …/approve` (once, or for a TTL), `POST …/deny` (a reason).
 *   An approval the person may not decide answers 404, whether viewed or posted.
 * - `GET {base}/accounts`: each connection with status, scopes, expiry; `POST
 *   {base}/accounts/:connection/connect` (the consent flow), `POST …/disconnect` (RFC 7009
 *   revocation at the provider where it has an endpoint, then the account is deleted),
 *   `GET {base}/accounts/callback`.
 * - `GET {base}/sign-in`, `GET {base}/sign-in/callback`, `POST {base}/sign-out` with `signIn`.
 *
 * Every page has a strict Content-Security-Policy (no script, `frame-ancestors 'none'`),
 * `Referrer-Policy`, `X-Content-Type-Options`; every POST needs the anti-CSRF token and the
 * `publicOrigin` as `Origin`; every value shown is escaped, with invisible and bidi characters
 * shown as `U+XXXX`. The request's query, body and credentials are never shown.
 *
 * @example
 * ```ts
 * import { pages } from 'agent-iam/express';
 * app.use(pages({ publicOrigin: 'https://agent.example.com', approvals, tokens, secret: { env: 'PAGES_SECRET' },
 *   signIn: { issuer: 'https://idp.example.com', clientId: 'agent-pages' } }));
 * ```
 */
export function createPages(options: PagesOptions): RouteHandler {
  const o = parseOptions(optionsSchema, options, 'pages');
  const origin = requireSecureUrl(o.publicOrigin, 'pages.publicOrigin', 'CONFIG_INVALID');
  if (origin.href !== `${origin.origin}/`) throw new AgentIamError('CONFIG_INVALID', 'Invalid option pages.publicOrigin: give an origin only (scheme, host, port)', { field: 'pages.publicOrigin' });
  const publicOrigin = origin.origin;
  const secure = origin.protocol === 'https:';
  if (!secure && !isLoopbackHost(origin.hostname)) throw new AgentIamError('CONFIG_INVALID', 'Invalid option pages.publicOrigin: http only on loopback', { field: 'pages.publicOrigin' });
  const base = normalizeBasePath(o.basePath);
  const store = createKeyValueStore(o.store);
  const secret = secretReader(o.secret, 'pages: secret', (v) => v.length >= 32);
  const sessions = createSessions({ secret, store, secure, ttlMs: o.sessionTtlSeconds * 1000, idleMs: o.sessionIdleSeconds * 1000 });
  const http = { timeoutMs: o.timeoutMs, retries: 1, maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES, ...(o.fetch !== undefined ? { fetch: o.fetch } : {}) };
  const signIn =
    o.signIn === undefined
      ? undefined
      : createSignIn({
          issuer: (requireSecureUrl(o.signIn.issuer, 'pages.signIn.issuer', 'CONFIG_INVALID'), o.signIn.issuer),
          clientId: o.signIn.clientId,
          ...(o.signIn.clientSecret !== undefined ? { clientSecret: secretReader(o.signIn.clientSecret, 'pages.signIn: clientSecret', (v) => v.length <= 4096) } : {}),
          scopes: o.signIn.scopes ?? ['openid', 'email', 'profile'],
          userIdClaim: o.signIn.userIdClaim,
          groupsClaim: o.signIn.groupsClaim,
          redirectUri: `${publicOrigin}${base}/sign-in/callback`,
          http,
          store,
          ttlMs: 600_000,
        });
  const approvals = o.approvals;
  const tokens = o.tokens;
  const consent = tokens === undefined ? undefined : createConsentRoutes(tokens, { basePath: `${base}/accounts`, successRedirect: `${base}/accounts?done=connected`, store, ...(o.audit !== undefined ? { audit: o.audit } : {}) });

  // ---- responses ---------------------------------------------------------------------------

  function html(status: number, layout: Omit<Layout, 'base'>, body: string, viewer?: Viewer, cookies: string[] = []): RouteResponse {
    const full: Layout = { ...layout, base, nav: nav(layout.title) };
    if (viewer !== undefined) full.user = { userId: viewer.user.userId, csrf: '', signOut: false };
    const out: RouteResponse = { status, headers: securityHeaders('text/html; charset=utf-8'), text: page(full, body) };
    const all = [...cookies, ...(viewer?.setCookie !== undefined ? [viewer.setCookie] : [])];
    if (all.length > 0) out.cookies = all;
    return out;
  }

  async function htmlFor(status: number, layout: Omit<Layout, 'base'>, body: string, viewer: Viewer, cookies: string[] = []): Promise<RouteResponse> {
    const r = html(status, layout, body, undefined, cookies);
    const full: Layout = { ...layout, base, nav: nav(layout.title), user: { userId: viewer.user.userId, csrf: await sessions.csrfToken(viewer.binding), signOut: viewer.session !== undefined } };
    r.text = page(full, body);
    if (viewer.setCookie !== undefined) r.cookies = [...(r.cookies ?? []), viewer.setCookie];
    return r;
  }

  function nav(title: string): Layout['nav'] {
    const out: NonNullable<Layout['nav']> = [];
    if (approvals !== undefined) out.push({ href: `${base}/approvals`, label: 'Approvals', current: title.startsWith('Approval') });
    if (tokens !== undefined) out.push({ href: `${base}/accounts`, label: 'Connected accounts', current: title === 'Connected accounts' });
    return out;
  }

  function seeOther(location: string, cookies: string[] = []): RouteResponse {
    const r: RouteResponse = { status: 303, headers: { ...securityHeaders('text/html; charset=utf-8'), location }, text: '' };
    if (cookies.length > 0) r.cookies = cookies;
    return r;
  }

  function errorPage(error: unknown, viewer?: Viewer): RouteResponse {
    const known = isAgentIamError(error);
    const status = known ? error.status : 500;
    const code = known ? error.code : 'INTERNAL_ERROR';
    const message = known ? error.message : 'Something went wrong.';
    const title = status === 404 ? 'Not found' : status === 401 ? 'Sign-in needed' : status === 403 ? 'Refused' : 'Something went wrong';
    const retry = signIn !== undefined && (status === 401 || code === 'OAUTH_STATE_MISMATCH' || code === 'OAUTH_ERROR') ? ` <a href="${attr(`${base}/sign-in`)}">Sign in again</a>` : '';
    return html(status, { title }, `<p class="error">${text(message)} <span class="muted">(${text(code)})</span></p><p>${retry}</p>`, viewer);
  }

  // ---- who is asking -----------------------------------------------------------------------

  async function viewerOf(req: RouteRequest): Promise<Viewer | undefined> {
    const cookie = req.header?.('cookie');
    if (signIn !== undefined) {
      const s = await sessions.read(cookie);
      return s === undefined ? undefined : { user: s.user, binding: `session:${s.id}`, session: s.id };
    }
    const hook = o.authenticate as NonNullable<PagesOptions['authenticate']>;
    const user = await hook({ method: req.method, path: req.path, header: (n) => req.header?.(n) });
    if (user === undefined || user === null || typeof user.userId !== 'string' || user.userId === '' || hasControlChars(user.userId)) return undefined;
    const clean: PageUser = { userId: user.userId, scopes: Array.isArray(user.scopes) ? [...user.scopes] : [], groups: Array.isArray(user.groups) ? [...user.groups] : [] };
    // The CSRF cookie: random, encrypted, bound with the user id.
    const sealed = readCookie(cookie, sessions.csrfCookieName);
    let value = await sessions.open(sessions.csrfCookieName, sealed);
    let setCookie: string | undefined;
    if (value === undefined) {
      value = crypto.randomUUID();
      setCookie = sessions.cookie(sessions.csrfCookieName, await sessions.seal(sessions.csrfCookieName, value), o.sessionTtlSeconds);
    }
    const viewer: Viewer = { user: clean, binding: `hook:${value}:${clean.userId}` };
    if (setCookie !== undefined) viewer.setCookie = setCookie;
    return viewer;
  }

  function signInNeeded(req: RouteRequest): RouteResponse {
    if (signIn !== undefined && req.method === 'GET') return seeOther(`${base}/sign-in?return=${encodeURIComponent(req.path)}`);
    return errorPage(new AgentIamError('TOKEN_MISSING', 'Sign in to use these pages.'));
  }

  /** CSRF: the form's token must be this session's, and the request must come from the pages' origin. */
  async function checkPost(req: RouteRequest, viewer: Viewer | undefined): Promise<URLSearchParams> {
    const o2 = req.header?.('origin');
    const fetchSite = req.header?.('sec-fetch-site');
    const sameOrigin = o2 !== undefined ? o2 === publicOrigin : fetchSite === 'same-origin';
    if (!sameOrigin) throw requestInvalid('This form was not sent from these pages.', { status: 403, reason: 'csrf_origin' });
    const form = req.readForm === undefined ? new URLSearchParams() : await req.readForm();
    if (viewer === undefined) throw new AgentIamError('TOKEN_MISSING', 'Sign in to use these pages.');
    const tokens = form.getAll('csrf');
    if (tokens.length !== 1 || !(await sessions.checkCsrf(viewer.binding, tokens[0] as string))) {
      throw requestInvalid('This form has expired or was not sent from these pages. Reload the page and try again.', { status: 403, reason: 'csrf_token' });
    }
    return form;
  }

  const approverOf = (v: Viewer): Approver => ({ userId: v.user.userId, scopes: v.user.scopes, groups: v.user.groups, kind: 'user' });
  const admitted = (v: Viewer): boolean => o.adminScope === undefined || v.user.scopes.includes(o.adminScope);
  const served = (r: ApprovalRecord): boolean => o.adminScope !== undefined || r.approvedBy !== undefined;

  function contextOf(v: Viewer): AgentContext {
    return Object.freeze({
      userId: v.user.userId, subject: v.user.userId, issuer: v.user.issuer, scopes: v.user.scopes, claims: { groups: v.user.groups },
      actorChain: [], requestId: crypto.randomUUID(), authenticated: true,
    });
  }

  // ---- approvals ---------------------------------------------------------------------------

  function summaryCells(r: ApprovalRecord): string {
    const s = r.summary;
    return (
      `<td>${text(s.agentId)}</td><td>${text(s.userId ?? '—')}</td><td>${text(s.tool)}</td><td><code>${text(s.method)}</code></td>` +
      `<td><code>${text(s.host ?? '')}</code></td><td><code>${text(s.path)}</code></td>` +
      `<td>${s.description === undefined ? '<span class="muted">none</span>' : `<span class="untrusted">${text(s.description)}</span>`}</td>`
    );
  }

  const progress = (r: ApprovalRecord): string => `${r.approvals?.length ?? (r.status === 'pending' ? 0 : 1)} of ${r.approversRequired ?? 1}`;

  async function inbox(req: RouteRequest, v: Viewer): Promise<RouteResponse> {
    const svc = approvals as PagesApprovals;
    if (!admitted(v)) {
      return htmlFor(403, { title: 'Approvals' }, `<p class="error">You are not an approver here (the scope ${text(o.adminScope)} is needed).</p>`, v);
    }
    const all = (await svc.list({ decidableBy: approverOf(v) })).filter(served);
    const pending = all.filter((r) => r.status === 'pending');
    const decided = all.filter((r) => r.status !== 'pending').sort((a, b) => (b.decidedAt ?? b.createdAt) - (a.decidedAt ?? a.createdAt)).slice(0, 50);
    const head = '<tr><th scope="col">Agent</th><th scope="col">Acting for</th><th scope="col">Tool</th><th scope="col">Method</th><th scope="col">Host</th><th scope="col">Path</th><th scope="col">Author’s summary (unverified)</th>';
    const pendingRows = pending
      .map((r) => `<tr>${summaryCells(r)}<td>${time(r.createdAt)}</td><td>${progress(r)}</td><td><a class="button" href="${attr(`${base}/approvals/${r.id}`)}">Review<span class="skip"> ${text(r.summary.method)} ${text(r.summary.path)}</span></a></td></tr>`)
      .join('');
    const decidedRows = decided
      .map((r) => `<tr>${summaryCells(r)}<td><span class="status status-${attr(r.status)}">${text(r.status)}</span></td><td>${text(r.approver ?? '')}</td><td><a href="${attr(`${base}/approvals/${r.id}`)}">Details</a></td></tr>`)
      .join('');
    const body =
      `<h2 id="pending">Waiting for you (${pending.length})</h2>` +
      (pending.length === 0
        ? '<p class="muted">Nothing waits for your decision.</p>'
        : `<table aria-labelledby="pending"><thead>${head}<th scope="col">Requested</th><th scope="col">Approvals</th><th scope="col"><span class="skip">Action</span></th></tr></thead><tbody>${pendingRows}</tbody></table>`) +
      `<h2 id="decided">Decided</h2>` +
      (decided.length === 0
        ? '<p class="muted">No decided approvals.</p>'
        : `<table aria-labelledby="decided"><thead>${head}<th scope="col">Status</th><th scope="col">Decided by</th><th scope="col"><span class="skip">Details</span></th></tr></thead><tbody>${decidedRows}</tbody></table>`);
    const done = req.query.get('done');
    return htmlFor(200, { title: 'Approvals', ...(done !== null && NOTICES[done] !== undefined ? { notice: NOTICES[done] } : {}) }, body, v);
  }

  /** The approval, if this person may decide it; 404 (the same answer as an unknown id) otherwise. */
  async function visible(id: string, v: Viewer): Promise<ApprovalRecord> {
    const svc = approvals as PagesApprovals;
    const missing = requestInvalid('No such approval, or not one you may decide.', { status: 404 });
    if (!ID_RE.test(id) || !admitted(v)) throw missing;
    const r = await svc.get(id);
    if (r === undefined || !served(r) || !(await svc.mayDecide(r, approverOf(v)))) throw missing;
    return r;
  }

  async function detail(req: RouteRequest, v: Viewer, id: string, problem?: AgentIamError): Promise<RouteResponse> {
    const r = await visible(id, v);
    const s = r.summary;
    const row = (label: string, value: string): string => `<dt>${text(label)}</dt><dd>${value}</dd>`;
    let fields =
      row('Status', `<span class="status status-${attr(r.status)}">${text(r.status)}</span>`) +
      row('Agent', text(s.agentId)) +
      row('Acting for', text(s.userId ?? 'no user (the agent itself)')) +
      row('Tool', text(s.tool)) +
      row('Method', `<code>${text(s.method)}</code>`) +
      row('Host', `<code>${text(s.host ?? '')}</code>`) +
      row('Path', `<code>${text(s.path)}</code>`);
    for (const [name, value] of Object.entries(s.headers ?? {})) fields += row(`Header ${name}`, `<code>${text(value)}</code>`);
    fields +=
      row('Author’s summary', s.description === undefined ? '<span class="muted">none</span>' : `<span class="untrusted">${text(s.description)}</span> <span class="muted">(written by the agent’s author, not verified)</span>`) +
      row('Query (SHA-256)', `<code>${text(s.querySha256 ?? '')}</code>`) +
      row('Body (SHA-256)', `<code>${text(s.bodySha256 ?? '')}</code>`) +
      row('Requested', time(r.createdAt)) +
      (r.expiresAt !== undefined ? row(r.status === 'approved' ? 'Usable until' : 'Lapses', time(r.expiresAt)) : '') +
      row('Approvals', `${progress(r)}${r.approvals !== undefined ? ` (${r.approvals.map((a) => text(a.approver)).join(', ')})` : ''}`) +
      (r.approver !== undefined ? row(r.status === 'denied' ? 'Denied by' : 'Approved by', text(r.approver)) : '') +
      (r.reason !== undefined ? row('Reason', `<span class="untrusted">${text(r.reason)}</span>`) : '');
    const csrf = await sessions.csrfToken(v.binding);
    const already = r.approvals?.some((a) => a.approver.normalize('NFKC').toLowerCase() === v.user.userId.normalize('NFKC').toLowerCase()) === true;
    let forms = '';
    if (r.status === 'pending' && !already) {
      const options = TTL_CHOICES.map(([value, label]) => `<option value="${attr(value)}">${text(label)}</option>`).join('');
      forms =
        `<form method="post" class="decide" action="${attr(`${base}/approvals/${r.id}/approve`)}">${csrfField(csrf)}` +
        `<label for="ttl">Let this exact request through</label><select id="ttl" name="ttlSeconds">${options}</select> <button type="submit" class="approve">Approve</button></form>` +
        `<form method="post" class="decide" action="${attr(`${base}/approvals/${r.id}/deny`)}">${csrfField(csrf)}` +
        `<label for="reason">Reason (optional, shown to other approvers)</label><input type="text" id="reason" name="reason" maxlength="500" autocomplete="off"> <button type="submit" class="deny">Deny</button></form>`;
    } else if (r.status === 'pending') {
      forms = '<p class="muted">You have approved. Waiting for another approver.</p>';
    } else {
      forms = '<p class="muted">This approval is decided; nothing more to do.</p>';
    }
    const done = req.query.get('done');
    const notice = done !== null && NOTICES[done] !== undefined ? NOTICES[done] : undefined;
    const err = problem === undefined ? '' : `<p class="error" role="alert">${text(problem.message)} <span class="muted">(${text(problem.code)})</span></p>`;
    return htmlFor(problem?.status ?? 200, { title: 'Approval', ...(notice !== undefined ? { notice } : {}) }, `${err}<dl class="fields">${fields}</dl>${forms}<p><a href="${attr(`${base}/approvals`)}">Back to the inbox</a></p>`, v);
  }

  async function decide(req: RouteRequest, v: Viewer | undefined, id: string, action: 'approve' | 'deny'): Promise<RouteResponse> {
    const form = await checkPost(req, v);
    const viewer = v as Viewer;
    await visible(id, viewer);
    const svc = approvals as PagesApprovals;
    try {
      if (action === 'approve') {
        const ttl = form.get('ttlSeconds') ?? '';
        if (!TTL_CHOICES.some(([value]) => value === ttl)) throw new AgentIamError('REQUEST_INVALID', 'Choose how long the approval lasts from the list.');
        const done = await svc.approve(id, { approver: approverOf(viewer), ...(ttl !== '' ? { ttlSeconds: Number(ttl) } : {}) });
        return seeOther(`${base}/approvals/${id}?done=${done.status === 'pending' ? 'partial' : 'approved'}`);
      }
      const reason = (form.get('reason') ?? '').trim();
      if (reason.length > 500 || hasControlChars(reason)) throw new AgentIamError('REQUEST_INVALID', 'The reason must be at most 500 characters of text.');
      await svc.deny(id, { approver: approverOf(viewer), ...(reason !== '' ? { reason } : {}) });
      return seeOther(`${base}/approvals/${id}?done=denied`);
    } catch (e) {
      if (isAgentIamError(e) && (e.code === 'POLICY_DENIED' || e.code === 'REQUEST_INVALID')) return detail(req, viewer, id, e);
      throw e;
    }
  }

  // ---- connected accounts ------------------------------------------------------------------

  async function accounts(req: RouteRequest, v: Viewer): Promise<RouteResponse> {
    const manager = tokens as PagesTokenManager;
    const list = await manager.listAccounts(v.user.userId);
    const csrf = await sessions.csrfToken(v.binding);
    const rows = manager.connections
      .map((connection) => {
        const a = list.find((x) => x.connection === connection);
        const status = a?.status ?? 'not connected';
        const connect = `<form method="post" class="inline" action="${attr(`${base}/accounts/${encodeURIComponent(connection)}/connect`)}">${csrfField(csrf)}<button type="submit">${a === undefined ? 'Connect' : 'Reconnect'}<span class="skip"> ${text(connection)}</span></button></form>`;
        const disconnect =
          a === undefined
            ? ''
            : ` <form method="post" class="inline" action="${attr(`${base}/accounts/${encodeURIComponent(connection)}/disconnect`)}">${csrfField(csrf)}<button type="submit" class="disconnect">Disconnect<span class="skip"> ${text(connection)}</span></button></form>`;
        return (
          `<tr><th scope="row">${text(connection)}</th><td><span class="status status-${attr(status.replace(/ /g, '_'))}">${text(status)}</span></td>` +
          `<td>${a === undefined || a.scopes.length === 0 ? '<span class="muted">—</span>' : a.scopes.map((s) => `<code>${text(s)}</code>`).join(' ')}</td>` +
          `<td>${a?.expiresAt !== undefined ? time(a.expiresAt) : '<span class="muted">—</span>'}</td><td>${a !== undefined ? time(a.updatedAt) : ''}</td><td>${a?.status === 'active' ? '' : connect}${disconnect}</td></tr>`
        );
      })
      .join('');
    const body =
      `<table><thead><tr><th scope="col">Connection</th><th scope="col">Status</th><th scope="col">Scopes</th><th scope="col">Access expires</th><th scope="col">Updated</th><th scope="col"><span class="skip">Actions</span></th></tr></thead><tbody>${rows}</tbody></table>` +
      '<p class="muted">Disconnecting revokes the account’s tokens at the provider (where it supports revocation) and deletes them here.</p>';
    const done = req.query.get('done');
    return htmlFor(200, { title: 'Connected accounts', ...(done !== null && NOTICES[done] !== undefined ? { notice: NOTICES[done] } : {}) }, body, v);
  }

  function knownConnection(connection: string): void {
    if (!(tokens as PagesTokenManager).connections.includes(connection)) throw requestInvalid('No such connection.', { status: 404 });
  }

  async function connect(req: RouteRequest, v: Viewer | undefined, connection: string): Promise<RouteResponse> {
    await checkPost(req, v);
    const viewer = v as Viewer;
    knownConnection(connection);
    const r = await (consent as RouteHandler).handle({ method: 'GET', path: `${base}/accounts/connect/${encodeURIComponent(connection)}`, query: new URLSearchParams(), context: contextOf(viewer), accept: 'application/json' });
    const url = (r?.body as { authorizationUrl?: unknown } | undefined)?.authorizationUrl;
    if (r === undefined || r.status !== 200 || typeof url !== 'string') throw rebuild(r);
    // A page that moves on by itself (meta refresh) rather than a redirect: a form's CSP
    // `form-action 'self'` would stop a redirect to the provider.
    const host = new URL(url).host;
    return htmlFor(200, { title: 'Connecting…', refresh: { url, seconds: 0 } }, `<p>Taking you to <strong>${text(host)}</strong> to connect ${text(connection)}.</p><p><a href="${attr(url)}">Continue to ${text(host)}</a></p>`, viewer);
  }

  /** An error answer of the consent core as an error again (it renders JSON). */
  function rebuild(r: RouteResponse | undefined): AgentIamError {
    const b = (r?.body ?? {}) as { error?: unknown; message?: unknown };
    const code = typeof b.error === 'string' && b.error !== 'INTERNAL_ERROR' ? b.error : 'REQUEST_INVALID';
    return new AgentIamError(code as 'REQUEST_INVALID', typeof b.message === 'string' ? b.message : 'The request failed', { status: r?.status ?? 500 });
  }

  async function connected(req: RouteRequest, v: Viewer): Promise<RouteResponse> {
    const r = await (consent as RouteHandler).handle({ method: 'GET', path: `${base}/accounts/callback`, query: req.query, context: contextOf(v) });
    if (r === undefined || r.status !== 302) throw rebuild(r);
    return seeOther(r.headers.location as string);
  }

  async function disconnect(req: RouteRequest, v: Viewer | undefined, connection: string): Promise<RouteResponse> {
    await checkPost(req, v);
    knownConnection(connection);
    await (tokens as PagesTokenManager).disconnect({ connection, userId: (v as Viewer).user.userId });
    return seeOther(`${base}/accounts?done=disconnected`);
  }

  // ---- sign-in -----------------------------------------------------------------------------

  function safeReturn(value: string | null): string {
    const fallback = approvals !== undefined ? `${base}/approvals` : `${base}/accounts`;
    if (value === null || value.length > 512 || !value.startsWith(`${base}/`) || value.startsWith('//') || value.includes('\\') || hasControlChars(value)) return fallback;
    const seg = segmentsAfter(value.split('?', 1)[0] as string, base);
    if (seg === undefined || seg.some((x) => x === '.' || x === '..') || seg[0] === 'sign-in' || seg[0] === 'sign-out') return fallback;
    return value;
  }

  async function startSignIn(req: RouteRequest): Promise<RouteResponse> {
    const { url, binding } = await (signIn as NonNullable<typeof signIn>).start(safeReturn(req.query.get('return')));
    const cookie = sessions.cookie(sessions.loginCookieName, await sessions.seal(sessions.loginCookieName, binding), 600);
    return { status: 302, headers: { ...securityHeaders('text/html; charset=utf-8'), location: url }, text: '', cookies: [cookie] };
  }

  async function finishSignIn(req: RouteRequest): Promise<RouteResponse> {
    const cookie = req.header?.('cookie');
    const clear = sessions.clearCookie(sessions.loginCookieName);
    try {
      const binding = await sessions.open(sessions.loginCookieName, readCookie(cookie, sessions.loginCookieName));
      const { user, returnTo } = await (signIn as NonNullable<typeof signIn>).finish(req.query, binding);
      // A new session id at every sign-in (never one the browser brought): no session fixation.
      const old = await sessions.read(cookie);
      if (old !== undefined) await sessions.destroy(old.id);
      const created = await sessions.create(user);
      emitAudit(o.audit, { type: 'session.sign_in', time: isoNow(), userId: user.userId, decision: 'allow' });
      return seeOther(returnTo, [created.cookie, clear]);
    } catch (e) {
      emitAudit(o.audit, { type: 'session.sign_in', time: isoNow(), decision: 'deny', code: isAgentIamError(e) ? e.code : 'INTERNAL_ERROR' });
      const r = errorPage(e);
      r.cookies = [clear];
      return r;
    }
  }

  async function signOut(req: RouteRequest, v: Viewer | undefined): Promise<RouteResponse> {
    await checkPost(req, v);
    if (v?.session !== undefined) await sessions.destroy(v.session);
    emitAudit(o.audit, { type: 'session.sign_out', time: isoNow(), userId: (v as Viewer).user.userId, decision: 'allow' });
    return seeOther(`${base}/signed-out`, [sessions.clearCookie(sessions.cookieName)]);
  }

  // ---- routing -----------------------------------------------------------------------------

  async function route(req: RouteRequest): Promise<RouteResponse | undefined> {
    const seg = segmentsAfter(req.path, base);
    if (seg === undefined) return undefined;
    const m = req.method;
    const [a, b, c] = seg;
    const n = seg.length;
    if (n === 2 && a === 'assets' && b === 'pages.css' && m === 'GET') {
      return { status: 200, headers: { ...securityHeaders('text/css; charset=utf-8'), 'cache-control': 'public, max-age=3600' }, text: STYLESHEET };
    }
    if (signIn !== undefined) {
      if (n === 1 && a === 'sign-in' && m === 'GET') return startSignIn(req);
      if (n === 2 && a === 'sign-in' && b === 'callback' && m === 'GET') return finishSignIn(req);
      if (n === 1 && a === 'signed-out' && m === 'GET') return html(200, { title: 'Signed out' }, `<p>You are signed out.</p><p><a href="${attr(`${base}/sign-in`)}">Sign in again</a></p>`);
    }
    const known =
      (n === 0 && m === 'GET') ||
      (n === 1 && a === 'sign-out' && m === 'POST' && signIn !== undefined) ||
      (approvals !== undefined && a === 'approvals' && ((n <= 2 && m === 'GET') || (n === 3 && m === 'POST' && (c === 'approve' || c === 'deny')))) ||
      (tokens !== undefined && a === 'accounts' && ((n === 1 && m === 'GET') || (n === 2 && b === 'callback' && m === 'GET') || (n === 3 && m === 'POST' && (c === 'connect' || c === 'disconnect'))));
    if (!known) return undefined;
    const viewer = await viewerOf(req);
    try {
      if (viewer === undefined && m === 'GET') return signInNeeded(req);
      if (m === 'POST') {
        if (a === 'sign-out') return await signOut(req, viewer);
        if (a === 'approvals') return await decide(req, viewer, b as string, c as 'approve' | 'deny');
        if (c === 'connect') return await connect(req, viewer, b as string);
        return await disconnect(req, viewer, b as string);
      }
      const v = viewer as Viewer;
      if (n === 0) return seeOther(approvals !== undefined ? `${base}/approvals` : `${base}/accounts`);
      if (a === 'approvals') return n === 1 ? await inbox(req, v) : await detail(req, v, b as string);
      if (n === 2) return await connected(req, v);
      return await accounts(req, v);
    } catch (e) {
      return errorPage(e, viewer);
    }
  }

  return routeHandler(base, route);
}
