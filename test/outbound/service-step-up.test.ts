/**
 * Step-up for service tokens: a tool's 403 insufficient_scope with a `scope` makes a
 * clientCredentials tool obtain a token for the granted plus the challenged scopes and send once
 * more; later calls use that token; a tool that never accepts stops after two step-ups per scope set.
 * Real oidc-provider (JWT access tokens for a resource), real upstream on 127.0.0.1.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTokenManager, createToolFetch } from '../../src/index.js';
import { createTestIdentityProvider, type RegisteredClient, type TestIdentityProvider } from '../../src/testing/index.js';
import { startUpstream, type Upstream } from './upstream.js';

const API = 'https://reports.example.test';
let idp: TestIdentityProvider;
let client: RegisteredClient;
let upstream: Upstream;

const scopesOf = (authorization: unknown): string[] => {
  const token = String(authorization ?? '').replace(/^Bearer /, '');
  return String(decodeJwt(token).scope ?? '').split(' ').filter((s) => s !== '');
};

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  client = await idp.registerClient({ client_id: 'reporter' });
  upstream = await startUpstream();
  upstream.route('/reports', (req, res) => {
    const held = scopesOf(req.headers.authorization);
    if (!held.includes('reports:write')) {
      res.writeHead(403, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="reports:read reports:write"' }).end('{}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  upstream.route('/never', (_req, res) => {
    res.writeHead(403, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="reports:admin"' }).end('{}');
  });
}, 60_000);

afterAll(async () => {
  await Promise.all([upstream?.close(), idp?.close()]);
});

beforeEach(() => upstream.clear());

function setup() {
  const tokens = createTokenManager({ connections: [{ id: 'idp', issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string }] });
  return createToolFetch({
    agent: { id: 'agent' },
    tools: [{ name: 'reports', baseUrl: upstream.origin, auth: { type: 'clientCredentials', connection: 'idp', scopes: ['reports:read'], resource: API } }],
    policies: [{ agent: 'agent', tool: 'reports' }],
    tokens,
  });
}

describe('clientCredentials step-up', () => {
  it('403 insufficient_scope: a token for the union of scopes, one more send; the next call uses it directly', async () => {
    const toolFetch = setup();
    const res = await toolFetch(`${upstream.origin}/reports`, { method: 'POST', body: '{"q":1}' });
    expect(res.status).toBe(200);
    expect(upstream.received).toHaveLength(2);
    expect(scopesOf(upstream.received[0]?.headers.authorization)).toEqual(['reports:read']);
    expect(new Set(scopesOf(upstream.received[1]?.headers.authorization))).toEqual(new Set(['reports:read', 'reports:write']));
    expect(upstream.received[1]?.body.toString()).toBe('{"q":1}');
    upstream.clear();
    expect((await toolFetch(`${upstream.origin}/reports`)).status).toBe(200);
    expect(upstream.received).toHaveLength(1);
  });

  it('a tool that never accepts: one retry, then the 403 as is; once the token holds the challenged scope, no retry at all', async () => {
    const toolFetch = setup();
    const sends: number[] = [];
    for (let i = 0; i < 3; i++) {
      upstream.clear();
      const res = await toolFetch(`${upstream.origin}/never`);
      expect(res.status).toBe(403);
      sends.push(upstream.received.length);
    }
    expect(sends).toEqual([2, 1, 1]);
  });
});
