/**
 * An Express agent protected by agent-iam that calls a tool through toolFetch.
 *
 *   npx tsx examples/express-agent/index.ts
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing), a "weather" tool
 * that wants an API key, and the agent. The script makes one request with a real access token,
 * prints what came back, and exits 0.
 *
 * It imports the package by name, exactly as your own code would (`npm run build` makes dist/).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createToolFetch, createVerifier, isAgentIamError, renderError, type AuditEvent } from 'agent-iam';
import { agentAuth } from 'agent-iam/express';
import { createTestIdentityProvider } from 'agent-iam/testing';

const WEATHER_KEY = 'wk_demo_0123456789';

async function listen(server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

// 1. A tool: answers only with the right API key, and says which user it was told about.
const weather = createServer((req, res) => {
  if (req.headers['x-api-key'] !== WEATHER_KEY) {
    res.writeHead(401).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ city: new URL(req.url ?? '/', 'http://x').searchParams.get('city'), forecast: 'sunny', forUser: req.headers['x-end-user-id'] }));
});
const weatherUrl = await listen(weather);

// 2. An identity provider (a real oidc-provider on loopback).
const idp = await createTestIdentityProvider();

// 3. The agent: verify the caller, then call the tool with the tool's key and the caller's identity.
const audit: AuditEvent[] = [];
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
  audit: (event) => void audit.push(event),
});

const app = express();
app.use(agentAuth(createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['agent-iam:test'] }] })));
app.get('/forecast', async (req, res) => {
  try {
    const city = String(req.query.city ?? 'Paris');
    const upstream = await toolFetch(`${weatherUrl}/v1/forecast?city=${encodeURIComponent(city)}`);
    res.status(upstream.status).json(await upstream.json());
  } catch (error) {
    const rendered = renderError(error);
    res.status(rendered.status).set(rendered.headers).json(rendered.body);
    if (!isAgentIamError(error)) console.error('unexpected error');
  }
});
const agent = createServer(app);
const agentUrl = await listen(agent);

// 4. One request as alice, and one without a token.
const token = await idp.tokenFor({ userId: 'alice@example.com' });
const ok = await fetch(`${agentUrl}/forecast?city=Lyon`, { headers: { authorization: `Bearer ${token}`, 'x-end-user-id': 'mallory' } });
const okBody = await ok.json();
const anon = await fetch(`${agentUrl}/forecast`);
console.log(JSON.stringify({ status: ok.status, body: okBody, unauthenticatedStatus: anon.status, audit: audit.map((e) => ({ tool: e.tool, decision: e.decision, path: e.path, userId: e.userId, status: e.status })) }));

agent.closeAllConnections();
weather.closeAllConnections();
await Promise.all([new Promise((r) => agent.close(r)), new Promise((r) => weather.close(r)), idp.close()]);
process.exit(ok.status === 200 && okBody.forUser === 'alice@example.com' && anon.status === 401 ? 0 : 1);
