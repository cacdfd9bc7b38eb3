/**
 * A Hono agent protected by agent-iam that calls a tool through toolFetch.
 *
 *   npm run build && npx tsx examples/hono-agent/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing, a real oidc-provider),
 * a "weather" tool that wants an API key, and the agent. The agent verifies the caller's token,
 * calls the tool with the tool's key and the verified user in X-End-User-ID, and never sees or
 * forwards the caller's token. The script makes a few requests, prints what happened, and exits 0
 * (1 if anything is not as expected).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createToolFetch, createVerifier, memoryAudit, renderError } from 'agent-iam';
import { agentAuth, requireScopes } from 'agent-iam/hono';
import { createTestIdentityProvider } from 'agent-iam/testing';

// In production this comes from your secret store, never from code.
const WEATHER_KEY = process.env.WEATHER_API_KEY ?? 'wk_demo_0123456789';
const AUDIENCE = 'https://weather-agent.example.com';

// A hung example must not hang CI.
setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 30_000).unref();

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function main(): Promise<boolean> {
  // 1. A tool: answers only with its API key, and says which user it was told about.
  const weather = createServer((req, res) => {
    if (req.headers['x-api-key'] !== WEATHER_KEY || req.headers.authorization !== undefined) {
      res.writeHead(401).end();
      return;
    }
    const city = new URL(req.url ?? '/', 'http://localhost').searchParams.get('city');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ city, forecast: 'sunny', forUser: req.headers['x-end-user-id'] }));
  });
  const weatherUrl = await listen(weather);

  // 2. An identity provider that issues the tokens callers present.
  const idp = await createTestIdentityProvider();

  // 3. The agent's outbound gate: only this tool, only this operation, with its key.
  const audit = memoryAudit();
  const toolFetch = createToolFetch({
    agent: { id: 'weather-agent' },
    tools: [
      {
        name: 'weather',
        baseUrl: weatherUrl,
        auth: { type: 'apiKey', key: WEATHER_KEY, header: 'X-API-Key' },
        capabilities: [{ method: 'GET', path: '/v1/forecast' }],
      },
    ],
    policies: [{ agent: 'weather-agent', tool: 'weather' }],
    audit,
  });

  // 4. The agent: every /api route needs a valid token for this audience.
  const verifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [AUDIENCE] }], audit });
  const app = new Hono();
  app.use('/api/*', agentAuth(verifier));
  app.get('/api/forecast', requireScopes('weather:read'), async (c) => {
    try {
      // toolFetch finds the verified caller by itself (agentAuth runs the handler inside its context).
      const upstream = await toolFetch(`${weatherUrl}/v1/forecast?city=${encodeURIComponent(c.req.query('city') ?? 'Paris')}`);
      return c.json(await upstream.json(), upstream.status as 200);
    } catch (error) {
      // An AgentIamError renders as { error: code, message } with its status; anything else as a 500.
      const rendered = renderError(error);
      return c.json(rendered.body, rendered.status as 403);
    }
  });
  // The agent may not reach anything that is not a registered tool.
  app.get('/api/elsewhere', async (c) => {
    try {
      await toolFetch('http://127.0.0.1:9/admin');
      return c.json({ reached: true });
    } catch (error) {
      const rendered = renderError(error);
      return c.json(rendered.body, rendered.status as 403);
    }
  });
  const agent = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await new Promise<void>((resolve) => agent.once('listening', resolve));
  const agentUrl = `http://127.0.0.1:${(agent.address() as AddressInfo).port}`;
  console.log(`identity provider ${idp.issuer}, weather tool ${weatherUrl}, Hono agent ${agentUrl}`);

  const checks: boolean[] = [];
  try {
    // 5a. alice, with the scope, trying to pass herself off as someone else via X-End-User-ID.
    const token = await idp.tokenFor({ userId: 'alice@example.com', scopes: ['weather:read'], audience: AUDIENCE });
    const ok = await fetch(`${agentUrl}/api/forecast?city=Lyon`, { headers: { authorization: `Bearer ${token}`, 'x-end-user-id': 'mallory@example.com' } });
    const okBody = (await ok.json()) as { forUser?: string };
    console.log(`GET /api/forecast?city=Lyon as alice → ${ok.status} ${JSON.stringify(okBody)}`);
    checks.push(ok.status === 200 && okBody.forUser === 'alice@example.com');

    // 5b. no token.
    const anon = await fetch(`${agentUrl}/api/forecast`);
    console.log(`GET /api/forecast without a token → ${anon.status} ${((await anon.json()) as { error: string }).error} (${anon.headers.get('www-authenticate')})`);
    checks.push(anon.status === 401);

    // 5c. a valid token without the route's scope.
    const bob = await idp.tokenFor({ userId: 'bob@example.com', scopes: ['profile'], audience: AUDIENCE });
    const noScope = await fetch(`${agentUrl}/api/forecast`, { headers: { authorization: `Bearer ${bob}` } });
    console.log(`GET /api/forecast as bob without weather:read → ${noScope.status} ${((await noScope.json()) as { error: string }).error}`);
    checks.push(noScope.status === 403);

    // 5d. a token for another audience.
    const other = await idp.tokenFor({ userId: 'alice@example.com', scopes: ['weather:read'], audience: 'https://other-api.example.com' });
    const wrongAud = await fetch(`${agentUrl}/api/forecast`, { headers: { authorization: `Bearer ${other}` } });
    console.log(`GET /api/forecast with a token for another audience → ${wrongAud.status} ${((await wrongAud.json()) as { error: string }).error}`);
    checks.push(wrongAud.status === 401);

    // 5e. the agent trying to call something that is not a registered tool.
    const elsewhere = await fetch(`${agentUrl}/api/elsewhere`, { headers: { authorization: `Bearer ${token}` } });
    console.log(`GET /api/elsewhere (unregistered URL) → ${elsewhere.status} ${((await elsewhere.json()) as { error: string }).error}`);
    checks.push(elsewhere.status === 403);

    console.log('audit:');
    for (const e of audit.events) {
      const what = e.type === 'inbound.verify' ? '' : ` ${e.tool ?? '-'} ${e.method ?? ''} ${e.path ?? ''}`;
      console.log(`  ${e.type}${what} user=${e.userId ?? '-'} decision=${e.decision}${e.code ? ` code=${e.code}` : ''}${e.status ? ` status=${e.status}` : ''}`);
    }
  } finally {
    await Promise.all([close(agent), close(weather), idp.close()]);
  }
  return checks.every(Boolean);
}

main().then(
  (ok) => {
    console.log(ok ? 'hono-agent: OK' : 'hono-agent: FAILED');
    process.exit(ok ? 0 : 1);
  },
  (error: unknown) => {
    console.error('hono-agent: FAILED', error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
