/**
 * A real app for the pages tests: the test identity provider, an upstream tool, an agent whose
 * refunds need approval by the finance group, and the pages (Express, Hono, or a plain fetch
 * handler) on 127.0.0.1. `client()` is a tiny browser: a cookie jar and manual redirects.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Hono } from 'hono';
import { getRequestListener } from '@hono/node-server';
import {
  createApprovals,
  createKeyValueStore,
  createPages,
  createTokenManager,
  createToolFetch,
  handleWebRequest,
  type Approvals,
  type AuditEvent,
  type PagesOptions,
  type TokenManager,
  type ToolFetch,
} from '../../src/index.js';
import { pages as expressPages } from '../../src/adapters/express.js';
import { pages as honoPages } from '../../src/adapters/hono.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

export const BASE = '/agent-iam';
export const SECRET = 'test-pages-secret-0123456789-abcdefghij';

export interface PagesApp {
  origin: string;
  idp: TestIdentityProvider;
  approvals: Approvals;
  tokens: TokenManager;
  toolFetch: ToolFetch;
  tool: { origin: string; calls: Array<{ method: string; path: string; user: string | undefined }> };
  events: AuditEvent[];
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function startPagesApp(kind: 'express' | 'hono' | 'fetch' = 'express', extra: Partial<PagesOptions> = {}): Promise<PagesApp> {
  let listener: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server = createServer((req, res) => (listener ? listener(req, res) : res.writeHead(503).end()));
  const origin = await listen(server);
  const calls: PagesApp['tool']['calls'] = [];
  const toolServer = createServer((req, res) => {
    calls.push({ method: req.method ?? '', path: req.url ?? '', user: req.headers['x-end-user-id'] as string | undefined });
    res.setHeader('content-type', 'application/json');
    res.end('{"refunded":true}');
  });
  const toolOrigin = await listen(toolServer);
  const idp = await createTestIdentityProvider({
    users: {
      erin: { email: 'erin@example.com', groups: ['finance'] },
      frank: { email: 'frank@example.com', groups: ['finance'] },
      dave: { email: 'dave@example.com', groups: ['engineering'] },
      alice: { email: 'alice@example.com', groups: ['support'] },
    },
  });
  const pagesClient = await idp.registerClient({ redirect_uris: [`${origin}${BASE}/sign-in/callback`], grant_types: ['authorization_code'], response_types: ['code'] });
  const corpClient = await idp.registerClient({ redirect_uris: [`${origin}${BASE}/accounts/callback`] });
  const events: AuditEvent[] = [];
  const audit = (e: AuditEvent): void => void events.push(e);
  const store = createKeyValueStore();
  const tokens = createTokenManager({
    connections: [{ id: 'corp', issuer: idp.issuer, clientId: corpClient.client_id, clientSecret: corpClient.client_secret as string, redirectUri: `${origin}${BASE}/accounts/callback`, scopes: ['openid', 'email'] }],
    audit,
  });
  const approvals = createApprovals({ audit });
  const toolFetch = createToolFetch({
    agent: { id: 'refund-agent' },
    tools: [{ name: 'payments', baseUrl: toolOrigin, auth: { type: 'apiKey', key: 'sk_test_PAGES_SECRET_KEY' } }],
    policies: [
      { agent: 'refund-agent', tool: 'payments' },
      { agent: 'refund-agent', tool: 'payments', effect: 'approval', capabilities: [{ method: 'POST', path: '/v1/refunds' }, { method: 'POST', path: '/v1/refunds/*' }], approvedBy: { groups: ['finance'] } },
    ],
    approvals,
    audit,
  });
  const options: PagesOptions = {
    publicOrigin: origin,
    approvals,
    tokens,
    secret: SECRET,
    store,
    audit,
    signIn: { issuer: idp.issuer, clientId: pagesClient.client_id, clientSecret: pagesClient.client_secret as string, scopes: ['openid', 'email', 'groups'] },
    ...extra,
  };
  if (kind === 'express') {
    const app = express();
    app.use(expressPages(options));
    listener = app as unknown as typeof listener;
  } else if (kind === 'hono') {
    const app = new Hono();
    app.use(`${BASE}/*`, honoPages(options));
    listener = getRequestListener(app.fetch);
  } else {
    const routes = [createPages(options)];
    listener = getRequestListener(async (request: Request) => (await handleWebRequest(routes, request, undefined)) ?? new Response('not found', { status: 404 }));
  }
  return {
    origin,
    idp,
    approvals,
    tokens,
    toolFetch,
    tool: { origin: toolOrigin, calls },
    events,
    async close() {
      server.closeAllConnections();
      toolServer.closeAllConnections();
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => toolServer.close(r)), idp.close()]);
    },
  };
}

/** A tiny browser: cookies by name, manual redirects, same-origin forms. */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(readonly origin: string) {}

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = (pair as string).indexOf('=');
      const name = (pair as string).slice(0, eq);
      const value = (pair as string).slice(eq + 1);
      if (/Max-Age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const res = await fetch(new URL(path, this.origin), { redirect: 'manual', headers: { cookie: this.cookieHeader(), ...headers } });
    this.store(res);
    return res;
  }

  async post(path: string, form: Record<string, string>, headers: Record<string, string> = { origin: this.origin }): Promise<Response> {
    const res = await fetch(new URL(path, this.origin), {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
    this.store(res);
    return res;
  }

  /** Sign in through the identity provider as `userId`; resolves with the final redirect target. */
  async signIn(idp: TestIdentityProvider, userId: string, returnTo = `${BASE}/approvals`): Promise<string> {
    const start = await this.get(`${BASE}/sign-in?return=${encodeURIComponent(returnTo)}`);
    if (start.status !== 302) throw new Error(`sign-in answered ${start.status}`);
    const callback = await idp.authorize(start.headers.get('location') as string, { userId });
    const done = await this.get(callback);
    if (done.status !== 303) throw new Error(`callback answered ${done.status}: ${await done.text()}`);
    return done.headers.get('location') as string;
  }
}

/** The first anti-CSRF token in a page. */
export function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  if (m === null) throw new Error('no csrf token in the page');
  return m[1] as string;
}
