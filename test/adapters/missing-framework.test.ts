/**
 * The framework adapters without their frameworks installed: each entry still loads, and its
 * factory rejects with CONFIG_INVALID naming the package to install (not Node's
 * ERR_MODULE_NOT_FOUND). A child process whose resolver hides the framework packages.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('framework adapters without their framework', () => {
  it('load, and each factory rejects with CONFIG_INVALID naming the package to install', async () => {
    const { code, out, err } = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--import', fixture('hide-frameworks.mjs'), fixture('frameworks-without-peers.ts')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
      let o = '';
      let e = '';
      child.stdout.on('data', (c) => (o += c));
      child.stderr.on('data', (c) => (e += c));
      child.on('close', (c) => resolve({ code: c, out: o, err: e }));
    });
    expect(code, err).toBe(0);
    const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, { code: string; field: string; message: string }>;
    const packages = { 'ai-sdk': 'ai', 'openai-agents': '@openai/agents', langgraph: '@langchain/langgraph', mastra: '@mastra/core', undici: 'undici' };
    for (const [entry, pkg] of Object.entries(packages)) {
      expect(result[entry], entry).toMatchObject({ code: 'CONFIG_INVALID', field: pkg });
      expect(result[entry]?.message).toContain(`npm install ${pkg}@`);
      expect(result[entry]?.message).toContain(`agent-iam/${entry}`);
      expect(result[entry]?.message).not.toContain('ERR_MODULE_NOT_FOUND');
    }
  }, 90_000);
});
