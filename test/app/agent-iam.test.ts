/**
 * createAgentIam and loadAgentIamConfig: one JSON config (secrets from the environment) builds a
 * working agent on Express and on Hono, against a real oidc-provider and a real upstream tool on
 * 127.0.0.1; bad configuration fails at construction with CONFIG_INVALID naming the field.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { getRequestListener } from '@hono/node-server';
import express from 'express';
import { Hono } from 'hono';
import { requireScopes as expressRequireScopes } from '../../src/adapters/express.js';
import { requireScopes as honoRequireScopes } from '../../src/adapters/hono.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentIam, currentContext, loadAgentIamConfig, type AgentIam, type AgentIamConfig, type AuditEvent } from '../../src/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const SECRET_KEY = 'sk_test_from_env_0123456789';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(listener: () => Listener | undefined): Promise<{ base: string; server: ReturnType<typeof createServer> }> {
  const server = createServer((req, res) => {
    const l = listener();
    if (l) l(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function close(server: ReturnType<typeof createServer> | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function expectConfigError(fn: () => unknown, field: string): Error {
  try {
    fn();
  } catch (e) {
    expect(e).toMatchObject({ code: 'CONFIG_INVALID', field });
    expect((e as Error).message).toContain(field);
    return e as Error;
  }
  throw new Error(`expected CONFIG_INVALID for ${field}`);
}

let idp: TestIdentityProvider;
let upstream: Awaited<ReturnType<typeof listen>>;
const seen: Array<{ authorization?: string; user?: string; path?: string }> = [];

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  upstream = await listen(() => (req, res) => {
    seen.push({ authorization: req.headers.authorization, user: req.headers['x-end-user-id'] as string | undefined, path: req.url });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
  });
});

afterAll(async () => {
  await close(upstream?.server);
  await idp?.close();
});

/** The JSON an operator would commit: no secret in it, only references to the environment. */
function configJson(redirectUri: string, clientId: string): string {
  return JSON.stringify({
    agent: { id: 'support-agent' },
    verifier: { mode: 'open', providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['agent-iam:test'] }] },
    tokens: {
      encryptionKey: { env: 'AGENT_IAM_KEY' },
      connections: [{ id: 'corp', issuer: idp.issuer, clientId, clientSecret: { env: 'CORP_CLIENT_SECRET' }, redirectUri, scopes: ['openid'] }],
    },
    tools: [{ name: 'echo', baseUrl: upstream.base, auth: { type: 'apiKey', key: { env: 'ECHO_KEY' } } }],
    policies: [{ agent: 'support-agent', tool: 'echo' }],
    consentRoutes: { basePath: '/oauth' },
    approvalRoutes: { adminScope: 'approvals:admin' },
  });
}

describe.each(['express', 'hono'] as const)('createAgentIam from JSON on %s', (kind) => {
  let app: Awaited<ReturnType<typeof listen>>;
  let iam: AgentIam;
  let listener: Listener | undefined;
  const events: AuditEvent[] = [];

  beforeAll(async () => {
    app = await listen(() => listener);
    const redirectUri = `${app.base}/oauth/callback`;
    const client = await idp.registerClient({ redirect_uris: [redirectUri] });
    const env = {
      AGENT_IAM_KEY: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8', // 32 bytes, base64url
      CORP_CLIENT_SECRET: client.client_secret as string,
      ECHO_KEY: SECRET_KEY,
    };
    const text = configJson(redirectUri, client.client_id);
    expect(text).not.toContain(SECRET_KEY);
    iam = createAgentIam({ ...loadAgentIamConfig(text, env), audit: (e) => void events.push(e) });
    expect(iam.agentId).toBe('support-agent');
    expect(iam.tokens?.connections).toEqual(['corp']);
    expect(iam.approvals).toBeDefined();

    if (kind === 'express') {
      const a = express();
      a.use(iam.express());
      a.use(iam.expressRoutes());
      a.get('/admin', expressRequireScopes('admin'), (_req, res) => void res.json({ ok: true }));
      a.get('/charges', async (req, res) => {
        const r = await iam.toolFetch(`${upstream.base}/v1/charges`);
        res.json({ status: r.status, user: req.agentContext?.userId, current: currentContext()?.userId, header: req.headers['x-end-user-id'] });
      });
      listener = a;
    } else {
      const h = new Hono();
      h.use('*', iam.hono());
      h.use('*', iam.honoRoutes());
      h.get('/admin', honoRequireScopes('admin'), (c) => c.json({ ok: true }));
      h.get('/charges', async (c) => {
        const r = await iam.toolFetch(`${upstream.base}/v1/charges`);
        return c.json({ status: r.status, user: c.get('agentContext')?.userId, current: currentContext()?.userId, header: c.req.header('x-end-user-id') });
      });
      listener = getRequestListener(h.fetch);
    }
  });

  afterAll(async () => {
    await close(app?.server);
  });

  const bearer = async (userId: string, scopes: string[] = []): Promise<Record<string, string>> => ({ authorization: `Bearer ${await idp.tokenFor({ userId, scopes })}` });

  it('iam middleware verifies the caller and toolFetch injects the env secret and forwards the user', async () => {
    const before = seen.length;
    const res = await fetch(`${app.base}/charges`, { headers: { ...(await bearer('alice')), 'x-end-user-id': 'mallory' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 200, user: 'alice', current: 'alice', header: 'alice' });
    expect(seen.slice(before)).toEqual([{ authorization: `Bearer ${SECRET_KEY}`, user: 'alice', path: '/v1/charges' }]);
    expect(events.some((e) => e.type === 'inbound.verify' && e.userId === 'alice')).toBe(true);
    expect(events.some((e) => e.type === 'tool.request' && e.decision === 'allow')).toBe(true);
    expect(JSON.stringify(events)).not.toContain(SECRET_KEY);
  });

  it("the adapters' requireScopes works behind iam middleware", async () => {
    let res = await fetch(`${app.base}/admin`, { headers: await bearer('alice', ['read']) });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/error="insufficient_scope", scope="admin"/);
    res = await fetch(`${app.base}/admin`);
    expect(res.status).toBe(401);
    res = await fetch(`${app.base}/admin`, { headers: await bearer('alice', ['admin']) });
    expect(res.status).toBe(200);
  });

  it('rejects a bad token with 401 and WWW-Authenticate', async () => {
    const res = await fetch(`${app.base}/charges`, { headers: { authorization: 'Bearer not.a.jwt' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(await res.json()).toMatchObject({ error: 'TOKEN_MALFORMED' });
  });

  it('iam routes: connect, callback for the same user, accounts; approvals with a streamed JSON body', async () => {
    const connect = await fetch(`${app.base}/oauth/connect/corp`, { headers: await bearer('bob'), redirect: 'manual' });
    expect(connect.status).toBe(302);
    const callback = new URL(await idp.authorize(connect.headers.get('location') as string, { userId: 'bob' }));
    const done = await fetch(`${app.base}/oauth/callback${callback.search}`, { headers: await bearer('bob') });
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ account: { connection: 'corp', userId: 'bob', status: 'active' } });
    const list = await fetch(`${app.base}/oauth/accounts`, { headers: await bearer('bob') });
    expect(((await list.json()) as { accounts: unknown[] }).accounts).toHaveLength(1);

    const check = await iam.approvals!.check({ agentId: 'support-agent', userId: 'bob', tool: 'echo', method: 'POST', path: '/v1/refunds', query: '', bodySha256: '0'.repeat(64) });
    const admin = await bearer('boss', ['approvals:admin']);
    const res = await fetch(`${app.base}/approvals/${check.id}/approve`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: '{"ttlSeconds":30}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ approval: { id: check.id, status: 'approved', approver: 'boss' } });
    const bad = await fetch(`${app.base}/approvals/${check.id}/deny`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: '{"x":' });
    expect(bad.status).toBe(400);
    const big = await fetch(`${app.base}/approvals/${check.id}/deny`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: `{"p":"${'x'.repeat(40_000)}"}` });
    expect(big.status).toBe(413);
    expect((await iam.approvals!.get(check.id))?.status).toBe('approved');
  });
});

describe('loadAgentIamConfig', () => {
  const base = (): Record<string, unknown> => ({
    agent: { id: 'a' },
    verifier: { providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] },
  });

  it('resolves { env } references anywhere and leaves the rest as is', () => {
    const cfg = loadAgentIamConfig(
      { ...base(), tools: [{ name: 't', baseUrl: { env: 'T_URL' }, auth: { type: 'apiKey', key: { env: 'T_KEY' } } }] },
      { T_URL: 'https://api.example.com', T_KEY: 'k-123456' },
    );
    expect(cfg.tools?.[0]).toEqual({ name: 't', baseUrl: 'https://api.example.com', auth: { type: 'apiKey', key: 'k-123456' } });
    expect(createAgentIam(cfg).toolFetch).toBeTypeOf('function');
  });

  it('refuses a literal secret in JSON, naming the field, never the value', () => {
    const text = JSON.stringify({ ...base(), tools: [{ name: 't', baseUrl: 'https://api.example.com', auth: { type: 'apiKey', key: 'sk_live_literal_secret' } }] });
    const e = expectConfigError(() => loadAgentIamConfig(text, {}), 'tools.0.auth.key');
    expect(JSON.stringify(e) + e.message).not.toContain('sk_live_literal_secret');
    expectConfigError(
      () => loadAgentIamConfig({ ...base(), tokens: { connections: [{ id: 'c', issuer: 'https://idp.example.com', clientId: 'x', clientSecret: 'shh-literal' }] } }, {}),
      'tokens.connections.0.clientSecret',
    );
    expectConfigError(() => loadAgentIamConfig({ ...base(), tokens: { encryptionKey: ['literal'], connections: [] } }, {}), 'tokens.encryptionKey.0');
  });

  it('names a missing environment variable and the field', () => {
    const e = expectConfigError(
      () => loadAgentIamConfig({ ...base(), tools: [{ name: 't', baseUrl: 'https://x.example', auth: { type: 'apiKey', key: { env: 'NOT_SET_ANYWHERE' } } }] }, {}),
      'tools.0.auth.key',
    );
    expect(e.message).toContain('NOT_SET_ANYWHERE');
    expectConfigError(() => loadAgentIamConfig({ ...base(), tools: [{ name: 't', baseUrl: { env: 'bad name' } }] }, {}), 'tools.0.baseUrl');
  });

  it('refuses bad JSON, a non-object, unknown keys and prototype keys', () => {
    expectConfigError(() => loadAgentIamConfig('{"agent":', {}), '(root)');
    expectConfigError(() => loadAgentIamConfig('[]', {}), '(root)');
    expectConfigError(() => loadAgentIamConfig({ ...base(), verfier: {} }, {}), 'verfier');
    expectConfigError(() => loadAgentIamConfig('{"agent":{"id":"a","__proto__":{"x":1}}}', {}), 'agent.__proto__');
  });
});

describe('createAgentIam: invalid configuration fails at construction, naming the field', () => {
  const ok = (): AgentIamConfig => ({
    agent: { id: 'a' },
    verifier: { providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] }] },
  });

  it('names the field in every section', () => {
    expectConfigError(() => createAgentIam({ ...ok(), agent: { id: '' } }), 'agent.id');
    expectConfigError(() => createAgentIam(null as never), '(root)');
    expectConfigError(() => createAgentIam({ agent: { id: 'a' } } as never), 'verifier');
    expectConfigError(() => createAgentIam({ ...ok(), tools: 'x' } as never), 'tools');
    expectConfigError(() => createAgentIam({ ...ok(), audit: 'stdout' } as never), 'audit');
    expectConfigError(() => createAgentIam({ ...ok(), verifier: { providers: [{ issuer: 'https://idp.example.com', jwksUri: 'http://idp.example.com/jwks' }] } }), 'verifier.providers.0.jwksUri');
    expectConfigError(() => createAgentIam({ ...ok(), tokens: { connections: [{ id: 'c', issuer: 'http://idp.example.com', clientId: 'x' }] } }), 'tokens.connections.0.issuer');
    expectConfigError(() => createAgentIam({ ...ok(), tools: [{ name: 't', baseUrl: 'ftp://x.example', auth: { type: 'none' } }] }), 'tools.0.baseUrl');
    expectConfigError(() => createAgentIam({ ...ok(), toolFetch: { maxRedirects: 99 } }), 'toolFetch.maxRedirects');
    expectConfigError(() => createAgentIam({ ...ok(), approvals: { pendingTtlSeconds: -1 } }), 'approvals.pendingTtlSeconds');
    expectConfigError(() => createAgentIam({ ...ok(), consentRoutes: { basePath: '/oauth' } }), 'consentRoutes');
    expectConfigError(
      () => createAgentIam({ ...ok(), tokens: { connections: [{ id: 'c', issuer: 'https://idp.example.com', clientId: 'x' }] }, consentRoutes: { basePath: 'oauth' } }),
      'consentRoutes.basePath',
    );
    expectConfigError(() => createAgentIam({ ...ok(), approvalRoutes: { adminScope: 'has space' } }), 'approvalRoutes.adminScope');
    expectConfigError(() => createAgentIam({ ...ok(), bogus: 1 } as never), 'bogus');
    // issue 14: typos and dead references inside the sections are named too
    expectConfigError(() => createAgentIam({ ...ok(), toolFetch: { timeout: 5000 } as never }), 'toolFetch.timeout');
    expectConfigError(() => createAgentIam({ ...ok(), approvals: { allowSelfAproval: true } as never }), 'approvals.allowSelfAproval');
    expectConfigError(() => createAgentIam({ ...ok(), tools: [{ name: 't', baseUrl: 'https://api.example.com' }], policies: [{ agent: 'a', tool: 'T' }] }), 'policies.0.tool');
    expectConfigError(
      () =>
        createAgentIam({
          ...ok(),
          tokens: { connections: [{ id: 'github', issuer: 'https://idp.example.com', clientId: 'x' }] },
          tools: [{ name: 'gh', baseUrl: 'https://api.github.com', auth: { type: 'oauth2', connection: 'gihub' } }],
        }),
      'tools.0.auth.connection',
    );
    expectConfigError(() => createAgentIam(ok()).expressRoutes(), 'consentRoutes');
    expectConfigError(() => createAgentIam(ok()).express({ requiredScopes: ['a b'] }), 'agentAuth.requiredScopes.0');
  });

  it('builds approvals only when configured or needed by a policy', () => {
    expect(createAgentIam(ok()).approvals).toBeUndefined();
    expect(createAgentIam(ok()).tokens).toBeUndefined();
    const tools = [{ name: 't', baseUrl: 'https://api.example.com', auth: { type: 'none' as const } }];
    expect(createAgentIam({ ...ok(), tools, policies: [{ agent: 'a', tool: 't', effect: 'approval' }] }).approvals).toBeDefined();
  });
});

describe('the root entry stays free of express and hono', () => {
  it('src/app imports express or hono only as types', () => {
    const dir = fileURLToPath(new URL('../../src/app/', import.meta.url));
    for (const f of readdirSync(dir)) {
      const src = readFileSync(`${dir}${f}`, 'utf8');
      expect(src, f).not.toMatch(/^import\s+(?!type\b)[^;]*from\s+'(express|hono|@hono\/[^']*)'/m);
      expect(src, f).not.toMatch(/from '\.\.\/adapters\/(express|hono)(-routes)?\.js'/);
    }
  });
});
