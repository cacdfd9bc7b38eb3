/**
 * The verified-token cache under floods (issue 13): its entry count never passes `cacheSize`,
 * refused tokens are never stored, the raw token is attached once per cached token, and a hit
 * through the Express and Hono adapters still gets the exp, scope and route checks.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentAuth as expressAgentAuth, requireScopes as expressRequireScopes } from '../../src/adapters/express.js';
import { agentAuth as honoAgentAuth, requireScopes as honoRequireScopes } from '../../src/adapters/hono.js';
import { rawTokenOf } from '../../src/context.js';
import { createVerifier, verifierCacheSize, type Verifier, type VerifierOptions } from '../../src/inbound/verifier.js';
import { testClock } from '../helpers/clock.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { b64url, claims, createTestKey, signToken, type TestKey } from '../helpers/tokens.js';

let s: JwksServer;
let key: TestKey;
let other: TestKey;
beforeAll(async () => {
  key = await createTestKey('ES256');
  other = await createTestKey('ES256'); // not in the key set
  s = await startJwksServer([key.publicJwk]);
});
afterAll(() => s.close());

const req = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const v = (extra: Partial<VerifierOptions> = {}) =>
  createVerifier({ providers: [{ issuer: s.origin, jwksUri: s.url, audiences: ['api://test'], clockTolerance: 0 }], ...extra });

describe('verified-token cache bound', () => {
  it('a flood of distinct valid tokens keeps the entry count at cacheSize; the newest stay', async () => {
    const verifier = v({ cacheSize: 8 });
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => signToken(key, claims(s.origin, { sub: `u${i}` }))));
    for (const t of tokens) {
      await verifier.verify(req(t));
      expect(verifierCacheSize(verifier)).toBeLessThanOrEqual(8);
    }
    expect(verifierCacheSize(verifier)).toBe(8);
    const last = tokens.at(-1) as string;
    expect((await verifier.verify(req(last))).claims).toBe((await verifier.verify(req(last))).claims);
  });

  it('refused tokens are never stored: bad signature, unknown key, expired, wrong audience, unknown issuer, malformed', async () => {
    const clock = testClock();
    const verifier = v({ cacheSize: 4 });
    const now = Math.floor(clock.now() / 1000);
    // iat and exp from the frozen test clock: a wall-clock iat a second past it would be "issued in the future"
    const at = (extra: Record<string, unknown> = {}) => claims(s.origin, { iat: now, exp: now + 300, ...extra });
    const good = await signToken(key, at());
    await verifier.verify(req(good));
    expect(verifierCacheSize(verifier)).toBe(1);
    const [header, , signature] = good.split('.') as [string, string, string];
    const refused: Array<[string, string]> = [];
    for (let i = 0; i < 10; i++) {
      refused.push([`${header}.${b64url(at({ sub: `forged-${i}` }))}.${signature}`, 'TOKEN_SIGNATURE_INVALID']);
      refused.push([await signToken(other, at({ sub: `other-${i}` }), { kid: key.kid }), 'TOKEN_SIGNATURE_INVALID']);
      refused.push([await signToken(key, at({ sub: `old-${i}`, iat: now - 600, exp: now - 1 - i })), 'TOKEN_EXPIRED']);
      refused.push([await signToken(key, at({ sub: `aud-${i}`, aud: `api://other-${i}` })), 'TOKEN_AUDIENCE_MISMATCH']);
      refused.push([await signToken(key, claims(`https://idp-${i}.example`)), 'TOKEN_ISSUER_UNKNOWN']);
      refused.push([`${header}.${b64url(`not json ${i}`)}.${signature}`, 'TOKEN_MALFORMED']);
    }
    for (const [token, code] of refused) await expect(verifier.verify(req(token))).rejects.toMatchObject({ code });
    expect(verifierCacheSize(verifier)).toBe(1); // only the good one
    // and they stay refused when sent again (nothing was remembered as valid)
    for (const [token, code] of refused.slice(0, 6)) await expect(verifier.verify(req(token))).rejects.toMatchObject({ code });
    expect(verifierCacheSize(verifier)).toBe(1);
  });

  it('the raw token is shared by every context of one cached token, and distinct tokens keep their own', async () => {
    const verifier = v();
    const [a, b] = await Promise.all(['a', 'b'].map((sub) => signToken(key, claims(s.origin, { sub }))));
    const a1 = await verifier.verify(req(a as string));
    const a2 = await verifier.verify(req(a as string));
    const b1 = await verifier.verify(req(b as string));
    expect(a2).not.toBe(a1);
    expect(rawTokenOf(a1)).toBe(a);
    expect(rawTokenOf(a2)).toBe(a);
    expect(rawTokenOf(b1)).toBe(b);
    expect(Object.keys(a2)).not.toContain('token');
    expect(JSON.stringify(a2)).not.toContain((a as string).split('.')[2]);
  });
});

/** An app per framework: `/read` needs nothing more, `/write` needs `write`, all behind agentAuth with `read`. */
async function expressServer(verifier: Verifier): Promise<Server> {
  const app = express();
  app.use(expressAgentAuth(verifier, { requiredScopes: ['read'] }));
  app.get('/read', (req, res) => {
    res.json({ user: req.agentContext?.userId });
  });
  app.get('/write', expressRequireScopes('write'), (_req, res) => {
    res.json({ wrote: true });
  });
  const server = createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function honoServer(verifier: Verifier): Promise<Server> {
  const app = new Hono();
  app.use(honoAgentAuth(verifier, { requiredScopes: ['read'] }));
  app.get('/read', (c) => c.json({ user: c.get('agentContext').userId }));
  app.get('/write', honoRequireScopes('write'), (c) => c.json({ wrote: true }));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await once(server, 'listening');
  return server;
}

describe.each([
  ['express', expressServer],
  ['hono', honoServer],
] as const)('%s: checks on a cache hit', (_name, start) => {
  it('a scope-missing route still answers 403 on a hit, the middleware scopes too, and the token fails after exp', async () => {
    const clock = testClock();
    const verifier = v();
    const server = await start(verifier);
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const exp = Math.floor(clock.now() / 1000) + 60;
      const reader = await signToken(key, claims(s.origin, { sub: 'reader', scope: 'read', iat: exp - 120, exp }));
      // iat from the test clock too: a wall-clock iat a second past the frozen clock is "issued in the future"
      const other = await signToken(key, claims(s.origin, { sub: 'writer-less', scope: 'profile', iat: exp - 120, exp }));
      const get = (path: string, token: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
      for (let i = 0; i < 3; i++) {
        // the first request verifies and caches; the next ones are hits
        const ok = await get('/read', reader);
        expect(ok.status).toBe(200);
        expect(await ok.json()).toEqual({ user: 'reader' });
        const denied = await get('/write', reader);
        expect(denied.status).toBe(403);
        expect(((await denied.json()) as { error: string }).error).toBe('INSUFFICIENT_SCOPE');
        expect(denied.headers.get('www-authenticate')).toContain('scope="write"');
        const noRead = await get('/read', other);
        expect(noRead.status).toBe(403);
        await noRead.arrayBuffer();
      }
      expect(verifierCacheSize(verifier)).toBe(2);
      clock.set(exp * 1000); // exp reached: the cached decision ends with the token
      const expired = await get('/read', reader);
      expect(expired.status).toBe(401);
      expect(((await expired.json()) as { error: string }).error).toBe('TOKEN_EXPIRED');
      expect(verifierCacheSize(verifier)).toBe(1);
    } finally {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    }
  });
});
