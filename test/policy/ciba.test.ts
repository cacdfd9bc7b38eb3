/**
 * CIBA poll mode as an approval mode (issue 15, item 6), against the test identity provider's CIBA:
 * the user confirms on their device with a binding message from the approval summary; the waiting
 * agent call completes when the provider says so; slow_down and Retry-After are honoured; refused
 * and expired requests reach the agent as typed errors.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createToolFetch } from '../../src/outbound/index.js';
import { createApprovals, type ApprovalsOptions } from '../../src/policy/approvals.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { startUpstream, type Upstream } from '../outbound/upstream.js';
import { userContext } from '../outbound/helpers.js';

let idp: TestIdentityProvider;
let up: Upstream;
let ciba: NonNullable<ApprovalsOptions['ciba']>;
beforeAll(async () => {
  idp = await createTestIdentityProvider();
  up = await startUpstream();
  const client = await idp.registerClient({ grant_types: ['urn:openid:params:grant-type:ciba'], response_types: [], backchannel_token_delivery_mode: 'poll', token_endpoint_auth_method: 'client_secret_basic' });
  ciba = { issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string, pollIntervalSeconds: 0.1 };
});
afterAll(async () => {
  up?.close();
  await idp?.close();
});
beforeEach(() => up.clear());

function setup(extra: Partial<NonNullable<ApprovalsOptions['ciba']>> = {}) {
  const approvals = createApprovals({ ciba: { ...ciba, ...extra } });
  const tf = createToolFetch({
    agent: { id: 'bank-agent' },
    tools: [{ name: 'bank', baseUrl: up.origin, auth: { type: 'none' } }],
    policies: [{ agent: 'bank-agent', tool: 'bank', effect: 'approval', approvalMode: 'ciba' }],
    approvals,
  });
  return { approvals, tf };
}
async function deviceRequest(userId: string, path: string) {
  for (let i = 0; i < 200; i++) {
    const r = idp.backchannelRequests().find((x) => x.userId === userId && x.bindingMessage?.includes(path));
    if (r !== undefined) return r;
    await new Promise((ok) => setTimeout(ok, 10));
  }
  throw new Error(`no backchannel request: ${JSON.stringify(idp.backchannelRequests())}`);
}
async function failure(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('resolved');
}

describe('CIBA approvals', () => {
  it('the user confirms on their device: the waiting call goes through once', async () => {
    const { tf } = setup();
    const call = tf(`${up.origin}/v1/transfers`, { method: 'POST', body: '{"eur":50}', context: userContext('alice'), waitForApproval: 15_000 });
    const req = await deviceRequest('alice', '/v1/transfers');
    expect(req.bindingMessage).toBe('bank-agent: POST bank /v1/transfers');
    expect(req.scope).toContain('openid');
    expect(up.received).toHaveLength(0);
    await idp.completeBackchannel(req.authReqId, { approve: true });
    expect((await call).status).toBe(200);
    expect(up.received).toHaveLength(1);
  });

  it('refused on the device: POLICY_DENIED approval_denied, nothing sent', async () => {
    const { tf, approvals } = setup();
    const call = failure(tf(`${up.origin}/v1/transfers/2`, { method: 'POST', context: userContext('bob'), waitForApproval: 15_000 }));
    await idp.completeBackchannel((await deviceRequest('bob', '/v1/transfers/2')).authReqId, { approve: false });
    const e = await call;
    expect(e).toMatchObject({ code: 'POLICY_DENIED', reason: 'approval_denied' });
    expect(up.received).toHaveLength(0);
  });

  it('expired at the provider: POLICY_DENIED approval_expired', async () => {
    const { tf } = setup({ requestedExpirySeconds: 1 });
    const e = await failure(tf(`${up.origin}/v1/transfers/3`, { method: 'POST', context: userContext('carol'), waitForApproval: 10_000 }));
    expect({ code: e.code, reason: e.reason }).toMatchObject({ code: 'POLICY_DENIED', reason: 'approval_expired' });
  });

  it('slow_down adds 5 s to the interval; Retry-After on 429/503 is waited out', async () => {
    const polls: number[] = [];
    let answer: 'slow_down' | '429' | 'pass' = 'slow_down';
    const fetchWith: typeof fetch = async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.endsWith('/token')) {
        polls.push(Date.now());
        if (answer === 'slow_down') {
          answer = '429';
          return new Response('{"error":"slow_down"}', { status: 400, headers: { 'content-type': 'application/json' } });
        }
        if (answer === '429') {
          answer = 'pass';
          return new Response('', { status: 429, headers: { 'retry-after': '1' } });
        }
      }
      return fetch(input, init);
    };
    const { tf } = setup({ fetch: fetchWith });
    const call = tf(`${up.origin}/v1/transfers/4`, { method: 'POST', context: userContext('dan'), waitForApproval: 20_000 });
    await idp.completeBackchannel((await deviceRequest('dan', '/v1/transfers/4')).authReqId, { approve: true });
    expect((await call).status).toBe(200);
    expect(polls.length).toBeGreaterThanOrEqual(3);
    expect((polls[1] as number) - (polls[0] as number)).toBeGreaterThanOrEqual(4900); // slow_down: +5 s
    expect((polls[2] as number) - (polls[1] as number)).toBeGreaterThanOrEqual(950); // Retry-After: 1
  }, 30_000);

  it('RFC 9396 authorization_details go along only where the provider lists the type', async () => {
    const sent: URLSearchParams[] = [];
    const listing = (list: boolean): typeof fetch => async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.endsWith('/backchannel')) sent.push(new URLSearchParams(String(init?.body)));
      const res = await fetch(input, init);
      if (list && url.includes('/.well-known/')) {
        const doc = (await res.json()) as Record<string, unknown>;
        return Response.json({ ...doc, authorization_details_types_supported: ['agent_iam_tool_request'] });
      }
      return res;
    };
    for (const list of [false, true]) {
      const { tf } = setup({ fetch: listing(list) });
      await tf(`${up.origin}/v1/rar/${list}`, { method: 'POST', context: userContext('erin') }).catch(() => undefined);
    }
    expect(sent).toHaveLength(2);
    expect(sent[0]?.has('authorization_details')).toBe(false);
    expect(JSON.parse(sent[1]?.get('authorization_details') ?? '[]')).toEqual([
      { type: 'agent_iam_tool_request', actions: ['POST'], locations: [`https://${new URL(up.origin).host}`], identifier: '/v1/rar/true', tool: 'bank', agent: 'bank-agent' },
    ]);
    expect(sent[1]?.get('binding_message')).toBe('bank-agent: POST bank /v1/rar/true');
    expect(sent[1]?.get('login_hint')).toBe('erin');
  });

  it('a ciba rule needs createApprovals({ ciba }); without a user the approval is denied', async () => {
    const approvals = createApprovals();
    const tf = createToolFetch({ agent: { id: 'a' }, tools: [{ name: 'bank', baseUrl: up.origin, auth: { type: 'none' } }], policies: [{ agent: 'a', tool: 'bank', effect: 'approval', approvalMode: 'ciba' }], approvals });
    expect(await failure(tf(`${up.origin}/x`, { method: 'POST', context: userContext('alice') }))).toMatchObject({ code: 'CONFIG_INVALID' });
    const { tf: tf2 } = setup();
    expect(await failure(tf2(`${up.origin}/y`, { method: 'POST', context: userContext(undefined), waitForApproval: 2000 }))).toMatchObject({ code: 'POLICY_DENIED' });
  });
});
