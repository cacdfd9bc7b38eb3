/**
 * Consent and approval routes for Express (part of `agent-iam/express`). The routes are decided by
 * the framework-free core in `src/app`; this file only gives them Express types. Nothing here
 * imports express at run time.
 *
 * @module
 */
import type { RequestHandler } from 'express';
import { createApprovalRoutes, type ApprovalRoutesOptions, type RouteApprovals } from '../http/approval-routes.js';
import { createConsentRoutes, type ConsentRoutesOptions, type ConsentTokenManager } from '../http/consent-routes.js';
import { nodeRoutes } from '../http/node-routes.js';
import { createPages, type PagesOptions } from '../pages/pages.js';

export type { ApprovalRoutesOptions, ConsentRoutesOptions, PagesOptions };

/**
 * Express middleware serving the consent routes under `basePath` (anything else goes to `next()`):
 * `GET {base}/connect/:connection` (302 to the authorization URL), `GET {base}/callback` (completes
 * only for the user who started the flow; 302 to `successRedirect` or JSON `{ account }`),
 * `GET {base}/accounts`, `DELETE {base}/accounts/:connection`. The caller is `req.agentContext`:
 * mount it after `agentAuth`. Errors are JSON `{ error, message }` with the error's status.
 *
 * @example
 * ```ts
 * import { agentAuth, consentRoutes } from 'agent-iam/express';
 * app.use(agentAuth(verifier));
 * app.use(consentRoutes(tokens, { basePath: '/oauth', successRedirect: '/settings' }));
 * // connection redirectUri: 'https://agent.example.com/oauth/callback'
 * ```
 */
export function consentRoutes(tokens: ConsentTokenManager, options: ConsentRoutesOptions): RequestHandler {
  return nodeRoutes(createConsentRoutes(tokens, options)) as unknown as RequestHandler;
}

/**
 * Express middleware serving the approval routes (default base `/approvals`): `GET {base}` (pending
 * approvals), `GET {base}/:id`, `POST {base}/:id/approve` (JSON `{ ttlSeconds? }`), `POST {base}/:id/deny`.
 * Only callers whose verified context holds `adminScope` (401 `TOKEN_MISSING` without a context,
 * 403 `INSUFFICIENT_SCOPE` without the scope); the approver is the caller's user id. Reads the JSON
 * body itself when no body parser ran.
 *
 * @example
 * ```ts
 * import { agentAuth, approvalRoutes } from 'agent-iam/express';
 * app.use(agentAuth(verifier));
 * app.use(approvalRoutes(approvals, { adminScope: 'approvals:admin' }));
 * ```
 */
export function approvalRoutes(approvals: RouteApprovals, options: ApprovalRoutesOptions): RequestHandler {
  return nodeRoutes(createApprovalRoutes(approvals, options)) as unknown as RequestHandler;
}

/**
 * Express middleware serving the approvals inbox and connected accounts pages under `basePath`
 * (default `/agent-iam`; anything else goes to `next()`). Mount it at the application's root: the
 * pages build their URLs from `publicOrigin` and `basePath`. They sign people in themselves
 * (`signIn`) or use your session (`authenticate`); `agentAuth` is not needed in front of them.
 * Reads form bodies itself when no body parser ran.
 *
 * @example
 * ```ts
 * import { pages } from 'agent-iam/express';
 * app.use(pages({ publicOrigin: 'https://agent.example.com', approvals, tokens, secret: { env: 'PAGES_SECRET' },
 *   signIn: { issuer: 'https://idp.example.com', clientId: 'agent-pages', clientSecret: { env: 'PAGES_CLIENT_SECRET' } } }));
 * ```
 */
export function pages(options: PagesOptions): RequestHandler {
  return nodeRoutes(createPages(options)) as unknown as RequestHandler;
}
