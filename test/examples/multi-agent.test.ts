/**
 * Runs examples/multi-agent as a user would: a child `tsx` process importing the package by name
 * (`agent-iam`, `agent-iam/express`, `agent-iam/hono`, `agent-iam/testing`), resolved to dist/.
 */
import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/multi-agent', () => {
  it('orchestrator → search agent → summarizer: delegated, narrowed, refused where it must be, audited with the chain; exits 0', async () => {
    const { code, out, err } = await runExample('examples/multi-agent/index.ts', 55_000);
    expect(code, `${err}\n${out}`).toBe(0);

    // The summarizer, two hops away, knows the user and both agents from its own verified token.
    expect(out).toContain('POST /ask → 200');
    expect(out).toContain('the summarizer saw: user=alice@example.com actorChain=["search-agent","orchestrator"] scopes=["summarize"]');
    expect(out).toContain(`its token's act claim: {"sub":"search-agent","act":{"sub":"orchestrator"}}`);

    // Refusals.
    expect(out).toContain('alice → search agent directly (no orchestrator in the chain) → 403 POLICY_DENIED');
    expect(out).toContain('bob (research only) → orchestrator → 403 SCOPE_ESCALATION');
    expect(out).toMatch(/summarizer \(3 actors, max 2\) → 502 SUMMARIZER_REFUSED: summarizer said TOKEN_MALFORMED/);

    // The audit trail answers "which user, through which agents, called which tool".
    expect(out).toContain('[summarizer] inbound.verify user=alice@example.com chain=search-agent←orchestrator → allow');
    expect(out).toContain('[search-agent] tool.request user=alice@example.com chain=orchestrator tool=docs-index GET /index/search → allow 200');
    expect(out).toContain('alice@example.com → orchestrator → search-agent → summarizer  [allow]');
    expect(out).toContain('alice@example.com → search-agent → docs-index  [deny POLICY_DENIED]');
    expect(out).toMatch(/audit logs: .*summarizer \d+ events ok/);
    expect(out).not.toContain('BROKEN');

    // Nothing secret is printed: no JWT, no API key.
    expect(out + err).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
    expect(out + err).not.toContain('idx_demo');
    expect(out.trim().split('\n').at(-1)).toBe('multi-agent: OK');
  }, 70_000);
});
