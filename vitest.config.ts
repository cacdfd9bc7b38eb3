import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (no load runs, no fault injection, no sleeps over 50 ms) and `reliability`
 * (load, faults, several processes on one store). `npm test` runs both; CONTRIBUTING.md lists the
 * per-project scripts.
 */
const shared = { testTimeout: 30_000, hookTimeout: 60_000, pool: 'forks' as const, typecheck: { enabled: false } };
const reliability = ['test/reliability/**/*.test.ts', 'test/replicas/**/*.test.ts'];

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/**/*.test.ts'], exclude: reliability } },
      { test: { ...shared, name: 'reliability', include: reliability } },
    ],
  },
});
