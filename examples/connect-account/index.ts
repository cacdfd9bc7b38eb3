/**
 * Connect a user's account to an OAuth-protected API, then let the agent call that API for her
 * through `toolFetch`: the SDK injects her access token and forwards her id; the agent code never
 * holds a token.
 *
 *   npx tsx examples/connect-account/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing, a real oidc-provider),
 * and a small "notes" API that publishes RFC 9728 protected-resource metadata (as an MCP server
 * does), verifies every bearer token (issued for it, signed by the identity provider, `notes:read`)
 * and checks that `X-End-User-ID` names the token's user. The token manager discovers the
 * authorization server from the API, registers itself dynamically (RFC 7591), runs the user's
 * consent with PKCE (headlessly here; in an app the user's browser follows the URL) and stores the
 * account encrypted. It prints each step (never a token or a code) and exits 0 (1 if anything was
 * not as expected).
 *
 * It imports the package by name, exactly as your own code would.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createTokenManager,
  createToolFetch,
  createVerifier,
  generateEncryptionKey,
  isAgentIamError,
  renderError,
  runWithContext,
  type AgentContext,
  type AuditEvent,
  type Verifier,
} from 'agent-iam';
import { createTestIdentityProvider } from 'agent-iam/testing';

const log = (step: string, detail: unknown = ''): void => console.log(`- ${step}`, typeof detail === 'string' ? detail : JSON.stringify(detail));
const where = (url: string): string => `${new URL(url).origin}${new URL(url).pathname}?…`; // no state, no PKCE challenge

// 1. A local identity provider (oidc-provider) with dynamic registration, PKCE and JWT access tokens.
const idp = await createTestIdentityProvider();

// 2. The notes API, a resource server of that identity provider. It trusts nothing it cannot verify.
const notes: Record<string, string[]> = { alice: ['buy milk', 'ship agent-iam'] };
let apiCalls = 0; // requests that reached /notes
let apiVerifier: Verifier;
const apiServer = createServer((req, res) => {
  void (async () => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path === '/.well-known/oauth-protected-resource/notes') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ resource: `${api}/notes`, authorization_servers: [idp.issuer], scopes_supported: ['notes:read'] }));
      return;
    }
    if (path !== '/notes') return void res.writeHead(404).end();
    apiCalls++;
    try {
      const user = await apiVerifier.verify({ headers: req.headers, rawHeaders: req.rawHeaders }, { requiredScopes: ['notes:read'] });
      const forwarded = req.headers['x-end-user-id'];
      if (forwarded !== user.userId) return void res.writeHead(403).end('X-End-User-ID does not match the token'); // identity must match
      console.log(`  [notes API] GET /notes: valid token of ${user.userId}, X-End-User-ID ${forwarded}`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ user: user.userId, notes: notes[user.userId as string] ?? [] }));
    } catch (e) {
      const { status, headers, body } = renderError(e); // 401/403 with WWW-Authenticate (resource_metadata)
      res.writeHead(status, headers).end(JSON.stringify(body));
    }
  })();
});
await new Promise<void>((resolve) => apiServer.listen(0, '127.0.0.1', resolve));
const api = `http://127.0.0.1:${(apiServer.address() as AddressInfo).port}`;
apiVerifier = createVerifier({
  providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [`${api}/notes`], userIdClaim: 'sub' }],
  resourceMetadataUrl: `${api}/.well-known/oauth-protected-resource/notes`,
});
log('identity provider', idp.issuer);
log('notes API', `${api}/notes`);

// 3. The agent: a token manager with one connection, found from the API's metadata and registered
//    dynamically, and a toolFetch whose `notes` tool uses each user's own connected account.
const events: AuditEvent[] = [];
const audit = (e: AuditEvent): void => void events.push(e);
const tokens = createTokenManager({
  encryptionKey: generateEncryptionKey(), // in production: a fixed key from your secret store
  audit,
  connections: [
    { id: 'notes', resource: `${api}/notes`, registration: 'dynamic', redirectUri: 'http://127.0.0.1:8787/oauth/callback', scopes: ['notes:read'] },
  ],
});
const toolFetch = createToolFetch({
  agent: { id: 'assistant' },
  tools: [
    {
      name: 'notes',
      baseUrl: `${api}/notes`,
      auth: { type: 'oauth2', connection: 'notes' }, // the user's token, from the token manager
      capabilities: [{ method: 'GET', path: '/notes' }],
    },
  ],
  policies: [{ agent: 'assistant', tool: 'notes' }],
  tokens,
  audit,
});

// Who is asking: in an app, `agentAuth` (agent-iam/express or /hono) verifies the caller's token and
// runs the handler inside that context. Here the script verifies a token for each user itself.
const agentVerifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['urn:example:assistant'], userIdClaim: 'sub' }] });
const contextOf = async (userId: string): Promise<AgentContext> =>
  agentVerifier.verify({ headers: { authorization: `Bearer ${await idp.tokenFor({ userId, audience: 'urn:example:assistant' })}` } });

// The agent's tool call: plain fetch semantics, no token in sight.
async function listNotes(user: AgentContext): Promise<{ status: number; notes: string[] }> {
  return runWithContext(user, async () => {
    const res = await toolFetch(`${api}/notes`);
    const body = res.ok ? ((await res.json()) as { notes: string[] }) : { notes: [] };
    return { status: res.status, notes: body.notes };
  });
}

/** Runs a call that must fail with CONSENT_REQUIRED before reaching the API; returns the URL to send the user to. */
async function expectConsentRequired(who: string, call: () => Promise<unknown>): Promise<string> {
  const before = apiCalls;
  try {
    await call();
  } catch (e) {
    if (isAgentIamError(e) && e.code === 'CONSENT_REQUIRED' && e.authorizationUrl !== undefined && apiCalls === before) {
      const url = new URL(e.authorizationUrl);
      const expected = url.origin === idp.issuer && url.searchParams.get('code_challenge_method') === 'S256' && url.searchParams.get('resource') === `${api}/notes`;
      if (!expected) throw new Error('unexpected authorization URL');
      log(`${who}: ${e.code} (${e.status}), nothing sent to the API; send the user to`, where(e.authorizationUrl));
      return e.authorizationUrl;
    }
    throw e;
  }
  throw new Error(`${who}: expected CONSENT_REQUIRED`);
}

let exitCode = 0;
try {
  const alice = await contextOf('alice');
  const bob = await contextOf('bob');

  // 4. Alice asks; she has not connected her notes account yet, so the SDK answers CONSENT_REQUIRED
  //    with an authorization URL (PKCE S256, resource = the API). An app redirects her browser there;
  //    here the test IdP logs her in and consents headlessly, returning the callback URL the browser
  //    would land on, which the app's callback route hands to completeAuthorization.
  const authorizationUrl = await expectConsentRequired('alice', () => listNotes(alice));
  const account = await tokens.completeAuthorization(await idp.authorize(authorizationUrl, { userId: 'alice' }));
  log('alice connected (the account holds no tokens)', account);

  // 5. The same call now goes through: the SDK injects alice's access token and X-End-User-ID.
  const first = await listNotes(alice);
  log(`alice: GET /notes → ${first.status}`, first.notes);
  if (first.status !== 200 || first.notes.length !== 2) throw new Error('unexpected API answer');

  // 6. Bob has not connected: alice's account is hers alone.
  await expectConsentRequired('bob', () => listNotes(bob));

  // 7. Alice disconnects: the grant is revoked at the server (RFC 7009) and locally; her next call
  //    needs consent again and never reaches the API.
  const revoked = await tokens.revoke({ connection: 'notes', userId: 'alice' });
  log('alice disconnected', revoked?.status);
  await expectConsentRequired('alice after revoke', () => listNotes(alice));

  log('audit', events.map((e) => `${e.type}:${e.decision}`).join(' '));
  console.log(JSON.stringify({ ok: true, status: first.status, notes: first.notes, bob: 'CONSENT_REQUIRED', revoked: revoked?.status, afterRevoke: 'CONSENT_REQUIRED', apiCalls }));
} catch (e) {
  console.error('failed:', isAgentIamError(e) ? `${e.code} ${e.message}` : e);
  exitCode = 1;
} finally {
  await idp.close();
  apiServer.close();
}
process.exit(exitCode);
