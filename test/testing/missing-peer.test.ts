/**
 * agent-iam/testing without its optional peer oidc-provider: the entry still loads, and
 * createTestIdentityProvider rejects with a typed error naming the package to install, not Node's raw
 * ERR_MODULE_NOT_FOUND. A child process whose resolver hides oidc-provider.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

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

describe('agent-iam/testing without oidc-provider installed', () => {
  it('loads, and createTestIdentityProvider rejects with CONFIG_INVALID naming the package to install', async () => {
    const { code, out, err } = await run(['--import', fixture('hide-oidc-provider.mjs'), fixture('idp-without-peer.ts')]);
    expect(code, err).toBe(0);
    const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    expect(result).toMatchObject({ name: 'AgentIamError', code: 'CONFIG_INVALID', field: 'oidc-provider' });
    expect(result.message).toContain('npm install --save-dev oidc-provider');
    expect(String(result.message)).not.toContain('ERR_MODULE_NOT_FOUND');
  });
});
