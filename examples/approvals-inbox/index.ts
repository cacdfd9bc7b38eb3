/**
 * An agent whose refunds need a human, and the pages where that human decides: the approvals
 * inbox and connected accounts, mounted in the same Express app.
 *
 *   npx tsx examples/approvals-inbox/index.ts            (runs a scripted person and exits)
 *   npx tsx examples/approvals-inbox/index.ts --serve    (keeps running: open the printed URL)
 *
 * Everything runs on 127.0.0.1: a local identity provider (agent-iam/testing), a "payments" tool,
 * and the agent. Alice asks the agent for a refund; the policy sends POST /v1/refunds to approval
 * by the finance group; the agent's call waits (`waitForApproval`). Erin (finance) signs in to the
 * pages with the identity provider (authorization code + PKCE), sees the approval in the inbox and
 * approves it with a form (anti-CSRF token, same-origin POST): the waiting call goes through, once.
 * Dave (engineering) signs in too, and sees nothing he may decide. Prints each step (never a token,
 * a code or a cookie) and exits 0 (1 if anything was not as expected).
 */
import express from 'express';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApprovals, createTokenManager, createToolFetch, createVerifier, isAgentIamError } from 'agent-iam';
import { agentAuth, pages } from 'agent-iam/express';
import { createTestIdentityProvider } from 'agent-iam/testing';

const log = (step: string): void => console.log(`- ${step}`);
const listen = (s: Server) => new Promise<string>((ok) => s.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
const serve = process.argv.includes('--serve');

// 1. The identity provider (people and the agent's callers), and a tool that records what reached it.
const idp = await createTestIdentityProvider({ users: { erin: { groups: ['finance'] }, dave: { groups: ['engineering'] } } });
const sent: string[] = [];
const tool = createServer((req, res) => (sent.push(`${req.method} ${req.url} for ${req.headers['x-end-user-id']}`), res.end('{"refunded":true}')));
const toolUrl = await listen(tool);

// 2. The agent: refunds need one approver from the finance group; the call waits up to 30 s.
const server = createServer();
const origin = await listen(server);
const approvals = createApprovals({ inboxUrl: `${origin}/agent-iam/approvals`, onApprovalRequested: (n) => log(`notification: approval waiting at ${n.inboxUrl}`) });
const toolFetch = createToolFetch({
  agent: { id: 'refund-agent' },
  tools: [{ name: 'payments', baseUrl: toolUrl, auth: { type: 'apiKey', key: 'sk_test_example' } }],
  policies: [
    { agent: 'refund-agent', tool: 'payments' },
    { agent: 'refund-agent', tool: 'payments', effect: 'approval', capabilities: [{ method: 'POST', path: '/v1/refunds' }], approvedBy: { groups: ['finance'] } },
  ],
  approvals,
});

// 3. The pages: sign-in with the identity provider; the connected accounts of the token manager.
const pagesClient = await idp.registerClient({ redirect_uris: [`${origin}/agent-iam/sign-in/callback`] });
const corp = await idp.registerClient({ redirect_uris: [`${origin}/agent-iam/accounts/callback`] });
const tokens = createTokenManager({ connections: [{ id: 'corp', issuer: idp.issuer, clientId: corp.client_id, clientSecret: corp.client_secret as string, redirectUri: `${origin}/agent-iam/accounts/callback`, scopes: ['openid'] }] });
const app = express();
app.use(pages({
  publicOrigin: origin, approvals, tokens, secret: process.env.PAGES_SECRET ?? crypto.randomUUID() + crypto.randomUUID(),
  signIn: { issuer: idp.issuer, clientId: pagesClient.client_id, clientSecret: pagesClient.client_secret as string, scopes: ['openid', 'email', 'groups'] },
}));
const verifier = createVerifier({ providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: ['https://agent.local'] }] });
app.post('/refund', agentAuth(verifier), async (_req, res) => {
  try {
    const r = await toolFetch(`${toolUrl}/v1/refunds`, { method: 'POST', body: '{"amount":2000}', approvalDescription: 'Refund 20 EUR to alice (order 1234)', waitForApproval: 30_000 });
    res.status(r.status).json(await r.json());
  } catch (e) {
    res.status(isAgentIamError(e) ? e.status : 500).json({ error: isAgentIamError(e) ? e.code : 'INTERNAL_ERROR' });
  }
});
server.on('request', app);

if (serve) {
  // One refund waits from the start; sign in as erin (any user id in group finance: erin) to decide it.
  const token = await idp.tokenFor({ userId: 'alice', audience: 'https://agent.local' });
  void fetch(`${origin}/refund`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }).then((r) => log(`the waiting refund answered ${r.status}`));
  log(`open ${origin}/agent-iam/approvals and sign in as erin (finance) or dave (engineering); Ctrl-C to stop`);
  await new Promise(() => {});
}

// 4. A person in a browser, scripted: cookies by name, redirects by hand, forms as a browser posts them.
function person() {
  const jar = new Map<string, string>();
  const go = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const res = await fetch(new URL(url, origin), { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const [name = '', value = ''] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (value === '' || /Max-Age=0/.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };
  return {
    go,
    async signIn(userId: string): Promise<void> {
      const start = await go('/agent-iam/sign-in');
      await go(await idp.authorize(start.headers.get('location') as string, { userId })); // login + consent at the IdP
    },
    post: (path: string, form: Record<string, string>) => go(path, { method: 'POST', body: new URLSearchParams(form), headers: { origin, 'content-type': 'application/x-www-form-urlencoded' } }),
  };
}

let ok = true;
const expect = (what: string, cond: boolean): void => {
  log(`${cond ? 'ok' : 'NOT OK'}: ${what}`);
  ok &&= cond;
};

// 5. Alice asks the agent for a refund: the call waits for a decision.
const aliceToken = await idp.tokenFor({ userId: 'alice', audience: 'https://agent.local' });
const waiting = fetch(`${origin}/refund`, { method: 'POST', headers: { authorization: `Bearer ${aliceToken}` } });
let pendingId = '';
for (let i = 0; i < 100 && pendingId === ''; i++) {
  pendingId = (await approvals.list({ status: 'pending' }))[0]?.id ?? '';
  if (pendingId === '') await new Promise((r) => setTimeout(r, 20));
}

// 6. Dave signs in: not in finance, he sees nothing and cannot decide by posting the id.
const dave = person();
await dave.signIn('dave');
const daveInbox = await (await dave.go('/agent-iam/approvals')).text();
const csrfOf = (html: string): string => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
expect('dave (engineering) sees no approval', !daveInbox.includes(pendingId) && daveInbox.includes('Nothing waits for your decision'));
expect('dave posting the id gets 404', (await dave.post(`/agent-iam/approvals/${pendingId}/approve`, { csrf: csrfOf(daveInbox), ttlSeconds: '' })).status === 404);

// 7. Erin signs in, sees the approval (never the body or the key), and approves it once.
const erin = person();
await erin.signIn('erin');
const detail = await (await erin.go(`/agent-iam/approvals/${pendingId}`)).text();
expect('erin (finance) sees the approval with the author’s summary', detail.includes('Refund 20 EUR to alice (order 1234)') && detail.includes('/v1/refunds'));
expect('the page shows no body value and no key', !detail.includes('"amount"') && !detail.includes('sk_test_example'));
const approved = await erin.post(`/agent-iam/approvals/${pendingId}/approve`, { csrf: csrfOf(detail), ttlSeconds: '' });
expect('approve answers 303 back to the approval', approved.status === 303);
const result = await waiting;
expect('the waiting agent call went through', result.status === 200);
expect('the tool was called exactly once, for alice', sent.length === 1 && sent[0] === 'POST /v1/refunds for alice');

console.log(JSON.stringify({ ok, status: result.status, toolCalls: sent.length, approval: (await approvals.get(pendingId))?.status, approver: (await approvals.get(pendingId))?.approver }));
server.closeAllConnections();
tool.closeAllConnections();
await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => tool.close(r)), idp.close()]);
process.exit(ok ? 0 : 1);
