/**
 * A scripted AI SDK model (`ai/test`'s MockLanguageModelV4): on a user's turn it calls the given
 * tools; once tool results are in the prompt it answers with what it read, so that a test can see
 * what reached the model (results, denials and their reasons).
 */
import { convertArrayToReadableStream, MockLanguageModelV4 } from 'ai/test';

export interface ScriptedCall {
  toolName: string;
  input: unknown;
}

const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };

export function scriptedModel(calls: ScriptedCall[]): MockLanguageModelV4 & { seen: unknown[] } {
  const seen: unknown[] = [];
  let n = 0;
  const model = new MockLanguageModelV4({
    doGenerate: async (options) => {
      const last = options.prompt.at(-1);
      if (last?.role === 'tool') {
        seen.push(last.content);
        return { content: [{ type: 'text', text: `read: ${JSON.stringify(last.content)}` }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] };
      }
      return {
        content: calls.map((c) => ({ type: 'tool-call' as const, toolCallId: `call_${++n}`, toolName: c.toolName, input: JSON.stringify(c.input) })),
        finishReason: { unified: 'tool-calls', raw: undefined },
        usage,
        warnings: [],
      };
    },
  });
  return Object.assign(model, { seen });
}

/** The same script for frameworks that stream (Mastra): `doStream` parts of MockLanguageModelV4. */
export function scriptedStreamModel(calls: ScriptedCall[]): MockLanguageModelV4 & { seen: unknown[] } {
  const seen: unknown[] = [];
  let n = 0;
  const finish = (unified: 'stop' | 'tool-calls') => ({ type: 'finish' as const, finishReason: { unified, raw: undefined }, usage });
  const model = new MockLanguageModelV4({
    doStream: async (options) => {
      const last = options.prompt.at(-1);
      if (last?.role === 'tool') {
        seen.push(last.content);
        const text = `read: ${JSON.stringify(last.content)}`;
        return { stream: convertArrayToReadableStream([{ type: 'stream-start', warnings: [] }, { type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: text }, { type: 'text-end', id: 't' }, finish('stop')]) };
      }
      const parts = calls.map((c) => ({ type: 'tool-call' as const, toolCallId: `call_${++n}`, toolName: c.toolName, input: JSON.stringify(c.input) }));
      return { stream: convertArrayToReadableStream([{ type: 'stream-start' as const, warnings: [] }, ...parts, finish('tool-calls')]) };
    },
  });
  return Object.assign(model, { seen });
}
