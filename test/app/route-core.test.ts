/**
 * The framework-free route core: option validation at construction, path matching (hostile
 * segments are not ours), and failures rendered as responses, never thrown. The HTTP flows
 * themselves are in test/adapters/routes-*.test.ts and test/app/agent-iam.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createTestContext } from '../../src/testing/index.js';
import { anonymousContext, createApprovalRoutes, createApprovals, createConsentRoutes, createTokenManager, handleWebRequest, type AgentContext, type ConsentTokenManager } from '../../src/index.js';

const tokens = createTokenManager({
  connections: [
    {
      id: 'corp',
      authorizationEndpoint: 'https://idp.example.com/authorize',
      tokenEndpoint: 'https://idp.example.com/token',
      clientId: 'client',
      redirectUri: 'https://agent.example.com/oauth/callback',
    },
  ],
});

const user = (userId: string, scopes: string[] = []): AgentContext =>
  createTestContext({ userId, issuer: 'https://idp.example.com', scopes });

const req = (method: string, path: string, context?: AgentContext, query = '') => ({ method, path, query: new URLSearchParams(query), context });

function configError(fn: () => unknown): { field?: string; code?: string } {
  try {
    fn();
  } catch (e) {
    return e as { field?: string; code?: string };
  }
  throw new Error('expected a CONFIG_INVALID');
}

describe('createConsentRoutes options', () => {
  it('accepts https, loopback http and absolute paths as successRedirect; refuses the rest', () => {
    for (const ok of ['https://app.example.com/settings', 'http://127.0.0.1:3000/x', 'http://localhost/x', '/settings?tab=1']) {
      expect(() => createConsentRoutes(tokens, { basePath: '/oauth', successRedirect: ok })).not.toThrow();
    }
    for (const bad of ['//evil.example/x', '/\\evil.example', 'http://evil.example/x', 'javascript:alert(1)', 'https://user:pw@app.example.com/', 'settings', '/a\nb']) {
      expect(configError(() => createConsentRoutes(tokens, { basePath: '/oauth', successRedirect: bad })), bad).toMatchObject({ code: 'CONFIG_INVALID', field: 'consentRoutes.successRedirect' });
    }
  });

  it('refuses a bad basePath, unknown options and something that is not a token manager', () => {
    expect(configError(() => createConsentRoutes(tokens, { basePath: 'oauth' }))).toMatchObject({ field: 'consentRoutes.basePath' });
    expect(configError(() => createConsentRoutes(tokens, { basePath: '/oauth/' }))).toMatchObject({ field: 'consentRoutes.basePath' });
    expect(configError(() => createConsentRoutes(tokens, { basePath: '/oauth', bogus: 1 } as never))).toMatchObject({ field: 'consentRoutes.bogus' });
    expect(configError(() => createConsentRoutes({} as never, { basePath: '/oauth' }))).toMatchObject({ field: 'tokens' });
    expect(configError(() => createApprovalRoutes({} as never, { adminScope: 'admin' }))).toMatchObject({ field: 'approvals' });
    expect(configError(() => createApprovalRoutes(createApprovals(), { adminScope: '' }))).toMatchObject({ field: 'approvalRoutes.adminScope' });
    expect(configError(() => createApprovalRoutes(createApprovals(), { adminScope: 'a', basePath: '' }))).toMatchObject({ field: 'approvalRoutes.basePath' });
  });
});

describe('route matching', () => {
  const routes = createConsentRoutes(tokens, { basePath: '/oauth' });

  it('leaves paths that are not its own (hostile segments included) to the app', async () => {
    for (const path of ['/oauthx/accounts', '/oauth/connect/%2F', '/oauth/connect/a%00b', '/oauth/connect/%E0%A4%A', '/oauth//accounts', '/oauth/connect/a/b', '/oauth/connect/..%5C', '/other']) {
      expect(await routes.handle(req('GET', path, user('alice'))), path).toBeUndefined();
    }
    expect(await routes.handle(req('PUT', '/oauth/accounts', user('alice')))).toBeUndefined();
  });

  it('answers its own routes, one trailing slash tolerated; basePath "/" mounts at the root', async () => {
    expect(await routes.handle(req('GET', '/oauth/accounts/', user('alice')))).toMatchObject({ status: 200, body: { accounts: [] } });
    const root = createConsentRoutes(tokens, { basePath: '/' });
    expect(await root.handle(req('GET', '/accounts', user('alice')))).toMatchObject({ status: 200 });
    expect(await root.handle(req('GET', '/accounts'))).toMatchObject({ status: 401, body: { error: 'TOKEN_MISSING' } });
    expect(await root.handle(req('GET', '/accounts', anonymousContext()))).toMatchObject({ status: 401 });
  });

  it('connect for a known connection redirects with the binding in place (no network needed: explicit endpoints)', async () => {
    const r = await routes.handle(req('GET', '/oauth/connect/corp', user('alice')));
    expect(r?.status).toBe(302);
    const location = new URL(r?.headers.location as string);
    expect(location.origin + location.pathname).toBe('https://idp.example.com/authorize');
    expect(location.searchParams.get('redirect_uri')).toBe('https://agent.example.com/oauth/callback');
  });
});

describe('failures are rendered, never thrown', () => {
  it('an unexpected error becomes a generic 500 without its message', async () => {
    const broken: ConsentTokenManager = {
      connections: ['corp'],
      startAuthorization: () => Promise.reject(new Error('secret-in-error')),
      completeAuthorization: () => Promise.reject(new Error('secret-in-error')),
      listAccounts: () => Promise.reject(new Error('secret-in-error')),
      revoke: () => Promise.reject(new Error('secret-in-error')),
    };
    const routes = createConsentRoutes(broken, { basePath: '/oauth' });
    for (const [m, p] of [['GET', '/oauth/accounts'], ['GET', '/oauth/connect/corp'], ['DELETE', '/oauth/accounts/corp']] as const) {
      const r = await routes.handle(req(m, p, user('alice')));
      expect(r).toMatchObject({ status: 500, body: { error: 'INTERNAL_ERROR' } });
      expect(JSON.stringify(r)).not.toContain('secret-in-error');
    }
  });

  it('a store failure is STORE_UNAVAILABLE (503), and the admin check comes first', async () => {
    const failing = { get: () => Promise.reject(new Error('down')), set: () => Promise.reject(new Error('down')), delete: () => Promise.reject(new Error('down')) };
    const routes = createConsentRoutes(tokens, { basePath: '/oauth', store: failing });
    const r = await routes.handle(req('GET', '/oauth/callback', user('alice'), 'state=abc&code=x'));
    expect(r).toMatchObject({ status: 503, body: { error: 'STORE_UNAVAILABLE' } });

    const approvals = createApprovalRoutes(createApprovals({ store: failing }), { adminScope: 'admin' });
    expect(await approvals.handle(req('GET', '/approvals', user('alice')))).toMatchObject({ status: 403, body: { error: 'INSUFFICIENT_SCOPE' } });
    expect(await approvals.handle(req('GET', '/approvals', user('boss', ['admin'])))).toMatchObject({ status: 503, body: { error: 'STORE_UNAVAILABLE' } });
  });
});

describe('handleWebRequest (any Web-API server)', () => {
  it('answers its own routes from a Request and leaves the rest', async () => {
    const routes = [createConsentRoutes(tokens, { basePath: '/oauth' }), createApprovalRoutes(createApprovals(), { adminScope: 'admin' })];
    let res = await handleWebRequest(routes, new Request('https://agent.example.com/oauth/connect/corp', { headers: { accept: 'application/json' } }), user('alice'));
    expect(res?.status).toBe(200);
    const body = (await res?.json()) as { authorizationUrl: string };
    expect(new URL(body.authorizationUrl).searchParams.get('code_challenge_method')).toBe('S256');
    res = await handleWebRequest(routes, new Request('https://agent.example.com/oauth/connect/corp', { headers: { accept: 'text/html,application/json' } }), user('alice'));
    expect(res?.status).toBe(302);
    res = await handleWebRequest(routes, new Request('https://agent.example.com/approvals/apr_x/deny', { method: 'POST', body: '{}' }), user('boss', ['admin']));
    expect(res?.status).toBe(404);
    expect(await handleWebRequest(routes, new Request('https://agent.example.com/elsewhere'), user('alice'))).toBeUndefined();
    expect(await handleWebRequest(routes[0]!, new Request('https://agent.example.com/oauth/nothing'), user('alice'))).toBeUndefined();
  });
});
