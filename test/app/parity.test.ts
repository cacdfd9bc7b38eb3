/**
 * iam.express() / iam.hono() are built in src/app from the same framework-free pieces as
 * agent-iam/express and agent-iam/hono (the root entry must not import the adapter modules). This
 * runs the adapters' own HTTP suite (test/adapters/harness.ts: duplicate Authorization lines,
 * X-End-User-ID scrubbing in every Node view, context propagation, challenges, broken verifiers)
 * against them, so the two can never drift apart unnoticed.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve, type HttpBindings } from '@hono/node-server';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { requireScopes as expressRequireScopes } from '../../src/adapters/express.js';
import { requireScopes as honoRequireScopes } from '../../src/adapters/hono.js';
import { setupAdapter, type AgentAuthOptions } from '../../src/adapters/shared.js';
import { nodeAgentAuth } from '../../src/app/node.js';
import { honoAgentAuth } from '../../src/app/web.js';
import { currentContext, type AgentContext } from '../../src/context.js';
import type { Verifier, VerifierOptions } from '../../src/inbound/verifier.js';
import { adapterSuite, type Seen } from '../adapters/harness.js';

/** Exactly what iam.express() / iam.hono() return for a verifier and options. */
const iamExpress = (v: Verifier | VerifierOptions, o?: AgentAuthOptions): RequestHandler => nodeAgentAuth(setupAdapter(v, o)) as unknown as RequestHandler;
const iamHono = (v: Verifier | VerifierOptions, o?: AgentAuthOptions): MiddlewareHandler => honoAgentAuth(setupAdapter(v, o)) as MiddlewareHandler;

async function seenExpress(req: Request): Promise<Seen> {
  await sleep(2);
  const ctx = req.agentContext;
  const current = currentContext();
  const distinct = req.headersDistinct['x-end-user-id'];
  return {
    userId: ctx?.userId ?? null,
    currentUserId: current?.userId ?? null,
    sameContext: ctx !== undefined && current === ctx,
    authenticated: ctx?.authenticated ?? null,
    endUser: req.get('x-end-user-id') ?? null,
    nodeEndUser: {
      raw: req.rawHeaders.filter((_, i, all) => i % 2 === 1 && (all[i - 1] as string).toLowerCase() === 'x-end-user-id'),
      header: (req.headers['x-end-user-id'] as string | undefined) ?? null,
      distinct: distinct ?? null,
    },
    ...(req.body !== undefined ? { body: req.body as unknown } : {}),
  };
}

adapterSuite('iam.express()', async (setup) => {
  const me = async (req: Request, res: Response) => void res.json(await seenExpress(req));
  const requireScopes = expressRequireScopes;
  const app = express();
  app.use(express.json());
  app.use('/api', iamExpress(setup.auth));
  app.get('/api/me', me);
  app.get('/api/write', requireScopes('items:write'), me);
  app.get('/api/admin', requireScopes('admin', 'items:write'), me);
  app.post('/api/echo', me);
  app.get('/scoped/me', iamExpress(setup.auth, { requiredScopes: ['items:read'] }), me);
  app.use('/open', iamExpress(setup.open));
  app.get('/open/me', me);
  app.get('/open/write', requireScopes('items:write'), me);
  app.use('/meta', iamExpress(setup.meta));
  app.get('/meta/me', me);
  app.get('/meta/write', requireScopes('items:write'), me);
  app.get('/opts/me', iamExpress(setup.options), me);
  app.get('/hosted/me', iamExpress(setup.hosted), me);
  app.get('/bare/write', requireScopes('items:write'), me);
  app.get('/broken/me', iamExpress(setup.broken), me);
  app.get('/broken-sync/me', iamExpress(setup.brokenSync), me);
  const server = createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});

type Env = { Bindings: HttpBindings };

async function seenHono(c: Context<Env>): Promise<Seen> {
  const body = c.req.method === 'POST' ? ((await c.req.json()) as unknown) : undefined;
  await sleep(2);
  const ctx = c.get('agentContext') as AgentContext | undefined;
  const current = currentContext();
  const incoming = c.env.incoming;
  const distinct = incoming.headersDistinct['x-end-user-id'];
  return {
    userId: ctx?.userId ?? null,
    currentUserId: current?.userId ?? null,
    sameContext: ctx !== undefined && current === ctx,
    authenticated: ctx?.authenticated ?? null,
    endUser: c.req.header('x-end-user-id') ?? null,
    nodeEndUser: {
      raw: incoming.rawHeaders.filter((_, i, all) => i % 2 === 1 && (all[i - 1] as string).toLowerCase() === 'x-end-user-id'),
      header: (incoming.headers['x-end-user-id'] as string | undefined) ?? null,
      distinct: distinct ?? null,
    },
    ...(body !== undefined ? { body } : {}),
  };
}

adapterSuite('iam.hono()', async (setup) => {
  const me = async (c: Context<Env>) => c.json(await seenHono(c));
  const requireScopes = honoRequireScopes;
  const app = new Hono<Env>();
  app.use('/api/*', iamHono(setup.auth));
  app.get('/api/me', me);
  app.get('/api/write', requireScopes('items:write'), me);
  app.get('/api/admin', requireScopes('admin', 'items:write'), me);
  app.post('/api/echo', me);
  app.get('/scoped/me', iamHono(setup.auth, { requiredScopes: ['items:read'] }), me);
  app.use('/open/*', iamHono(setup.open));
  app.get('/open/me', me);
  app.get('/open/write', requireScopes('items:write'), me);
  app.use('/meta/*', iamHono(setup.meta));
  app.get('/meta/me', me);
  app.get('/meta/write', requireScopes('items:write'), me);
  app.get('/opts/me', iamHono(setup.options), me);
  app.get('/hosted/me', iamHono(setup.hosted), me);
  app.get('/bare/write', requireScopes('items:write'), me);
  app.get('/broken/me', iamHono(setup.broken), me);
  app.get('/broken-sync/me', iamHono(setup.brokenSync), me);
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});
