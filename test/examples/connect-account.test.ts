import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/connect-account', () => {
  it('discovers, registers, connects a user, calls the API with her token, revokes, and exits 0', async () => {
    const { code, out, err } = await runExample('examples/connect-account/index.ts');
    expect(code, err).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '');
    expect(result).toEqual({ ok: true, status: 200, notes: ['buy milk', 'ship agent-iam'], revoked: 'revoked' });
    expect(out).toContain('token.revoke:allow');
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT printed
  }, 60_000);
});
