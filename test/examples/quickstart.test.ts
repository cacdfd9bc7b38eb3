import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root, runExample } from './run-example.js';

describe('README quick start', () => {
  it('is examples/quickstart/index.ts verbatim, at most 20 lines', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const source = readFileSync(join(root, 'examples/quickstart/index.ts'), 'utf8').trimEnd();
    expect(readme).toContain('```ts\n' + source + '\n```');
    expect(source.split('\n').filter((l) => l.trim() !== '').length).toBeLessThanOrEqual(20);
  });

  it('runs: a verified caller reaches the tool through toolFetch with its user forwarded and the key injected; no token is 401', async () => {
    const { code, out, err } = await runExample('examples/quickstart/index.ts');
    expect(code, err).toBe(0);
    expect(out).toContain("{ user: 'alice', key: true }");
    expect(out).toContain('401 Bearer');
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]+\./);
  }, 60_000);
});
