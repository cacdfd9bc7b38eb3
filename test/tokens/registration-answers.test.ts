// Hostile RFC 7591 dynamic registration answers (issue 14, "the parts the attack did not reach"):
// oversized answers, a client_id or secret the SDK could not use, redirect URIs the server changed,
// and a token endpoint auth method the SDK does not support. A loopback authorization server.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTokenManager } from '../../src/index.js';
import { assertNoSecret, expectCode, REDIRECT } from './helpers.js';

type Answer = (res: ServerResponse, asked: Record<string, unknown>) => void;
let answer: Answer = () => {};
let origin = '';
let registrations: Array<Record<string, unknown>> = [];
let tokenRequests: Array<{ headers: IncomingHttpHeaders; body: URLSearchParams }> = [];
let server: Server;

const created = (body: Record<string, unknown> | ((asked: Record<string, unknown>) => Record<string, unknown>)): Answer => (res, asked) => {
  res.writeHead(201, { 'content-type': 'application/json' });
  res.end(JSON.stringify(typeof body === 'function' ? body(asked) : body));
};
/** What a well-behaved server answers: the metadata asked for, with an id and a secret. */
const echo = (over: Record<string, unknown> = {}): Answer =>
  created((asked) => ({ ...asked, client_id: 'client-1', client_secret: 'registered-secret-value', client_secret_expires_at: 0, ...over }));

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', origin).pathname;
      const text = Buffer.concat(chunks).toString();
      if (path === '/.well-known/oauth-authorization-server') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            issuer: origin,
            authorization_endpoint: `${origin}/authorize`,
            token_endpoint: `${origin}/token`,
            registration_endpoint: `${origin}/reg`,
            code_challenge_methods_supported: ['S256'],
            token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic', 'none'],
          }),
        );
        return;
      }
      if (path === '/reg') {
        const asked = JSON.parse(text) as Record<string, unknown>;
        registrations.push(asked);
        answer(res, asked);
        return;
      }
      if (path === '/token') {
        tokenRequests.push({ headers: req.headers, body: new URLSearchParams(text) });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'service-token', token_type: 'Bearer', expires_in: 600 }));
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});
beforeEach(() => {
  registrations = [];
  tokenRequests = [];
});

/** A connection that registers for the authorization-code flow. */
const userFlow = (extra: Record<string, unknown> = {}) =>
  createTokenManager({ retries: 0, connections: [{ id: 'd', issuer: origin, registration: 'dynamic', redirectUri: REDIRECT, ...extra }] });
/** A connection that registers for client credentials. */
const serviceFlow = (extra: Record<string, unknown> = {}) =>
  createTokenManager({ retries: 0, connections: [{ id: 's', issuer: origin, registration: 'dynamic', ...extra }] });

/** The answer is refused: OAUTH_ERROR, no authorization URL, nothing stored (the next call registers again). */
async function expectRefused(secrets: string[] = []): Promise<void> {
  const tokens = userFlow();
  const e = await expectCode(tokens.startAuthorization({ connection: 'd', userId: 'alice' }), 'OAUTH_ERROR');
  expect(e.oauthError).toBe('invalid_response');
  assertNoSecret(e, secrets);
  await expectCode(tokens.startAuthorization({ connection: 'd', userId: 'alice' }), 'OAUTH_ERROR');
  expect(registrations).toHaveLength(2);
  registrations = [];
}

describe('dynamic registration answers', () => {
  it('a well-behaved answer registers once and is used', async () => {
    answer = echo();
    const tokens = userFlow();
    const { url } = await tokens.startAuthorization({ connection: 'd', userId: 'alice' });
    expect(new URL(url).searchParams.get('client_id')).toBe('client-1');
    await tokens.startAuthorization({ connection: 'd', userId: 'bob' });
    expect(registrations).toHaveLength(1);
    expect(registrations[0]?.redirect_uris).toEqual([REDIRECT]);
  });

  it('an answer past maxResponseBytes is refused, declared or streamed', async () => {
    answer = echo({ padding: 'x'.repeat(300 * 1024) });
    await expectRefused();
    answer = (res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.write('{"client_id":"client-1","padding":"');
      for (let i = 0; i < 40; i++) res.write('y'.repeat(8 * 1024));
      res.end('"}');
    };
    await expectRefused();
  });

  it('a client_id that is missing, empty, not a string, huge or holds control characters is refused', async () => {
    for (const client_id of [undefined, '', 42, null, ['client-1'], { id: 1 }, 'c'.repeat(5000), 'client\r\nx-injected: 1', 'client\u0000']) {
      answer = created((asked) => ({ ...asked, client_id }));
      await expectRefused();
    }
  });

  it('a client_secret that is not a string, empty, huge or holds control characters is refused and never echoed', async () => {
    for (const client_secret of [42, '', 's'.repeat(10_000), 'secret-with\r\nnewline-value']) {
      answer = created((asked) => ({ ...asked, client_id: 'client-1', client_secret, client_secret_expires_at: 0 }));
      await expectRefused(typeof client_secret === 'string' ? [client_secret] : []);
    }
  });

  it('redirect_uris that differ from those asked for are refused: the server must not move where codes go', async () => {
    for (const redirect_uris of [['https://evil.example/cb'], [REDIRECT, 'https://evil.example/cb'], [], 'https://evil.example/cb', [42]]) {
      answer = echo({ redirect_uris });
      await expectRefused();
    }
    // the same URI (also when the server writes it in another but equal form), or none echoed: accepted
    for (const redirect_uris of [[REDIRECT], [REDIRECT.replace('http://127.0.0.1', 'HTTP://127.0.0.1')], undefined]) {
      answer = echo({ redirect_uris });
      const { url } = await userFlow().startAuthorization({ connection: 'd', userId: 'alice' });
      expect(new URL(url).searchParams.get('redirect_uri')).toBe(REDIRECT);
    }
    // a client-credentials registration asks for none: the server may not add any
    answer = echo({ redirect_uris: ['https://evil.example/cb'] });
    const e = await expectCode(serviceFlow().clientCredentials({ connection: 's' }), 'OAUTH_ERROR');
    expect(e.oauthError).toBe('invalid_response');
    expect(tokenRequests).toHaveLength(0);
  });

  it('a token_endpoint_auth_method the SDK does not support, or cannot use with what was issued, is refused before any token request', async () => {
    const cases: Array<[unknown, Record<string, unknown>]> = [
      ['tls_client_auth', {}],
      ['client_secret_jwt', {}],
      ['self_signed_tls_client_auth', {}],
      ['', {}],
      [42, {}],
      ['private_key_jwt', {}], // no private key configured: the SDK could not authenticate
      ['client_secret_post', { client_secret: undefined }], // a secret method without a secret
      ['client_secret_basic', { client_secret: undefined }],
    ];
    for (const [token_endpoint_auth_method, over] of cases) {
      answer = echo({ token_endpoint_auth_method, ...over });
      const e = await expectCode(serviceFlow().clientCredentials({ connection: 's' }), 'OAUTH_ERROR');
      expect(e.oauthError, String(token_endpoint_auth_method)).toBe('invalid_response');
      assertNoSecret(e, ['registered-secret-value']);
    }
    expect(tokenRequests).toHaveLength(0);
  });

  it('a supported method the server chose instead of the one asked for is used as registered', async () => {
    answer = echo({ token_endpoint_auth_method: 'client_secret_basic' });
    await serviceFlow().clientCredentials({ connection: 's' });
    expect(registrations[0]?.token_endpoint_auth_method).toBe('client_secret_post');
    const sent = tokenRequests[0]!;
    expect(String(sent.headers.authorization)).toMatch(/^Basic /);
    expect(sent.body.get('client_secret')).toBeNull();
    // 'none' with no secret issued: a public client
    answer = echo({ token_endpoint_auth_method: 'none', client_secret: undefined });
    await serviceFlow().clientCredentials({ connection: 's' });
    const pub = tokenRequests[1]!;
    expect(pub.headers.authorization).toBeUndefined();
    expect(pub.body.get('client_id')).toBe('client-1');
  });
});
