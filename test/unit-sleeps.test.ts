/**
 * The unit project sleeps for no fixed time over 50 ms (issue 16): time-dependent behaviour moves
 * with the test clock (`testClock()` in test/helpers/clock.ts, `installTestClock` from
 * agent-iam/testing), an event is awaited or polled for (`vi.waitFor`), and what needs real time
 * (server clocks, latency bounds, faults) lives in the reliability project. This test reads every
 * file of the unit project (everything under test/ but the reliability folders, helpers included)
 * and lists each fixed sleep over 50 ms it finds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const testDir = join(root, 'test');
/** The folders of the reliability project (vitest.config.ts), which may wait for real. */
const RELIABILITY = ['reliability', 'replicas'];
const MAX_MS = 50;

/** A numeric literal, with or without `_` separators. */
const NUMBER = String.raw`(\d[\d_]*(?:\.\d+)?)`;
/**
 * Fixed sleeps: a promise resolved by a timer (`setTimeout(r, N)`, `setTimeout(resolve, N)`, or any
 * callback named by an identifier), and the usual helpers `sleep(N)` and `delay(N)`.
 */
const PATTERNS = [
  new RegExp(String.raw`\bsetTimeout\(\s*[A-Za-z_$][\w$]*\s*,\s*` + NUMBER + String.raw`\s*\)`, 'g'),
  new RegExp(String.raw`\bsleep\(\s*` + NUMBER + String.raw`\s*\)`, 'g'),
  new RegExp(String.raw`\bdelay\(\s*` + NUMBER + String.raw`\s*\)`, 'g'),
];

/** `file:line: text` for every fixed sleep over {@link MAX_MS} in `source`. */
export function fixedSleeps(file: string, source: string): string[] {
  const found: string[] = [];
  source.split('\n').forEach((line, i) => {
    for (const pattern of PATTERNS) {
      for (const m of line.matchAll(pattern)) {
        if (Number((m[1] as string).replace(/_/g, '')) > MAX_MS) found.push(`${file}:${i + 1}: ${m[0]}`);
      }
    }
  });
  return found;
}

function unitFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (dir === testDir && RELIABILITY.includes(entry.name)) continue;
      if (entry.name === 'node_modules' || entry.name === 'fixtures') continue;
      out.push(...unitFiles(path));
    } else if (/\.(?:[cm]?[jt]s)$/.test(entry.name)) {
      out.push(path);
    }
  }
  return out;
}

describe('the unit project has no fixed sleep over 50 ms', () => {
  it('the reliability folders skipped here are those of the reliability project', () => {
    const config = readFileSync(join(root, 'vitest.config.ts'), 'utf8');
    for (const folder of RELIABILITY) expect(config).toContain(`'test/${folder}/**/*.test.ts'`);
  });

  it('recognises a fixed sleep, and only one over 50 ms', () => {
    // Built from parts, so that this file does not contain what it looks for.
    const timer = (cb: string, ms: string): string => ['await new Promise((', cb, ') => set', 'Timeout(', cb, ', ', ms, '));'].join('');
    const call = (name: string, ms: string): string => ['await ', name, '(', ms, ');'].join('');
    const src = [timer('r', '60'), timer('resolve', '1_100'), call('sleep', '51'), call('delay', '1000'), timer('done', '250'), timer('r', '50'), call('sleep', '5'), call('sleep', 'ms'), 'x.setTimeout(200, cb);'].join('\n');
    expect(fixedSleeps('f.ts', src).map((s) => s.split(':')[1])).toEqual(['1', '2', '3', '4', '5']);
  });

  it('finds none in the unit project', () => {
    const files = unitFiles(testDir);
    expect(files.length).toBeGreaterThan(50);
    expect(files.some((f) => f.includes(`${join('test', 'reliability')}`))).toBe(false);
    const found = files.flatMap((f) => fixedSleeps(relative(root, f), readFileSync(f, 'utf8')));
    expect(found, `fixed sleeps over ${MAX_MS} ms in the unit project (use the test clock, vi.waitFor, or move the test to test/reliability):\n${found.join('\n')}`).toEqual([]);
  });
});
