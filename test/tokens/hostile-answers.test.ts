// Hostile authorization-server answers (issue 14, items 2 and 4): oversized bodies, token values the
// SDK could never send, and `error` text of the server's choosing. A loopback token endpoint.
import { createServer, type ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenManager } from '../../src/index.js';
import { expectCode } from './helpers.js';

type Answer = (res: ServerResponse) => void;
let answer: Answer = () => {};
let origin = '';
let tokenCalls = 0;
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url === '/token') tokenCalls++;
    answer(res);
  });
});
const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => (res) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
};

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => server.close());

const manager = (extra: Record<string, unknown> = {}) =>
  createTokenManager({ retries: 0, ...extra, connections: [{ id: 'svc', tokenEndpoint: `${origin}/token`, clientId: 'c', clientSecret: 'client-secret-value' }] });

describe('answers from an authorization server', () => {
  it('an answer past maxResponseBytes is refused, declared (content-length) or streamed (chunked), and nothing is cached', async () => {
    const big = 'x'.repeat(2 * 1024 * 1024);
    answer = json(200, { access_token: 'tok', token_type: 'Bearer', expires_in: 3600, padding: big });
    let e = await expectCode(manager().clientCredentials({ connection: 'svc' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_response');
    expect(e.message).toContain('larger than 262144 bytes');
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"access_token":"tok","token_type":"Bearer","padding":"');
      for (let i = 0; i < 64; i++) res.write('y'.repeat(64 * 1024));
      res.end('"}');
    };
    const tokens = manager({ maxResponseBytes: 1024 * 1024 });
    e = await expectCode(tokens.clientCredentials({ connection: 'svc' }), 'OAUTH_ERROR');
    expect(e.message).toContain('larger than 1048576 bytes');
    answer = json(200, { access_token: 'small-token', token_type: 'Bearer', expires_in: 3600 });
    expect((await tokens.clientCredentials({ connection: 'svc' })).accessToken).toBe('small-token');
  });

  it('a token value with CR/LF, spaces or control characters is refused on receipt, never cached', async () => {
    const tokens = manager();
    for (const bad of ['abc\r\nX-Injected: 1', 'two words', 'tab\there', '', 'x'.repeat(20000)]) {
      answer = json(200, { access_token: bad, token_type: 'Bearer', expires_in: 3600 });
      const before = tokenCalls;
      const e = await expectCode(tokens.clientCredentials({ connection: 'svc' }), 'OAUTH_ERROR');
      expect(e.oauthError).toBe('invalid_response');
      await expectCode(tokens.clientCredentials({ connection: 'svc' }), 'OAUTH_ERROR');
      expect(tokenCalls - before).toBe(2); // not cached: asked again
    }
  });

  it('an error code of the server\'s choosing never reaches a message, a field or inspect(); registered codes do', async () => {
    answer = json(400, { error: 'LEAKED-ACCESS-TOKEN-abcdef123456', error_description: 'secret-description-text' });
    const e = await expectCode(manager().clientCredentials({ connection: 'svc' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('unrecognized_error');
    for (const form of [e.message, JSON.stringify(e), inspect(e), String(e.stack)]) {
      expect(form).not.toContain('LEAKED');
      expect(form).not.toContain('secret-description-text');
    }
    answer = json(400, { error: 'invalid_scope' });
    expect((await expectCode(manager().clientCredentials({ connection: 'svc' }), 'OAUTH_ERROR')).oauthError).toBe('invalid_scope');
  });

  it('oversized discovery metadata is refused too', async () => {
    answer = json(200, { issuer: origin, token_endpoint: `${origin}/token`, padding: 'z'.repeat(300 * 1024) });
    const tokens = createTokenManager({ retries: 0, connections: [{ id: 'd', issuer: origin, clientId: 'c', clientSecret: 'client-secret-value' }] });
    const e = await expectCode(tokens.clientCredentials({ connection: 'd' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_response');
    expect(e.message).toContain('larger than');
  });
});
