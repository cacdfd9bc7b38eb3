/**
 * Runs an example as a user would: a child `node --import tsx` process. The package imports
 * (`agent-iam`, `agent-iam/express`, ...) resolve to src/ through tsconfig `paths`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));

export interface ExampleRun {
  code: number | null;
  out: string;
  err: string;
}

export function runExample(file: string, timeoutMs = 45_000): Promise<ExampleRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}
