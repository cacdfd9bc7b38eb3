/**
 * Consent and approval routes for Hono (part of `agent-iam/hono`). The routes are decided by the
 * framework-free core in `src/app`; this file only gives them Hono types. Nothing here imports hono
 * at run time.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono';
import { createApprovalRoutes, type ApprovalRoutesOptions, type RouteApprovals } from '../http/approval-routes.js';
import { createConsentRoutes, type ConsentRoutesOptions, type ConsentTokenManager } from '../http/consent-routes.js';
import { honoRoutes } from '../http/web-routes.js';
import { createPages, type PagesOptions } from '../pages/pages.js';

export type { ApprovalRoutesOptions, ConsentRoutesOptions, PagesOptions };

/**
 * Hono middleware serving the consent routes under `basePath` (anything else goes to `next()`):
 * `GET {base}/connect/:connection` (302 to the authorization URL), `GET {base}/callback` (completes
 * only for the user who started the flow; 302 to `successRedirect` or JSON `{ account }`),
 * `GET {base}/accounts`, `DELETE {base}/accounts/:connection`. The caller is
 * `c.get('agentContext')`: mount it after `agentAuth`.
 *
 * @example
 * ```ts
 * import { agentAuth, consentRoutes } from 'agent-iam/hono';
 * app.use('*', agentAuth(verifier));
 * app.use('/oauth/*', consentRoutes(tokens, { basePath: '/oauth' }));
 * ```
 */
export function consentRoutes(tokens: ConsentTokenManager, options: ConsentRoutesOptions): MiddlewareHandler {
  return honoRoutes(createConsentRoutes(tokens, options)) as MiddlewareHandler;
}

/**
 * Hono middleware serving the approval routes (default base `/approvals`): `GET {base}`,
 * `GET {base}/:id`, `POST {base}/:id/approve` (JSON `{ ttlSeconds? }`), `POST {base}/:id/deny`;
 * only for callers holding `adminScope`; the approver is the caller's user id.
 *
 * @example
 * ```ts
 * import { agentAuth, approvalRoutes } from 'agent-iam/hono';
 * app.use('*', agentAuth(verifier));
 * app.use('/approvals/*', approvalRoutes(approvals, { adminScope: 'approvals:admin' }));
 * ```
 */
export function approvalRoutes(approvals: RouteApprovals, options: ApprovalRoutesOptions): MiddlewareHandler {
  return honoRoutes(createApprovalRoutes(approvals, options)) as MiddlewareHandler;
}

/**
 * Hono middleware serving the approvals inbox and connected accounts pages under `basePath`
 * (default `/agent-iam`; anything else goes to `next()`). They sign people in themselves (`signIn`)
 * or use your session (`authenticate`).
 *
 * @example
 * ```ts
 * import { pages } from 'agent-iam/hono';
 * app.use('/agent-iam/*', pages({ publicOrigin: 'https://agent.example.com', approvals, tokens, secret: { env: 'PAGES_SECRET' },
 *   signIn: { issuer: 'https://idp.example.com', clientId: 'agent-pages' } }));
 * ```
 */
export function pages(options: PagesOptions): MiddlewareHandler {
  return honoRoutes(createPages(options)) as MiddlewareHandler;
}
