import express from 'express';
import { createServer, type Server } from 'node:http';
import { createAgentIam } from 'agent-iam';
import { agentAuth } from 'agent-iam/express';
import { createTestIdentityProvider } from 'agent-iam/testing';

const origin = (s: Server) => new Promise<string>((ok) => s.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(s.address() as { port: number }).port}`)));
const tool = createServer((req, res) => res.end(JSON.stringify({ user: req.headers['x-end-user-id'], key: req.headers.authorization === 'Bearer demo-key' })));
const toolUrl = await origin(tool);
const idp = await createTestIdentityProvider(); // a real local OpenID provider; in production, your IdP
const iam = createAgentIam({
  agent: { id: 'notes-agent' }, policies: [{ agent: 'notes-agent', tool: 'notes' }], // deny unless allowed
  verifier: { providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['https://agent.local'] }] },
  tools: [{ name: 'notes', baseUrl: toolUrl, auth: { type: 'apiKey', key: 'demo-key' } }],
});
const agent = createServer(express().get('/ask', agentAuth(iam.verifier), async (_req, res) => res.json(await (await iam.toolFetch(`${toolUrl}/notes`)).json())));
const agentUrl = `${await origin(agent)}/ask`;
const token = await idp.tokenFor({ userId: 'alice', scopes: ['notes:read'], audience: 'https://agent.local' });
console.log(await (await fetch(agentUrl, { headers: { authorization: `Bearer ${token}` } })).json()); // { user: 'alice', key: true }
console.log((await fetch(agentUrl)).status, (await fetch(agentUrl)).headers.get('www-authenticate')); // 401 Bearer
agent.close(); tool.close(); await idp.close();
