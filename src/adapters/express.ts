/**
 * `agent-iam/express`: Express middleware over the verifier. The core decides; this file only
 * translates an Express request into a verify call and an error into a response.
 *
 * @module
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { runWithContext, type AgentContext } from '../context.js';
import { renderError } from '../errors.js';
import { verifyNow, type Verifier, type VerifierOptions, type VerifyRequest } from '../inbound/verifier.js';
import { checkScopes, parseScopes, rememberVerifier, scrubNodeHeaders, setupAdapter, type AgentAuthOptions } from './shared.js';

export type { AgentAuthOptions } from './shared.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified caller, set by `agentAuth` from `agent-iam/express`. */
      agentContext?: AgentContext;
    }
  }
}

/**
 * Express middleware that verifies the caller's bearer token. On failure it answers with the error's
 * status, `{ error: code, message }`, `WWW-Authenticate` and `Cache-Control: no-store`. On success it
 * replaces any client-sent `X-End-User-ID` with the verified user id, sets `req.agentContext`, and runs
 * the rest of the chain inside the context (`currentContext()`, `toolFetch`).
 *
 * Bad options throw `CONFIG_INVALID` here, at construction.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { agentAuth, requireScopes } from 'agent-iam/express';
 * const app = express();
 * app.use(agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }));
 * app.get('/me', (req, res) => res.json({ user: req.agentContext?.userId }));
 * app.post('/items', requireScopes('items:write'), (req, res) => res.sendStatus(201));
 * ```
 */
export function agentAuth(verifierOrOptions: Verifier | VerifierOptions, options?: AgentAuthOptions): RequestHandler {
  const { verifier, verifyOptions } = setupAdapter(verifierOrOptions, options);
  /** The verified request goes on inside its context; anything that throws here becomes the answer. */
  const proceed = (req: Request, res: Response, next: NextFunction, context: AgentContext): void => {
    try {
      rememberVerifier(context, verifier);
      scrubNodeHeaders(req, context.userId);
      req.agentContext = context;
      runWithContext(context, next);
    } catch (error) {
      sendError(res, error); // does nothing once a response has started
    }
  };
  return function agentAuthMiddleware(req: Request, res: Response, next: NextFunction): void {
    let result: AgentContext | Promise<AgentContext>;
    try {
      result = verifyNow(verifier, toVerifyRequest(req), verifyOptions);
    } catch (error) {
      sendError(res, error);
      return;
    }
    // A remembered token is answered synchronously: no promise hop before the route runs.
    if (!(result instanceof Promise)) {
      proceed(req, res, next, result);
      return;
    }
    // One reaction, no further promise: neither handler can throw (proceed and sendError never do).
    void result.then(
      (context) => proceed(req, res, next, context),
      (error: unknown) => sendError(res, error),
    );
  };
}

/**
 * Express middleware that requires every named scope of the context set by {@link agentAuth}:
 * 403 `INSUFFICIENT_SCOPE` (`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`), or
 * 401 `TOKEN_MISSING` when the request carries no verified token.
 *
 * @example
 * ```ts
 * app.delete('/items/:id', requireScopes('items:write', 'items:delete'), handler);
 * ```
 */
export function requireScopes(...scopes: string[]): RequestHandler {
  const required = parseScopes(scopes);
  return function requireScopesMiddleware(req: Request, res: Response, next: NextFunction): void {
    try {
      checkScopes(req.agentContext, required);
    } catch (error) {
      sendError(res, error);
      return;
    }
    next();
  };
}

/**
 * The request as the verifier sees it. Node keeps one of several `Authorization` lines in
 * `req.headers`; `req.rawHeaders` has them all, and the verifier refuses more than one.
 */
function toVerifyRequest(req: Request): VerifyRequest {
  return { headers: req.headers, rawHeaders: req.rawHeaders, host: req.headers.host, method: req.method, url: req.originalUrl };
}

/** Answer with the rendered error; never throws (a response that cannot be written is destroyed). */
function sendError(res: Response, error: unknown): void {
  try {
    if (res.headersSent) return;
    const rendered = renderError(error);
    res.status(rendered.status);
    for (const name in rendered.headers) res.setHeader(name, rendered.headers[name] as string);
    res.json(rendered.body);
  } catch {
    res.destroy();
  }
}
export * from './express-routes.js';
