import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/approvals-inbox', () => {
  it('the agent call waits, erin approves in the inbox, the tool is called once; dave sees nothing; exits 0 without printing a secret', async () => {
    const { code, out, err } = await runExample('examples/approvals-inbox/index.ts');
    expect(code, `${out}\n${err}`).toBe(0);
    expect(JSON.parse(out.trim().split('\n').at(-1) ?? '')).toEqual({ ok: true, status: 200, toolCalls: 1, approval: 'consumed', approver: 'erin' });
    expect(out).not.toContain('NOT OK');
    expect(out).toMatch(/notification: approval waiting at http:\/\/127\.0\.0\.1:\d+\/agent-iam\/approvals\/apr_/);
    const all = out + err;
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(all).not.toContain('sk_test_example');
    expect(all).not.toMatch(/agent-iam-session=|[?&](code|state)=/);
  }, 60_000);
});
