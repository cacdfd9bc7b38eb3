import express from 'express';
import type { AddressInfo } from 'node:net';
import { createAgentIam } from 'agent-iam';
import { agentAuth } from 'agent-iam/express';
import { createTestIdentityProvider } from 'agent-iam/testing';

const idp = await createTestIdentityProvider(); // a real local OpenID provider; in production, your IdP
const iam = createAgentIam({
  agent: { id: 'hello-agent' },
  verifier: { providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['https://agent.local'] }] },
});
const app = express();
app.get('/me', agentAuth(iam.verifier), (req, res) => res.json({ user: req.agentContext?.userId, scopes: req.agentContext?.scopes }));
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/me`;

const token = await idp.tokenFor({ userId: 'alice', scopes: ['notes:read'], audience: 'https://agent.local' });
console.log(await (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).json()); // { user: 'alice', scopes: ['notes:read'] }
console.log((await fetch(url)).status, (await fetch(url)).headers.get('www-authenticate'));    // 401 Bearer
server.close();
await idp.close();
