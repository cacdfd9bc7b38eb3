import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express, { type Request, type Response } from 'express';
import { describe, expect, it } from 'vitest';
import { agentAuth, requireScopes } from '../../src/adapters/express.js';
import { currentContext } from '../../src/context.js';
import { adapterSuite, type Seen } from './harness.js';

/** What the handler saw, through Express's API and through Node's own request object. */
async function seen(req: Request): Promise<Seen> {
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

const me = async (req: Request, res: Response) => {
  res.json(await seen(req));
};

adapterSuite('express', async (setup) => {
  const app = express();
  app.use(express.json());
  app.use('/api', agentAuth(setup.auth));
  app.get('/api/me', me);
  app.get('/api/write', requireScopes('items:write'), me);
  app.get('/api/admin', requireScopes('admin', 'items:write'), me);
  app.post('/api/echo', me);
  app.get('/scoped/me', agentAuth(setup.auth, { requiredScopes: ['items:read'] }), me);
  app.use('/open', agentAuth(setup.open));
  app.get('/open/me', me);
  app.get('/open/write', requireScopes('items:write'), me);
  app.use('/meta', agentAuth(setup.meta));
  app.get('/meta/me', me);
  app.get('/meta/write', requireScopes('items:write'), me);
  app.get('/opts/me', agentAuth(setup.options), me);
  app.get('/hosted/me', agentAuth(setup.hosted), me);
  app.get('/bare/write', requireScopes('items:write'), me);
  app.get('/broken/me', agentAuth(setup.broken), me);
  app.get('/broken-sync/me', agentAuth(setup.brokenSync), me);
  const server = createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});

describe('express: construction', () => {
  it('bad options throw CONFIG_INVALID when the middleware is built, not per request', () => {
    expect(() => agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'http://idp.example.com/jwks' }] })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'providers.0.jwksUri' }),
    );
    expect(() => agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }, { requiredScopes: ['a b'] })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'agentAuth.requiredScopes.0' }),
    );
    expect(() => agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }, { bogus: true } as never)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    expect(() => requireScopes()).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'requireScopes' }));
    expect(() => requireScopes('ok', 'bad"quote')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'requireScopes.1' }));
  });

  it('returns named middleware functions', () => {
    const mw = agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] });
    expect(mw.name).toBe('agentAuthMiddleware');
    expect(requireScopes('a').name).toBe('requireScopesMiddleware');
  });
});
