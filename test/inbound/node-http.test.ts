/**
 * Over real Node HTTP: Node keeps only one of two `Authorization` lines in `req.headers`; the
 * verifier sees both through `rawHeaders` and refuses the request.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderError } from '../../src/errors.js';
import { createVerifier, type Verifier } from '../../src/inbound/index.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { claims, createTestKey, signToken } from '../helpers/tokens.js';

let jwks: JwksServer;
let server: Server;
let port: number;
let verifier: Verifier;
let token: string;

beforeAll(async () => {
  const key = await createTestKey('ES256');
  jwks = await startJwksServer([key.publicJwk]);
  token = await signToken(key, claims(jwks.origin));
  verifier = createVerifier({ providers: [{ issuer: jwks.origin, jwksUri: jwks.url, audiences: ['api://test'] }] });
  server = createServer((req, res) => {
    verifier
      .verify({ headers: req.headers, rawHeaders: req.rawHeaders, method: req.method, url: req.url })
      .then((ctx) => {
        const body = JSON.stringify({ userId: ctx.userId });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      })
      .catch((e: unknown) => {
        const r = renderError(e);
        const body = JSON.stringify(r.body);
        res.writeHead(r.status, { ...r.headers, 'content-length': Buffer.byteLength(body) }).end(body);
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await jwks.close();
});

/** Send a raw HTTP/1.1 request and return the status line and body. */
function rawRequest(headerLines: string[]): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (c) => (data += c.toString('utf8')));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), head, body });
    });
    socket.write(['GET /x HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close', ...headerLines, '', ''].join('\r\n'));
  });
}

describe('verifier behind node:http', () => {
  it('one Authorization header passes', async () => {
    const res = await rawRequest([`Authorization: Bearer ${token}`]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ userId: 'user-1' });
  });

  it('two Authorization lines (which req.headers collapses to one) are refused with 400 invalid_request', async () => {
    const res = await rawRequest([`Authorization: Bearer ${token}`, `authorization: Bearer ${token}`]);
    expect(res.status).toBe(400);
    expect(res.head.toLowerCase()).toContain('www-authenticate: bearer error="invalid_request"');
    expect(JSON.parse(res.body)).toMatchObject({ error: 'TOKEN_MALFORMED' });
    expect(res.body).not.toContain(token);
  });
});
