// Enterprise-managed authorization (ID-JAG): an enterprise IdP and an MCP authorization server on
// 127.0.0.1 that check what draft-ietf-oauth-identity-assertion-authz-grant asks of each side, with
// real JWTs signed and verified by jose. (oidc-provider has neither grant; the official MCP
// conformance suite runs the same flow in CI, scripts/conformance.mjs.)
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenManager, createToolFetch, createVerifier } from '../../src/index.js';
import { assertNoSecret, expectCode } from './helpers.js';

type Handler = (req: IncomingMessage, body: URLSearchParams, origin: string) => Promise<{ status?: number; body: unknown }>;

async function server(handler: Handler): Promise<{ origin: string; close: () => void; hits: string[] }> {
  let origin = '';
  const hits: string[] = [];
  const s: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      hits.push(`${req.method} ${req.url}`);
      handler(req, new URLSearchParams(raw), origin).then(
        (r) => {
          res.statusCode = r.status ?? 200;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(r.body));
        },
        () => {
          res.statusCode = 500;
          res.end('{}');
        },
      );
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(s.address() as { port: number }).port}`;
  return { origin, close: () => s.close(), hits };
}

const MCP_CLIENT = 'mcp-agent';
const MCP_SECRET = 'mcp-agent-secret-value';
let idpKeys: Awaited<ReturnType<typeof generateKeyPair>>;
let idp: Awaited<ReturnType<typeof server>>;
let as: Awaited<ReturnType<typeof server>>;
let mcp: Awaited<ReturnType<typeof server>>;
let idpMode: 'ok' | 'wrong-type' = 'ok';
const seenAtAs: URLSearchParams[] = [];
const audit: unknown[] = [];

async function idToken(sub: string, expSeconds = 300): Promise<string> {
  return new SignJWT({ email: `${sub}@acme.example` })
    .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
    .setIssuer(idp.origin)
    .setSubject(sub)
    .setAudience('agent-at-idp')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expSeconds)
    .sign(idpKeys.privateKey);
}

beforeAll(async () => {
  idpKeys = await generateKeyPair('ES256');
  idp = await server(async (req, b) => {
    if (req.method === 'GET') return { body: { keys: [{ ...(await exportJWK(idpKeys.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }] } };
    if (b.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange') return { status: 400, body: { error: 'unsupported_grant_type' } };
    if (b.get('requested_token_type') !== 'urn:ietf:params:oauth:token-type:id-jag' || b.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:id_token') {
      return { status: 400, body: { error: 'invalid_request' } };
    }
    if (b.get('client_id') !== 'agent-at-idp' || b.get('audience') !== as.origin || b.get('resource') !== `${mcp.origin}/mcp`) return { status: 400, body: { error: 'invalid_target' } };
    let sub: string;
    try {
      sub = (await jwtVerify(b.get('subject_token') ?? '', idpKeys.publicKey, { issuer: idp.origin, audience: 'agent-at-idp' })).payload.sub as string;
    } catch {
      return { status: 400, body: { error: 'invalid_grant' } };
    }
    const jag = await new SignJWT({ client_id: MCP_CLIENT, resource: b.get('resource'), scope: b.get('scope') ?? undefined })
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt' })
      .setIssuer(idp.origin)
      .setSubject(sub)
      .setAudience(b.get('audience') as string)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(crypto.randomUUID())
      .sign(idpKeys.privateKey);
    const issued = idpMode === 'ok' ? 'urn:ietf:params:oauth:token-type:id-jag' : 'urn:ietf:params:oauth:token-type:access_token';
    return { body: { access_token: jag, issued_token_type: issued, token_type: 'N_A', expires_in: 300 } };
  });
  as = await server(async (req, b, origin) => {
    if (req.method === 'GET') {
      return { body: { issuer: origin, token_endpoint: `${origin}/token`, grant_types_supported: ['urn:ietf:params:oauth:grant-type:jwt-bearer'], token_endpoint_auth_methods_supported: ['client_secret_basic'] } };
    }
    seenAtAs.push(b);
    if (req.headers.authorization !== `Basic ${btoa(`${MCP_CLIENT}:${MCP_SECRET}`)}`) return { status: 401, body: { error: 'invalid_client' } };
    if (b.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return { status: 400, body: { error: 'unsupported_grant_type' } };
    try {
      const { payload, protectedHeader } = await jwtVerify(b.get('assertion') ?? '', idpKeys.publicKey, { issuer: idp.origin, audience: origin, typ: 'oauth-id-jag+jwt' });
      if (payload.client_id !== MCP_CLIENT || payload.resource !== `${mcp.origin}/mcp` || protectedHeader.typ !== 'oauth-id-jag+jwt') throw new Error('claims');
      return { body: { access_token: `at-${payload.sub}-${crypto.randomUUID()}`, token_type: 'Bearer', expires_in: 600, scope: b.get('scope') ?? '' } };
    } catch {
      return { status: 400, body: { error: 'invalid_grant' } };
    }
  });
  mcp = await server(async (_req, _b, origin) => ({ body: { resource: `${origin}/mcp`, authorization_servers: [as.origin] } }));
});
afterAll(() => {
  idp?.close();
  as?.close();
  mcp?.close();
});

function manager() {
  return createTokenManager({
    retries: 0,
    audit: (e) => void audit.push(e),
    connections: [
      { id: 'okta', tokenEndpoint: `${idp.origin}/token`, clientId: 'agent-at-idp' },
      { id: 'mcp', resource: `${mcp.origin}/mcp`, clientId: MCP_CLIENT, clientSecret: MCP_SECRET, scopes: ['tools:read'] },
    ],
  });
}

describe('enterpriseToken (ID-JAG)', () => {
  it('exchanges the ID token for an ID-JAG at the IdP and redeems it with jwt-bearer at the resource\'s authorization server; cached per ID token', async () => {
    const tokens = manager();
    const alice = await idToken('alice');
    const idpBefore = idp.hits.length;
    const t = await tokens.enterpriseToken({ connection: 'mcp', idp: 'okta', idToken: alice });
    expect(t.accessToken.startsWith('at-alice-')).toBe(true);
    expect(t.scopes).toEqual(['tools:read']);
    const redeemed = seenAtAs.at(-1) as URLSearchParams;
    expect(decodeJwt(redeemed.get('assertion') as string).aud).toBe(as.origin);
    expect(redeemed.get('resource')).toBe(`${mcp.origin}/mcp`);
    expect(mcp.hits).toContain('GET /.well-known/oauth-protected-resource/mcp');
    // Cached: the same ID token and scopes send nothing; another user's ID token is a new exchange.
    expect((await tokens.enterpriseToken({ connection: 'mcp', idp: 'okta', idToken: alice })).accessToken).toBe(t.accessToken);
    expect(idp.hits.length - idpBefore).toBe(1);
    const bob = await tokens.enterpriseToken({ connection: 'mcp', idp: 'okta', idToken: await idToken('bob') });
    expect(bob.accessToken.startsWith('at-bob-')).toBe(true);
    expect(idp.hits.length - idpBefore).toBe(2);
    for (const e of audit) assertNoSecret(e, [alice, t.accessToken, MCP_SECRET]);
  });

  it('refuses an IdP answer that is not an ID-JAG before anything reaches the authorization server; a bad ID token is invalid_grant; no token is TOKEN_MISSING', async () => {
    const tokens = manager();
    const before = seenAtAs.length;
    idpMode = 'wrong-type';
    try {
      const e = await expectCode(tokens.enterpriseToken({ connection: 'mcp', idp: 'okta', idToken: await idToken('carol') }), 'OAUTH_ERROR');
      expect(e.oauthError).toBe('invalid_response');
      expect(seenAtAs.length).toBe(before);
    } finally {
      idpMode = 'ok';
    }
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer(idp.origin).setSubject('mallory').setAudience('agent-at-idp').setExpirationTime('5m').sign((await generateKeyPair('ES256')).privateKey);
    const bad = await expectCode(tokens.enterpriseToken({ connection: 'mcp', idp: 'okta', idToken: forged }), 'OAUTH_ERROR');
    expect(bad.oauthError).toBe('invalid_grant');
    assertNoSecret(bad, [forged]);
    await expectCode(tokens.enterpriseToken({ connection: 'mcp', idp: 'okta' }), 'TOKEN_MISSING');
    await expectCode(tokens.enterpriseToken({ connection: 'mcp', idp: 'nope', idToken: 'x' }), 'REQUEST_INVALID');
  });

  it('an enterprise tool: toolFetch uses the caller\'s verified ID token from the context, sends the issued token, and forwards nothing else', async () => {
    const tokens = manager();
    const seen: string[] = [];
    const tool = await server(async (req) => {
      seen.push(String(req.headers.authorization));
      return { body: { ok: true } };
    });
    try {
      const toolFetch = createToolFetch({
        agent: { id: 'agent' },
        tools: [{ name: 'wiki', baseUrl: tool.origin, auth: { type: 'enterprise', connection: 'mcp', idp: 'okta' } }],
        policies: [{ agent: 'agent', tool: 'wiki' }],
        tokens,
      });
      const verifier = createVerifier({ providers: [{ issuer: idp.origin, jwksUri: `${idp.origin}/jwks`, audiences: ['agent-at-idp'], userIdClaim: 'sub' }] });
      const dana = await idToken('dana');
      const context = await verifier.verify({ headers: { authorization: `Bearer ${dana}` } });
      const res = await toolFetch(`${tool.origin}/pages`, { context });
      expect(res.status).toBe(200);
      expect(seen[0]?.startsWith('Bearer at-dana-')).toBe(true);
      expect(seen.join(' ')).not.toContain(dana);
      // Without a user the tool is refused before anything is sent; an unknown idp id fails at construction.
      await expectCode(toolFetch(`${tool.origin}/pages`), 'POLICY_DENIED');
      await expectCode(() => createToolFetch({ agent: { id: 'agent' }, tools: [{ name: 'wiki', baseUrl: tool.origin, auth: { type: 'enterprise', connection: 'mcp', idp: 'oktaa' } }], policies: [{ agent: 'agent', tool: 'wiki' }], tokens }), 'CONFIG_INVALID');
      expect(seen).toHaveLength(1);
    } finally {
      tool.close();
    }
  });
});
