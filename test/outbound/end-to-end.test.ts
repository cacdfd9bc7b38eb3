/**
 * toolFetch with the SDK's real pieces: the token manager against a real oidc-provider
 * (agent-iam/testing), and createApprovals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { createTokenManager, createApprovals, createToolFetch, type TokenManager } from '../../src/index.js';
import { startUpstream, type Upstream } from './upstream.js';
import { auditLog, codeOf, userContext } from './helpers.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
let idp: TestIdentityProvider;
let tokens: TokenManager;
let up: Upstream;

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
  tokens = createTokenManager({
    connections: [
      { id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'read'] },
    ],
  });
  up = await startUpstream();
}, 60_000);
afterAll(async () => {
  await up.close();
  await idp.close();
});
beforeEach(() => up.clear());

describe('oauth2 tool with the real token manager and IdP', () => {
  it('CONSENT_REQUIRED with a real authorization URL, then the user’s own token after consent', async () => {
    const log = auditLog();
    const toolFetch = createToolFetch({
      agent: { id: 'agent-1' },
      tools: [{ name: 'corp-api', baseUrl: `${up.origin}/corp`, auth: { type: 'oauth2', connection: 'corp' } }],
      policies: [{ agent: 'agent-1', tool: 'corp-api' }],
      tokens,
      audit: log.sink,
    });
    const ctx = userContext('carol@example.com');
    const err = await toolFetch(`${up.origin}/corp/me`, { context: ctx }).catch((e) => e);
    expect(err.code).toBe('CONSENT_REQUIRED');
    expect(err.authorizationUrl.startsWith(`${idp.issuer}/`)).toBe(true);
    expect(up.received).toHaveLength(0);

    const callback = await idp.authorize(err.authorizationUrl, { userId: 'carol@example.com' });
    await tokens.completeAuthorization(callback);
    const res = await toolFetch(`${up.origin}/corp/me`, { context: ctx });
    expect(res.status).toBe(200);
    const expected = await tokens.getAccessToken({ connection: 'corp', userId: 'carol@example.com' });
    expect(up.received[0]!.headers.authorization).toBe(`Bearer ${expected.accessToken}`);
    expect(up.received[0]!.headers['x-end-user-id']).toBe('carol@example.com');
    // another user never gets carol's token
    expect(await codeOf(toolFetch(`${up.origin}/corp/me`, { context: userContext('dave@example.com') }))).toBe('CONSENT_REQUIRED');
    expect(up.received).toHaveLength(1);
    expect(JSON.stringify(log.events)).not.toContain(expected.accessToken);
  });
});

describe('approval-required policy with createApprovals', () => {
  it('pending → approve → passes once → replay refused; ttl approval passes until it ends; deny', async () => {
    const approvals = createApprovals();
    const toolFetch = createToolFetch({
      agent: { id: 'agent-1' },
      tools: [{ name: 'pay', baseUrl: up.origin, auth: { type: 'apiKey', key: 'sk_pay' } }],
      policies: [
        { agent: 'agent-1', tool: 'pay' },
        { agent: 'agent-1', tool: 'pay', capabilities: [{ method: 'POST', path: '/v1/refunds' }], effect: 'approval' },
      ],
      approvals,
    });
    const ctx = userContext('alice');
    const refund = (amount: number) =>
      toolFetch(`${up.origin}/v1/refunds?charge=ch_1`, { method: 'POST', body: JSON.stringify({ amount }), context: ctx });

    // reads are plain allows
    expect((await toolFetch(`${up.origin}/v1/charges`, { context: ctx })).status).toBe(200);

    const pending = await refund(100).catch((e) => e);
    expect(pending.code).toBe('APPROVAL_REQUIRED');
    expect((await approvals.get(pending.approvalId))?.summary).toMatchObject({ tool: 'pay', method: 'POST', path: '/v1/refunds', userId: 'alice' });
    expect(up.received).toHaveLength(1);

    await approvals.approve(pending.approvalId, { approver: 'boss' });
    expect(await codeOf(refund(999))).toBe('APPROVAL_REQUIRED'); // other body: a new approval
    expect((await refund(100)).status).toBe(200);
    expect(await codeOf(refund(100))).toBe('APPROVAL_REQUIRED'); // single use
    expect(up.received.filter((r) => r.method === 'POST')).toHaveLength(1);

    const again = await refund(100).catch((e) => e);
    await approvals.approve(again.approvalId, { approver: 'boss', ttlSeconds: 60 });
    expect((await refund(100)).status).toBe(200);
    expect((await refund(100)).status).toBe(200);

    const other = await refund(5).catch((e) => e);
    await approvals.deny(other.approvalId, { approver: 'boss' });
    expect(await codeOf(refund(5))).toBe('POLICY_DENIED');
    expect(up.received.filter((r) => r.method === 'POST')).toHaveLength(3);
  });
});

describe('service tokens with the real token manager and IdP', () => {
  const API = 'https://api.example.com';
  const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
  let idp2: TestIdentityProvider;
  let tokens2: TokenManager;
  beforeAll(async () => {
    idp2 = await createTestIdentityProvider({ resources: { [API]: { scopes: ['read', 'write', 'admin'] } } });
    const reg = await idp2.registerClient({
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', TE],
      response_types: ['code'],
      redirect_uris: [REDIRECT],
    });
    tokens2 = createTokenManager({
      connections: [{ id: 'corp', issuer: idp2.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT }],
    });
  }, 60_000);
  afterAll(() => idp2.close());

  it('tokenExchange: the verified caller’s token becomes a downscoped, audience-locked token for the tool', async () => {
    const { createVerifier } = await import('../../src/index.js');
    const { decodeJwt } = await import('jose');
    const verifier = createVerifier({ providers: [{ issuer: idp2.issuer, jwksUri: idp2.jwksUri, audiences: ['agent'] }] });
    const inbound = await idp2.tokenFor({ userId: 'alice', scopes: ['read', 'write'], audience: 'agent' });
    const ctx = await verifier.verify(new Request('http://127.0.0.1/agent', { headers: { authorization: `Bearer ${inbound}` } }));
    const toolFetch = createToolFetch({
      agent: { id: 'agent-1' },
      tools: [
        { name: 'api', baseUrl: `${up.origin}/tx`, auth: { type: 'tokenExchange', connection: 'corp', audience: API, scopes: ['read'] } },
        { name: 'greedy', baseUrl: `${up.origin}/greedy`, auth: { type: 'tokenExchange', connection: 'corp', audience: API, scopes: ['admin'] } },
        { name: 'svc', baseUrl: `${up.origin}/svc`, auth: { type: 'clientCredentials', connection: 'corp', scopes: ['read'], resource: API } },
      ],
      policies: [{ agent: 'agent-1', tool: '*' }],
      tokens: tokens2,
    });
    await toolFetch(`${up.origin}/tx/items`, { context: ctx });
    const sent = String(up.received[0]!.headers.authorization).replace(/^Bearer /, '');
    expect(sent).not.toBe(inbound); // the caller's own token never leaves
    const claims = decodeJwt(sent);
    expect(claims).toMatchObject({ sub: 'alice', aud: API, scope: 'read' });
    expect(claims.act).toBeTruthy();

    // asking for more than the caller holds: refused before anything is sent
    expect(await codeOf(toolFetch(`${up.origin}/greedy/x`, { context: ctx }))).toBe('SCOPE_ESCALATION');
    expect(up.received).toHaveLength(1);

    await toolFetch(`${up.origin}/svc/x`);
    const app = decodeJwt(String(up.received[1]!.headers.authorization).replace(/^Bearer /, ''));
    expect(app).toMatchObject({ aud: API, scope: 'read' });
  });
});
