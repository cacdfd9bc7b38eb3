import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('examples/connect-account', () => {
  it('discovers, registers, connects a user, calls the API with her token, revokes, and exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/connect-account/index.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, err).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '');
    expect(result).toEqual({ ok: true, status: 200, notes: ['buy milk', 'ship agent-iam'], revoked: 'revoked' });
    expect(out).toContain('token.revoke:allow');
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT printed
  }, 60_000);
});
