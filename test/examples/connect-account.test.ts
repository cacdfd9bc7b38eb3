import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/connect-account', () => {
  it('connects alice, calls the API through toolFetch with her token, refuses bob and alice after revoke with CONSENT_REQUIRED, and exits 0', async () => {
    const { code, out, err } = await runExample('examples/connect-account/index.ts');
    expect(code, `${out}\n${err}`).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '');
    expect(result).toEqual({
      ok: true,
      status: 200,
      notes: ['buy milk', 'ship agent-iam'],
      bob: 'CONSENT_REQUIRED',
      revoked: 'revoked',
      afterRevoke: 'CONSENT_REQUIRED',
      apiCalls: 1, // only alice's connected call reached the API; the three consent refusals sent nothing
    });
    // the API verified alice's token itself and saw her id forwarded by the SDK
    expect(out).toContain('[notes API] GET /notes: valid token of alice, X-End-User-ID alice');
    expect(out).toMatch(/- alice: CONSENT_REQUIRED \(401\), nothing sent to the API/);
    expect(out).toMatch(/- bob: CONSENT_REQUIRED \(401\), nothing sent to the API/);
    expect(out).toMatch(/- alice after revoke: CONSENT_REQUIRED \(401\), nothing sent to the API/);
    // every decision is audited, in order
    const trail = /- audit (.*)/.exec(out)?.[1]?.split(' ') ?? [];
    expect(trail.filter((e) => e.startsWith('tool.request:'))).toEqual([
      'tool.request:consent',
      'tool.request:allow',
      'tool.request:consent',
      'tool.request:consent',
    ]);
    expect(trail).toContain('consent.complete:allow');
    expect(trail).toContain('token.revoke:allow');
    // nothing secret printed: no JWT, no authorization code, state or PKCE challenge
    const all = out + err;
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(all).not.toMatch(/[?&](code|state|code_challenge)=/);
    expect(all).not.toMatch(/Bearer [A-Za-z0-9._~+/-]{10,}/);
  }, 60_000);
});
