/**
 * Connect a user's account to an OAuth-protected API, then call the API with that user's token.
 *
 *   npx tsx examples/connect-account/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing, a real oidc-provider),
 * and a small "notes" API that publishes RFC 9728 protected-resource metadata (as an MCP server
 * does) and accepts only JWT access tokens issued for it. The token manager discovers the
 * authorization server from the API, registers itself dynamically (RFC 7591), runs the user's
 * consent with PKCE (headlessly here; in an app the user's browser follows the URL), stores the
 * account encrypted, and hands out access tokens, refreshing them when they near expiry.
 * It prints each step and exits 0.
 *
 * It imports the package by name, exactly as your own code would (`npm run build` makes dist/).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createTokenManager, generateEncryptionKey, isAgentIamError, type AuditEvent } from 'agent-iam';
import { createTestIdentityProvider } from 'agent-iam/testing';

async function listen(server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const log = (step: string, detail: unknown = ''): void => console.log(`- ${step}`, typeof detail === 'string' ? detail : JSON.stringify(detail));

// 1. The notes API. Its authorization server is learned once the identity provider runs.
let issuer = '';
let api = '';
const notes: Record<string, string[]> = { alice: ['buy milk', 'ship agent-iam'] };
const apiServer = createServer((req, res) => {
  void (async () => {
    const path = new URL(req.url ?? '/', api).pathname;
    if (path === '/.well-known/oauth-protected-resource/notes') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ resource: `${api}/notes`, authorization_servers: [issuer], scopes_supported: ['notes:read'] }));
      return;
    }
    if (path !== '/notes') return void res.writeHead(404).end();
    const auth = req.headers.authorization ?? '';
    try {
      if (!auth.startsWith('Bearer ')) throw new Error('no token');
      const { payload } = await jwtVerify(auth.slice(7), createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
        issuer,
        audience: `${api}/notes`,
        typ: 'at+jwt',
      });
      if (!String(payload.scope ?? '').split(' ').includes('notes:read')) return void res.writeHead(403).end();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ user: payload.sub, notes: notes[String(payload.sub)] ?? [] }));
    } catch {
      res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${api}/.well-known/oauth-protected-resource/notes"` }).end();
    }
  })();
});
api = await listen(apiServer);

// 2. A local identity provider (oidc-provider) with dynamic registration, PKCE and JWT access tokens.
const idp = await createTestIdentityProvider();
issuer = idp.issuer;
log('identity provider', issuer);
log('notes API', `${api}/notes`);

// 3. The token manager: one connection, found from the API's metadata, registered dynamically.
const events: AuditEvent[] = [];
const tokens = createTokenManager({
  encryptionKey: generateEncryptionKey(), // in production: a fixed key from your secret store
  audit: (e) => void events.push(e),
  connections: [
    {
      id: 'notes',
      resource: `${api}/notes`,
      registration: 'dynamic',
      redirectUri: 'http://127.0.0.1:8787/oauth/callback',
      scopes: ['notes:read'],
    },
  ],
});

let exitCode = 0;
try {
  // 4. Alice connects her account. An app redirects her browser to `url`; here the test IdP logs
  //    her in and consents headlessly, returning the callback URL the browser would land on.
  const { url } = await tokens.startAuthorization({ connection: 'notes', userId: 'alice' });
  log('authorization URL (PKCE S256)', `${new URL(url).origin}${new URL(url).pathname}?…`);
  const callbackUrl = await idp.authorize(url, { userId: 'alice' });
  const account = await tokens.completeAuthorization(callbackUrl);
  log('connected account (no tokens in it)', account);

  // 5. The agent calls the API on Alice's behalf with her access token.
  const { accessToken } = await tokens.getAccessToken({ connection: 'notes', userId: 'alice' });
  const res = await fetch(`${api}/notes`, { headers: { authorization: `Bearer ${accessToken}` } });
  const body = (await res.json()) as { user: string; notes: string[] };
  log(`GET /notes → ${res.status}`, body);
  if (res.status !== 200 || body.user !== 'alice' || body.notes.length !== 2) throw new Error('unexpected API answer');

  // 6. Bob has not connected: the token manager says so, with a URL to send him to.
  try {
    await tokens.getAccessToken({ connection: 'notes', userId: 'bob' });
    throw new Error('bob should need consent');
  } catch (e) {
    if (!isAgentIamError(e) || e.code !== 'CONSENT_REQUIRED' || !e.authorizationUrl) throw e;
    log('bob', `${e.code}: send him to the authorization URL`);
  }

  // 7. Alice disconnects: revoked at the server (RFC 7009) and locally.
  const revoked = await tokens.revoke({ connection: 'notes', userId: 'alice' });
  log('after revoke', revoked?.status);
  log('audit', events.map((e) => `${e.type}:${e.decision}`).join(' '));
  console.log(JSON.stringify({ ok: true, status: res.status, notes: body.notes, revoked: revoked?.status }));
} catch (e) {
  console.error('failed:', isAgentIamError(e) ? `${e.code} ${e.message}` : e);
  exitCode = 1;
} finally {
  await idp.close();
  apiServer.close();
}
process.exit(exitCode);
