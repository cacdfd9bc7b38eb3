/**
 * Runs examples/hono-agent as a user would: a child `tsx` process importing the package by name
 * (`agent-iam`, `agent-iam/hono`, `agent-iam/testing`), which resolves to src/ through tsconfig paths.
 */
import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/hono-agent', () => {
  it('runs against the built package, forwards the verified user (not the client-sent one), refuses the rest, exits 0', async () => {
    const { code, out, err } = await runExample('examples/hono-agent/index.ts');
    expect(code, err).toBe(0);
    expect(out).toContain('GET /api/forecast?city=Lyon as alice → 200 {"city":"Lyon","forecast":"sunny","forUser":"alice@example.com"}');
    expect(out).toContain('GET /api/forecast without a token → 401 TOKEN_MISSING');
    expect(out).toContain('GET /api/forecast as bob without weather:read → 403 INSUFFICIENT_SCOPE');
    expect(out).toContain('with a token for another audience → 401 TOKEN_AUDIENCE_MISMATCH');
    expect(out).toContain('GET /api/elsewhere (unregistered URL) → 403 TOOL_NOT_REGISTERED');
    expect(out).toContain('tool.request weather GET /v1/forecast user=alice@example.com decision=allow status=200');
    expect(out).not.toContain('mallory');
    expect(out).not.toContain('wk_demo');
    expect(out).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no JWT printed
    expect(out.trim().split('\n').at(-1)).toBe('hono-agent: OK');
  }, 60_000);
});
