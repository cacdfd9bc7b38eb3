/**
 * agent-iam/testing leaves the process as it found it: no replaced console.warn, every other
 * warning still shows, and oidc-provider's own warnings are not printed in the first place. A child
 * process, so that oidc-provider is imported there for the first time (its runtime warning is printed
 * at import, once per process).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createTestIdentityProvider } from '../../src/testing/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 45_000 });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('createTestIdentityProvider: no process-wide side effect', () => {
  it('console.warn is the same function before and after, and stays callable by others', async () => {
    const before = console.warn;
    const idp = await createTestIdentityProvider();
    try {
      expect(console.warn).toBe(before);
    } finally {
      await idp.close();
    }
    expect(console.warn).toBe(before);
  });

  it('in a fresh process: other warnings still show, oidc-provider prints none, registration and faults still work', async () => {
    const { code, out, err } = await run([fixture('idp-warnings.ts')]);
    expect(code, err).toBe(0);
    const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { same: boolean; registration: number; token: number; stats: Record<string, number> };
    expect(result.same).toBe(true);
    expect(result.registration).toBe(201);
    expect(result.token).toBe(200);
    expect(result.stats).toEqual({ client_credentials: 1 });
    expect(err).toContain('ANOTHER WARNING STILL SHOWS');
    expect(err).not.toContain('oidc-provider WARNING');
  });
});
