import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve, type HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { describe, expect, it } from 'vitest';
import { agentAuth, requireScopes } from '../../src/adapters/hono.js';
import { currentContext, type AgentContext } from '../../src/context.js';
import { createVerifier } from '../../src/inbound/verifier.js';
import { adapterSuite, type Seen } from './harness.js';

type Env = { Bindings: HttpBindings };

/** What the handler saw, through Hono's API and through the Node request behind it. */
async function seen(c: Context<Env>): Promise<Seen> {
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

const me = async (c: Context<Env>) => c.json(await seen(c));

adapterSuite('hono', async (setup) => {
  const app = new Hono<Env>();
  app.use('/api/*', agentAuth(setup.auth));
  app.get('/api/me', me);
  app.get('/api/write', requireScopes('items:write'), me);
  app.get('/api/admin', requireScopes('admin', 'items:write'), me);
  app.post('/api/echo', me);
  app.get('/scoped/me', agentAuth(setup.auth, { requiredScopes: ['items:read'] }), me);
  app.use('/open/*', agentAuth(setup.open));
  app.get('/open/me', me);
  app.get('/open/write', requireScopes('items:write'), me);
  app.use('/meta/*', agentAuth(setup.meta));
  app.get('/meta/me', me);
  app.get('/meta/write', requireScopes('items:write'), me);
  app.get('/opts/me', agentAuth(setup.options), me);
  app.get('/hosted/me', agentAuth(setup.hosted), me);
  app.get('/bare/write', requireScopes('items:write'), me);
  app.get('/broken/me', agentAuth(setup.broken), me);
  app.get('/broken-sync/me', agentAuth(setup.brokenSync), me);
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});

describe('hono: without a Node server behind it', () => {
  it('replaces X-End-User-ID when the request headers are immutable (Workers, Deno)', async () => {
    const { startJwksServer } = await import('../helpers/jwks-server.js');
    const { claims, createTestKey, signToken } = await import('../helpers/tokens.js');
    const key = await createTestKey('ES256');
    const jwks = await startJwksServer([key.publicJwk]);
    try {
      const verifier = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] }] });
      const app = new Hono();
      app.use(agentAuth(verifier));
      app.post('/', async (c) => c.json({ endUser: c.req.header('x-end-user-id'), user: currentContext()?.userId, body: await c.req.text() }));
      const token = await signToken(key, claims(jwks.origin, { sub: 'carol' }));
      // A Request whose headers throw on change, as in runtimes where incoming headers are immutable.
      const request = new Request('http://127.0.0.1/', {
        method: 'POST',
        body: 'payload',
        headers: { authorization: `Bearer ${token}`, 'x-end-user-id': 'admin' },
      });
      const frozen = new Proxy(request.headers, {
        get(target, prop) {
          if (prop === 'set' || prop === 'delete' || prop === 'append') {
            return () => {
              throw new TypeError('immutable');
            };
          }
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      Object.defineProperty(request, 'headers', { value: frozen });
      const res = await app.fetch(request);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ endUser: 'carol', user: 'carol', body: 'payload' });
    } finally {
      await jwks.close();
    }
  });
});

describe('hono: construction', () => {
  it('bad options throw CONFIG_INVALID when the middleware is built, not per request', () => {
    expect(() => agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'http://idp.example.com/jwks' }] })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'providers.0.jwksUri' }),
    );
    expect(() => agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }, { requiredScopes: [''] })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'agentAuth.requiredScopes.0' }),
    );
    expect(() => requireScopes()).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('returns named middleware functions', () => {
    expect(agentAuth({ providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] }).name).toBe('agentAuthMiddleware');
    expect(requireScopes('a').name).toBe('requireScopesMiddleware');
  });
});
