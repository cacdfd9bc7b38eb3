import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('examples/express-agent', () => {
  it('runs, forwards the verified user (not the client-sent one) to the tool, and exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/express-agent/index.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, err).toBe(0);
    const line = out.trim().split('\n').at(-1) ?? '';
    const result = JSON.parse(line);
    expect(result.status).toBe(200);
    expect(result.body).toEqual({ city: 'Lyon', forecast: 'sunny', forUser: 'alice@example.com' });
    expect(result.unauthenticatedStatus).toBe(401);
    expect(result.audit).toEqual([{ tool: 'weather', decision: 'allow', path: '/v1/forecast', userId: 'alice@example.com', status: 200 }]);
    expect(out).not.toContain('wk_demo');
  }, 60_000);
});
