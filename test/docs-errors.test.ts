// The README's error table gives every error code the status the SDK uses (src/errors.ts).
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ERROR_STATUS } from '../src/errors.js';

it('the README error table gives every code its status', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const m of readme.matchAll(/^\| `([A-Z_]+)`(?: \/ `([A-Z_]+)`)? \| ([^|]+) \|/gm)) {
    rows.set(m[1] as string, (m[3] as string).trim());
    if (m[2]) rows.set(m[2], (m[3] as string).trim());
  }
  for (const [code, status] of Object.entries(ERROR_STATUS)) expect(rows.get(code), code).toMatch(new RegExp(`^${status}\\b`));
});
