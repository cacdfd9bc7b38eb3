import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe.each(['ai-sdk', 'openai-agents', 'langgraph', 'mastra'])('examples/%s', (name) => {
  it('pauses for approval, is approved from a second agent on the same store, and sends exactly that refund once, for alice', async () => {
    const { code, out, err } = await runExample(`examples/${name}/index.ts`, 90_000);
    expect(code, `${out}\n${err}`).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '');
    expect(result).toEqual({ ok: true, paused: true, approvedBy: 'lead@example.com', apiCalls: 1, user: 'alice', body: { charge: 'ch_1', amount: 20 } });
    expect(out).toMatch(/sent to the API so far 0/);
    expect(out).toMatch(/the approver sees shop-agent asks to POST 127\.0\.0\.1:\d+\/refunds for alice \(tool payments\): Refund 20 EUR on ch_1/);
    // nothing secret printed: no JWT, no API key
    const all = out + err;
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(all).not.toContain('sk_demo_refunds');
  }, 120_000);
});
