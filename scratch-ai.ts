import { generateText, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { z } from 'zod';
const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
let step = 0;
const model = new MockLanguageModelV4({
  doGenerate: async (opts) => {
    step++;
    console.log('prompt', JSON.stringify(opts.prompt.at(-1)));
    if (step === 1) return { content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'refund', input: JSON.stringify({ amount: 5 }) }], finishReason: { unified: 'tool-calls', raw: undefined }, usage, warnings: [] } as any;
    return { content: [{ type: 'text', text: 'done' }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] } as any;
  },
});
const tools = { refund: tool({ description: 'r', inputSchema: z.object({ amount: z.number() }), execute: async (i, o) => { console.log('exec', i, o.context); return { ok: true }; } }) };
const r = await generateText({ model, tools, toolApproval: { refund: async (input: any, o: any) => { console.log('approval?', input, o.toolContext); return { type: 'user-approval', reason: 'needs ok' }; } }, toolsContext: { refund: { s: 'x' } } as any, prompt: 'refund 5', stopWhen: () => false });
console.log(JSON.stringify(r.content), r.finishReason);
const messages: any[] = [{ role: 'user', content: 'refund 5' }, ...r.response.messages];
const req = r.content.find((p: any) => p.type === 'tool-approval-request') as any;
messages.push({ role: 'tool', content: [{ type: 'tool-approval-response', approvalId: req.approvalId, approved: true }] });
const r2 = await generateText({ model, tools, toolApproval: { refund: async () => ({ type: 'user-approval' }) }, toolsContext: { refund: { s: 'x' } } as any, messages });
console.log(JSON.stringify(r2.content), r2.text, JSON.stringify(r2.response.messages));
