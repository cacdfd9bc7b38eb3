import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/express-agent', () => {
  it('runs, forwards the verified user (not the client-sent one) to the tool, and exits 0', async () => {
    const { code, out, err } = await runExample('examples/express-agent/index.ts');
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
