/**
 * Hono on @hono/node-server: when nothing has read the request's headers before agentAuth, the
 * adapter verifies from the Node request and scrubs it, without building a `Headers` copy. Every
 * view a handler can take of X-End-User-ID must then hold only the verified id: Hono's lookup,
 * the materialised `Headers` (iteration, `c.req.header()`), a `Request` cloned from it, and the Node
 * request. And when an earlier middleware did read the headers, the general path must still hold.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentAuth } from '../../src/adapters/hono.js';
import { currentContext } from '../../src/context.js';
import { createVerifier, type Verifier } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken, type TestKey } from '../helpers/tokens.js';
import { rawRequest } from './harness.js';

let jwks: JwksServer;
let key: TestKey;
let verifier: Verifier;
let port: number;
let close: () => Promise<void>;

function views(c: Context) {
  const incoming = (c.env as { incoming: { headers: Record<string, unknown>; rawHeaders: string[] } }).incoming;
  const lookup = c.req.header('x-end-user-id') ?? null; // Hono's lookup, before anything materialises
  const all = c.req.header(); // materialises the headers
  const iterated = [...c.req.raw.headers].filter(([k]) => k === 'x-end-user-id').map(([, v]) => v);
  const cloned = new Request(c.req.raw).headers.get('x-end-user-id');
  return {
    lookup,
    all: all['x-end-user-id'] ?? null,
    iterated,
    cloned,
    node: incoming.headers['x-end-user-id'] ?? null,
    nodeRaw: incoming.rawHeaders.filter((_, i, a) => i % 2 === 1 && (a[i - 1] as string).toLowerCase() === 'x-end-user-id'),
    context: currentContext()?.userId ?? null,
    authorization: c.req.header('authorization') !== undefined,
  };
}

beforeAll(async () => {
  key = await createTestKey('ES256');
  jwks = await startJwksServer([key.publicJwk]);
  verifier = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] }], mode: 'open' });
  const app = new Hono();
  // /touched/*: a middleware reads the headers first (logging, CORS...), so a copy exists
  app.use('/touched/*', async (c, next) => {
    void c.req.header('accept');
    void [...c.req.raw.headers];
    await next();
  });
  app.use('*', agentAuth(verifier));
  app.get('/plain', (c) => c.json(views(c)));
  // whether anything before the route built the lazy request's Headers (before views() reads them)
  app.get('/probe', (c) => {
    const built = Object.getOwnPropertySymbols(c.req.raw).some((k) => k.description === 'headersKey' || k.description === 'requestCache');
    return c.json({ built, ...views(c) });
  });
  app.get('/touched/x', (c) => c.json(views(c)));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  close = () => new Promise((r) => server.close(() => r()));
});
afterAll(async () => {
  await close();
  await jwks.close();
});

describe('hono on node-server: X-End-User-ID with and without a headers copy before agentAuth', () => {
  for (const path of ['/plain', '/touched/x']) {
    it(`${path}: a token (first and cached) — every view holds only the verified id`, async () => {
      const token = await signToken(key, claims(jwks.origin, { sub: 'alice' }));
      for (let i = 0; i < 3; i++) {
        const res = await rawRequest(port, path, [
          ['X-End-User-ID', 'admin'],
          ['Authorization', `Bearer ${token}`],
          ['x-end-user-id', 'root'],
          ['X_End_User_ID', 'mallory'],
        ]);
        expect(res.status).toBe(200);
        expect(res.json).toEqual({
          lookup: 'alice',
          all: 'alice',
          iterated: ['alice'],
          cloned: 'alice',
          node: 'alice',
          nodeRaw: ['alice'],
          context: 'alice',
          authorization: true,
        });
      }
    });

    it(`${path}: open mode without a token — the spoofed header is gone everywhere`, async () => {
      const res = await rawRequest(port, path, [
        ['X-End-User-ID', 'admin'],
        ['x-end-user-id', 'root'],
      ]);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ lookup: null, all: null, iterated: [], cloned: null, node: null, nodeRaw: [], context: null });
    });

    it(`${path}: two Authorization lines are refused (400), a bad token is refused (401)`, async () => {
      const token = await signToken(key, claims(jwks.origin));
      const two = await rawRequest(port, path, [
        ['Authorization', `Bearer ${token}`],
        ['authorization', `Bearer ${token}`],
      ]);
      expect(two.status).toBe(400);
      const bad = await rawRequest(port, path, [['Authorization', `Bearer ${token}x`]]);
      expect(bad.status).toBe(401);
      expect(bad.text).not.toContain(token);
    });
  }

  it('agentAuth checks through the built Headers until one request shows the verified id there, then trusts the scrub alone', async () => {
    const token = await signToken(key, claims(jwks.origin, { sub: 'alice' }));
    const spoof: [string, string][] = [
      ['X-End-User-ID', 'admin'],
      ['x-end-user-id', 'root'],
    ];
    // one request with a token shows it (earlier tests of this file may have already)
    expect((await rawRequest(port, '/probe', [...spoof, ['Authorization', `Bearer ${token}`]])).json).toMatchObject({ lookup: 'alice', iterated: ['alice'] });
    for (let i = 0; i < 3; i++) {
      const withToken = await rawRequest(port, '/probe', [...spoof, ['Authorization', `Bearer ${token}`]]);
      expect(withToken.json).toMatchObject({ built: false, lookup: 'alice', all: 'alice', iterated: ['alice'], cloned: 'alice', node: 'alice', nodeRaw: ['alice'] });
      const open = await rawRequest(port, '/probe', spoof);
      expect(open.json).toMatchObject({ built: false, lookup: null, all: null, iterated: [], cloned: null, node: null, nodeRaw: [] });
    }
  });
});
